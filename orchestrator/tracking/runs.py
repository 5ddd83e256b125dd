"""The study's MLflow experiment and its runs: found again by their tags, epochs logged once each,
a trial's run ended with its final values, genotype files and status (see :class:`~orchestrator.trial.TrialStatus`
for the rule that tells an ended run from one merely closed)."""

from __future__ import annotations

import json
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pcdarts_core import parse_genotype
from pcdarts_core.errors import UserInputError
from pcdarts_core.outputs import write_genotype
from pcdarts_core.records import EpochRecord, TrainRecord

from ..stages.rows import FINAL_FILES
from ..trial import Trial, TrialStatus
from .describe import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    NOTE_TAG,
    DatasetInput,
    provenance_tags,
    run_name,
    study_note,
    trial_note,
)

STUDY_TAG = "pcdarts.study_id"
TRIAL_TAG = "pcdarts.trial"
PARENT_TAG = "mlflow.parentRunId"
#: The artifact folder of a retrained network (weights, settings, genotype).
NETWORK_ARTIFACTS = "network"
#: A trial's status, written last when its run ends (see :class:`~orchestrator.trial.TrialStatus`).
STATUS_TAG = "pcdarts.status"
#: The per-epoch values logged as metrics: the numbers of the core's epoch records (search or retrain).
EPOCH_METRICS = tuple(
    dict.fromkeys(n for n in (*EpochRecord.SCALARS, *TrainRecord.SCALARS) if n not in ("epoch", "arch_frozen"))
)
FINAL_METRICS = ("parameters", "multiply_adds")

# MLflow is imported inside the methods that call it: importing orchestrator.tracking (the report CLI
# does) must not load it.


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
                experiment_id = client.create_experiment(
                    experiment, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
                )
            elif found.lifecycle_stage == "deleted":
                raise TrackingError(
                    f"tracking.experiment={experiment!r}: the MLflow experiment is deleted; restore it "
                    "(mlflow experiments restore) or set tracking.experiment to another name"
                )
            else:
                experiment_id = found.experiment_id
                if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
                    client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        except TrackingError:
            raise
        except Exception as err:  # MLflow raises several types for an unreachable or broken store
            reason = " ".join(f"{type(err).__name__}: {err}".split())[:240]
            raise TrackingError(
                f"tracking.uri={uri!r}: MLflow is not reachable ({reason}); "
                "start the tracking server or fix tracking.uri"
            ) from None
        return cls(uri, experiment_id)

    # --- runs -----------------------------------------------------------------------
    def _find(self, filter_string: str) -> Any | None:
        runs = self.client.search_runs([self.experiment_id], filter_string=filter_string, max_results=2)
        return runs[0] if runs else None

    def study_run(self, study_id: str, name: str, params: dict[str, Any]) -> str:
        """The study's parent run: found by its study id, or created with the spec as params and a description;
        its provenance tags say where it runs (now: a resumed study may run elsewhere)."""
        run = self._find(f"tags.`{STUDY_TAG}` = '{study_id}'")
        if run is None:
            tags = {STUDY_TAG: study_id, "pcdarts.kind": "study", NOTE_TAG: study_note(name)}
            run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
            self._log_params(run.info.run_id, _flatten("", params))
        elif run.info.status != "RUNNING":
            self.client.update_run(run.info.run_id, status="RUNNING")
        self._set_tags(run.info.run_id, provenance_tags())
        return run.info.run_id

    def find_trial_run(self, parent_id: str, key: str) -> Any | None:
        return self._find(f"tags.`{TRIAL_TAG}` = '{key}' and tags.`{PARENT_TAG}` = '{parent_id}'")

    def trial_run(self, parent_id: str, trial: Trial) -> str:
        """A trial's child run, RUNNING: found by its key under the parent, or created (named for what the trial
        is, with a description) with its config as params; either way with its dataset input."""
        run = self.find_trial_run(parent_id, trial.key)
        if run is None:
            tags = {**trial_tags(trial), TRIAL_TAG: trial.key, PARENT_TAG: parent_id, NOTE_TAG: trial_note(trial)}
            run = self.client.create_run(self.experiment_id, run_name=run_name(trial), tags=tags)
            self._log_params(run.info.run_id, _flatten("", trial.config))
        elif run.info.status != "RUNNING":
            self.client.update_run(run.info.run_id, status="RUNNING")
        if run.inputs is None or not run.inputs.dataset_inputs:
            self._log_dataset(run.info.run_id, DatasetInput.of(trial.config))
        return run.info.run_id

    def trial_runs(self, parent_id: str) -> list[Any]:
        """Every child run of the study (all pages)."""
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
                max_results=1000,
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def logged_epochs(self, run_id: str) -> set[int]:
        """The epochs already logged to a run (its ``epoch`` metric's steps)."""
        return {int(m.step) for m in self.client.get_metric_history(run_id, "epoch")}

    def _set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def _log_dataset(self, run_id: str, data: DatasetInput) -> None:
        from mlflow.entities import Dataset, InputTag
        from mlflow.entities import DatasetInput as MlflowDatasetInput

        dataset = Dataset(data.name, data.digest, "local", data.source, profile=data.profile)
        context = InputTag("mlflow.data.context", "training")
        self.client.log_inputs(run_id, [MlflowDatasetInput(dataset, tags=[context])])

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

    def finish_trial(self, run_id: str, status: TrialStatus, final: dict[str, Any], checkpoint: Any = None) -> None:
        """Final values, the genotype files, the files a finished trial kept in its last checkpoint (a Ray Tune
        ``Checkpoint``; a retraining's network, under ``network/``) and the run's end status."""
        from mlflow.entities import Metric, RunTag

        stamp = int(time.time() * 1000)
        metrics = [Metric(name, float(final[name]), stamp, 0) for name in FINAL_METRICS if _is_number(final.get(name))]
        tags = [RunTag("pcdarts.error", str(final["error"])[:5000])] if final.get("error") else []
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        if final.get("genotype"):
            self.log_genotype(run_id, final["genotype"])
        if status == TrialStatus.FINISHED and checkpoint is not None:
            with checkpoint.as_directory() as folder:
                kept = Path(folder) / FINAL_FILES
                if kept.is_dir():
                    self.client.log_artifacts(run_id, str(kept), artifact_path=NETWORK_ARTIFACTS)
        # The status tag last, with the end: a run carrying it has all its final values and files.
        self.client.set_tag(run_id, STATUS_TAG, status.value)
        self.client.set_terminated(run_id, status.mlflow_status)

    def has_ended(self, run: Any) -> bool:
        """Whether a trial's run was ended by :meth:`finish_trial`, not merely closed (KILLED) part-way."""
        tag = run.data.tags.get(STATUS_TAG)
        return tag in set(TrialStatus) and run.info.status == TrialStatus(tag).mlflow_status

    def log_genotype(self, run_id: str, text: str) -> None:
        """``genotype.json`` and ``genotype.txt``, the same files ``python -m pcdarts_core.search`` writes."""
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


def trial_tags(trial: Trial) -> dict[str, str]:
    """The tags that describe a trial's run (besides its key and parent)."""
    tags = {"pcdarts.stage": trial.stage, "pcdarts.setting": trial.setting, "pcdarts.seed": str(trial.seed)}
    if trial.genotype_id:
        tags["pcdarts.genotype_id"] = trial.genotype_id
    return tags
