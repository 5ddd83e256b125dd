"""MLflow tracking of a study, written by the driver only.

One experiment per study name, one parent run per study, one nested child run per trial.
Runs are found again by their tags (``pcdarts.study_id`` on the parent, ``pcdarts.trial``
on a child), so a retried trial, a restored Tune experiment or a resumed study continues
the same run instead of making a new one. Epoch metrics are logged with the epoch as step,
and an epoch already logged is never logged twice. Only the driver writes, so a sqlite
store sees one writer however many trials run at once.

:class:`TrialLogger` is the Ray Tune callback that logs live; :meth:`StudyTracker.catch_up`
completes a trial's run from Tune's own results at the end of a stage, so nothing the
callback missed (a driver restart, a tracking-server outage) is lost.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable

from ray.tune import Callback

from pcdarts_core.errors import UserInputError
from pcdarts_core.records import EpochRecord, TrainRecord

STUDY_TAG = "pcdarts.study_id"
TRIAL_TAG = "pcdarts.trial"
PARENT_TAG = "mlflow.parentRunId"
#: Trial statuses and the MLflow run status each ends with.
RUN_STATUS = {"finished": "FINISHED", "diverged": "FAILED", "error": "FAILED", "interrupted": "KILLED"}
#: The per-epoch values logged as metrics: the numbers of the core's epoch records (search or retrain).
EPOCH_METRICS = tuple(dict.fromkeys(n for n in (*EpochRecord.SCALARS, *TrainRecord.SCALARS) if n not in ("epoch", "arch_frozen")))
FINAL_METRICS = ("parameters", "multiply_adds")
#: Seconds the live logger leaves MLflow alone after a failed call (the stage's catch-up logs what it skipped).
OUTAGE_PAUSE_S = 20.0
OUTAGE_PAUSE_MAX_S = 300.0


class TrackingError(UserInputError):
    """MLflow cannot be reached or refuses the study's runs."""


def _flatten(prefix: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, child in value.items():
            out.update(_flatten(f"{prefix}.{key}" if prefix else str(key), child))
        return out
    return {prefix: json.dumps(value) if isinstance(value, (list, tuple)) else str(value)}


class StudyTracker:
    """The study's MLflow experiment and its runs."""

    def __init__(self, uri: str, experiment_id: str) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.experiment_id = experiment_id
        self.client = MlflowClient(uri)

    @classmethod
    def connect(cls, uri: str, experiment: str, artifact_dir: Path | None) -> StudyTracker:
        """Open (or create) the study's experiment; fails with a clear message before any trial starts."""
        from mlflow.tracking import MlflowClient

        check_server(uri)
        client = MlflowClient(uri)
        try:
            found = client.get_experiment_by_name(experiment)
            if found is None:
                location = artifact_dir.resolve().as_uri() if artifact_dir is not None else None
                experiment_id = client.create_experiment(experiment, artifact_location=location)
            elif found.lifecycle_stage == "deleted":
                raise TrackingError(
                    f"tracking.experiment={experiment!r}: the MLflow experiment is deleted; restore it "
                    "(mlflow experiments restore) or set tracking.experiment to another name"
                )
            else:
                experiment_id = found.experiment_id
        except TrackingError:
            raise
        except Exception as err:  # MLflow raises several types for an unreachable or broken store
            reason = " ".join(f"{type(err).__name__}: {err}".split())[:240]
            raise TrackingError(
                f"tracking.uri={uri!r}: MLflow is not reachable ({reason}); start the tracking server or fix tracking.uri"
            ) from None
        return cls(uri, experiment_id)

    # --- runs -----------------------------------------------------------------------
    def _find(self, filter_string: str) -> Any | None:
        runs = self.client.search_runs([self.experiment_id], filter_string=filter_string, max_results=2)
        return runs[0] if runs else None

    def study_run(self, study_id: str, name: str, params: dict[str, Any]) -> str:
        """The study's parent run: found by its study id, or created with the spec as params."""
        run = self._find(f"tags.`{STUDY_TAG}` = '{study_id}'")
        if run is None:
            run = self.client.create_run(self.experiment_id, run_name=name, tags={STUDY_TAG: study_id, "pcdarts.kind": "study"})
            self._log_params(run.info.run_id, _flatten("", params))
        elif run.info.status != "RUNNING":
            self.client.update_run(run.info.run_id, status="RUNNING")
        return run.info.run_id

    def find_trial_run(self, parent_id: str, key: str) -> Any | None:
        return self._find(f"tags.`{TRIAL_TAG}` = '{key}' and tags.`{PARENT_TAG}` = '{parent_id}'")

    def trial_run(self, parent_id: str, key: str, tags: dict[str, str], params: dict[str, Any]) -> str:
        """A trial's child run, RUNNING: found by its key under the parent, or created with the config as params."""
        run = self.find_trial_run(parent_id, key)
        if run is None:
            run = self.client.create_run(
                self.experiment_id, run_name=key, tags={**tags, TRIAL_TAG: key, PARENT_TAG: parent_id}
            )
            self._log_params(run.info.run_id, _flatten("", params))
        elif run.info.status != "RUNNING":
            self.client.update_run(run.info.run_id, status="RUNNING")
        return run.info.run_id

    def trial_runs(self, parent_id: str) -> list[Any]:
        """Every child run of the study (all pages)."""
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'", max_results=1000, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def logged_epochs(self, run_id: str) -> set[int]:
        """The epochs already logged to a run (its ``epoch`` metric's steps)."""
        return {int(m.step) for m in self.client.get_metric_history(run_id, "epoch")}

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start : start + 100])

    def log_epochs(self, run_id: str, rows: Iterable[dict[str, Any]], logged: set[int]) -> set[int]:
        """Log the epoch rows whose epoch is not in ``logged`` (each epoch once); returns the epochs now logged."""
        from mlflow.entities import Metric

        metrics, logged = [], set(logged)
        stamp = int(time.time() * 1000)
        for row in rows:
            epoch = row.get("epoch")
            if not _is_number(epoch) or int(epoch) in logged:
                continue
            epoch = int(epoch)
            values = {name: row[name] for name in EPOCH_METRICS if _is_number(row.get(name))}
            metrics += [Metric(name, float(v), stamp, epoch) for name, v in {**values, "epoch": epoch}.items()]
            logged.add(epoch)
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])
        return logged

    def finish_trial(self, run_id: str, status: str, final: dict[str, Any]) -> None:
        """Final values, the genotype files and the run's end status."""
        from mlflow.entities import Metric, RunTag

        stamp = int(time.time() * 1000)
        metrics = [Metric(name, float(final[name]), stamp, 0) for name in FINAL_METRICS if _is_number(final.get(name))]
        tags = [RunTag("pcdarts.error", str(final["error"])[:5000])] if final.get("error") else []
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        if final.get("genotype"):
            self.log_genotype(run_id, final["genotype"])
        # The status tag last, with the end: a run carrying it has all its final values and files.
        self.client.set_tag(run_id, "pcdarts.status", status)
        self.client.set_terminated(run_id, RUN_STATUS.get(status, "FAILED"))

    def log_genotype(self, run_id: str, text: str) -> None:
        """``genotype.json`` and ``genotype.txt``, the same files ``python -m pcdarts_core.search`` writes."""
        from pcdarts_core import parse_genotype
        from pcdarts_core.outputs import write_genotype

        with tempfile.TemporaryDirectory(prefix="pcdarts-genotype-") as folder:
            write_genotype(Path(folder), parse_genotype(text))
            self.client.log_artifacts(run_id, folder)

    def close_open_runs(self, parent_id: str, status: str = "KILLED") -> None:
        """End every run of the study still RUNNING (after an interruption); a resume reopens them."""
        for run in self.trial_runs(parent_id):
            if run.info.status == "RUNNING":
                self.client.set_terminated(run.info.run_id, status)
        self.client.set_terminated(parent_id, status)


def check_server(uri: str, timeout_s: float = 5.0) -> None:
    """An ``http(s)://`` tracking server answers within ``timeout_s`` (MLflow's own client would retry
    for minutes). Any HTTP answer will do: the experiment calls that follow say more if it is not MLflow."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            pass
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise TrackingError(
            f"tracking.uri={uri!r}: no MLflow server answers there ({reason}); start it "
            "(mlflow server --host 127.0.0.1 --port PORT --backend-store-uri sqlite:///mlflow.db) or fix tracking.uri"
        ) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def trial_identity(config: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(key, tags, params) of a trial from its Tune config."""
    trial = config["trial"]
    tags = {"pcdarts.stage": trial["stage"], "pcdarts.setting": trial["setting"], "pcdarts.seed": str(trial["seed"])}
    if trial.get("genotype_id"):
        tags["pcdarts.genotype_id"] = trial["genotype_id"]
    return trial["key"], tags, trial["config"]


class TrialLogger(Callback):
    """Ray Tune callback on the driver: each trial's epochs to its MLflow child run, as they arrive.

    Holds only names and ids when pickled with the Tune experiment; the MLflow client and the
    trial-to-run map are rebuilt (from the runs' tags) after a restore.
    """

    def __init__(self, uri: str, experiment_id: str, parent_id: str) -> None:
        self.uri, self.experiment_id, self.parent_id = uri, experiment_id, parent_id
        self._tracker: StudyTracker | None = None
        self._runs: dict[str, tuple[str, set[int]]] = {}
        self._paused_until = 0.0
        self._failures = 0  # consecutive failed calls: each doubles the pause, up to OUTAGE_PAUSE_MAX_S

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri, "experiment_id": self.experiment_id, "parent_id": self.parent_id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["uri"], state["experiment_id"], state["parent_id"])  # type: ignore[misc]

    @property
    def tracker(self) -> StudyTracker:
        if self._tracker is None:
            self._tracker = StudyTracker(self.uri, self.experiment_id)
        return self._tracker

    def _run_of(self, trial: Any) -> tuple[str, set[int]]:
        key, tags, params = trial_identity(trial.config)
        if key not in self._runs:
            run_id = self.tracker.trial_run(self.parent_id, key, tags, params)
            self._runs[key] = (run_id, self.tracker.logged_epochs(run_id))
        return self._runs[key]

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        def finish() -> None:
            run_id, _ = self._run_of(trial)
            result = trial.last_result or {}
            status = result.get("trial_status", "error")
            self.tracker.finish_trial(run_id, status, result if status == "finished" else {"error": result.get("error")})

        self._guarded(finish)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        def finish() -> None:
            run_id, _ = self._run_of(trial)
            self.tracker.finish_trial(run_id, "error", {"error": f"the trial failed after its retries (Ray Tune's error file: {trial.error_file})"})

        self._guarded(finish)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._guarded(lambda: self._run_of(trial))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        def log() -> None:
            run_id, logged = self._run_of(trial)
            self._runs[trial.config["trial"]["key"]] = (run_id, self.tracker.log_epochs(run_id, [result], logged))

        self._guarded(log)

    def _guarded(self, action: Any) -> None:
        # A tracking outage must not stop the trials, nor slow them down with the client's retries (these
        # callbacks run in Tune's loop): after a failure, live logging pauses (OUTAGE_PAUSE_S, doubling while
        # the server stays away) and, once the pause is over, first asks the server with a one-second probe;
        # the stage's catch-up logs what was skipped.
        if time.monotonic() < self._paused_until:
            return
        try:
            if self._failures:
                check_server(self.uri, timeout_s=1.0)
            action()
            self._failures = 0
        except Exception as err:  # noqa: BLE001
            self._tracker = None
            self._runs.clear()
            pause = min(OUTAGE_PAUSE_S * 2**self._failures, OUTAGE_PAUSE_MAX_S)
            self._failures += 1
            self._paused_until = time.monotonic() + pause
            print(
                f"warning: MLflow logging failed ({type(err).__name__}: {' '.join(str(err).split())[:160]}); "
                f"live logging pauses for {pause:g} s and the end of the stage logs what was missed"
            )
