"""A study: its folder, its stages, and resuming it.

Stages, in order: ``search`` (one Tune experiment over the grid), ``select`` (the genotypes
to retrain), ``retrain`` (a second Tune experiment: selected genotypes and random baselines,
each with every retrain seed) and ``report``. ``study.json`` records the finished stages,
so a resumed study skips them; an unfinished stage's Tune experiment is restored, so its
finished trials are kept and the others continue from their last checkpoints.

The study folder holds ``spec.yaml`` (the spec as run, overrides applied), ``study.json``,
``search.csv``, ``selection.csv``, ``retrain.csv``, the reports, and by default the MLflow
database (``mlflow.db``, artifacts in ``mlartifacts/``) and the Tune experiments (``tune/``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import yaml

from pcdarts_core.checkpoint import atomic_write_text
from pcdarts_core.errors import UserInputError

from .errors import SpecError, StudyInterrupted, error_line, one_line
from .reports import RANDOM, read_table, summary_metrics
from .selection import baseline_genotypes, canonical_genotype, select_genotypes
from .spec import StudySpec, parse_spec, retrain_config, retrain_seeds, search_grid, setting_label
from .stages import run_stage, trial_row, trial_status

STATE_FILE = "study.json"
SPEC_FILE = "spec.yaml"
STAGES = ("search", "select", "retrain", "report")

Say = Callable[[str], None]


# --- the trials of each stage ------------------------------------------------------------


def search_trials(spec: StudySpec) -> list[dict[str, Any]]:
    """One description per grid point: key, setting, seed, SearchConfig (and the retrain
    settings, to cost the genotype it finds)."""
    cost_config = retrain_config(spec, seed=0).model_dump()
    trials = []
    for index, (point, config) in enumerate(search_grid(spec), start=1):
        trials.append(
            {
                "key": f"search-{index:03d}",
                "stage": "search",
                "setting": setting_label(point),
                "seed": config.seed,
                "config": config.model_dump(),
                "retrain_config": cost_config,
                "cpus": spec.resources.cpus_per_trial,
                "gpus": spec.resources.gpus_per_trial,
            }
        )
    return trials


def retrain_trials(spec: StudySpec, selection: pd.DataFrame) -> list[dict[str, Any]]:
    """Each selected genotype and each random baseline, with every retrain seed, same protocol."""
    from pcdarts_core import parse_genotype

    steps = search_grid(spec)[0][1].steps
    jobs = [(row.genotype_id, row.setting, row.source, parse_genotype(row.genotype)) for row in selection.itertuples(index=False)]
    avoid = {canonical_genotype(g) for *_, g in jobs}
    jobs += [(gid, RANDOM, RANDOM, g) for gid, g in baseline_genotypes(spec.baseline, steps, avoid)]
    trials = []
    for genotype_id, setting, source, genotype in jobs:
        for seed in retrain_seeds(spec):
            trials.append(
                {
                    "key": f"retrain-{genotype_id}-seed{seed}",
                    "stage": "retrain",
                    "setting": setting,
                    "seed": seed,
                    "genotype_id": genotype_id,
                    "source": source,
                    "genotype": genotype.to_dict(),
                    "config": retrain_config(spec, seed).model_dump(),
                    "cpus": spec.resources.cpus_per_trial,
                    "gpus": spec.resources.gpus_per_trial,
                }
            )
    return trials


def describe_plan(spec: StudySpec, folder: Path) -> str:
    """What ``--dry-run`` prints: every search trial, the selection rule and the retrain plan."""
    trials = search_trials(spec)
    seeds = retrain_seeds(spec)
    res = spec.resources
    select_where = "over the whole study" if spec.select.per == "study" else "within each setting"
    settings = list(dict.fromkeys(t["setting"] for t in trials))
    top = spec.select.top * (1 if spec.select.per == "study" else len(settings))
    most = (top + spec.baseline.count) * len(seeds)
    train = retrain_config(spec, seed=seeds[0])
    lines = [
        f"study {spec.name}: {len(trials)} search trials, then up to {most} retrain trials",
        f"  folder {folder}, MLflow {spec.tracking_uri(folder)} (experiment {spec.experiment_name()}), Tune storage {spec.storage_path(folder)}",
        f"  each trial: {res.cpus_per_trial:g} CPU, {res.gpus_per_trial if res.gpus_per_trial == 'auto' else format(res.gpus_per_trial, 'g')} GPU; at most "
        f"{res.max_concurrent_trials or 'as many as fit'} at once; {res.max_failures} retries",
        "",
        f"stage search: {len(trials)} trials ({len(settings)} settings x {len(trials) // max(1, len(settings))} seeds), "
        f"{trials[0]['config']['epochs']} epochs each",
    ]
    for t in trials:
        lines.append(f"  {t['key']}  {t['setting']:<32} seed={t['seed']}")
    lines += [
        "",
        f"stage select: the top {spec.select.top} genotypes by final {spec.select.metric} {select_where}; "
        "identical genotypes retrained once",
        "",
        f"stage retrain: up to {top} selected genotypes + {spec.baseline.count} random baselines, "
        f"each with seeds {seeds}: up to {most} trials",
        f"  protocol: {train.network} network, C={train.init_channels}, {train.layers} cells, {train.epochs} epochs, "
        f"batch {train.batch_size}, lr {train.lr} ({train.lr_schedule})",
        "",
        "stage report: report.html with its pictures, summary.md/.csv, comparisons.csv, trials.csv (also logged to the study's MLflow run)",
    ]
    return "\n".join(lines)


# --- the study ----------------------------------------------------------------------------


class Study:
    """A study folder and the stages run into it."""

    def __init__(self, folder: Path, spec: StudySpec, state: dict[str, Any]) -> None:
        self.folder = folder
        self.spec = spec
        self.state = state

    @classmethod
    def create(cls, folder: Path, spec: StudySpec, raw: dict[str, Any]) -> Study:
        if (folder / STATE_FILE).exists():
            raise UserInputError(f"--out {folder}: already holds a study; pass --resume to continue it or choose another --out")
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / SPEC_FILE, yaml.safe_dump(raw, sort_keys=False))
        state = {
            "study_id": uuid.uuid4().hex,
            "name": spec.name,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "stages_done": [],
            # resolved once, so that a resume from another working directory finds the same places
            "mlflow_uri": spec.tracking_uri(folder),
            "storage_path": spec.storage_path(folder),
        }
        study = cls(folder, spec, state)
        study._save_state()
        return study

    @classmethod
    def resume(cls, folder: Path, spec: StudySpec | None, raw: dict[str, Any] | None) -> Study:
        """The study saved in ``folder``. A spec given again must equal the saved one, except ``ray``."""
        if not (folder / STATE_FILE).is_file():
            raise UserInputError(f"--resume: {folder / STATE_FILE} does not exist; run without --resume to start a study there")
        saved_raw = yaml.safe_load((folder / SPEC_FILE).read_text(encoding="utf-8"))
        saved = parse_spec(saved_raw, source=str(folder / SPEC_FILE))
        if spec is not None:
            changed = first_difference(saved.model_dump(exclude={"ray"}), spec.model_dump(exclude={"ray"}))
            if changed is not None:
                raise SpecError(
                    changed,
                    f"differs from the study in {folder} (saved in {SPEC_FILE}); resume with the same spec and --set "
                    "values, or start a new study with another --out",
                    source="--resume",
                )
            saved = saved.model_copy(update={"ray": spec.ray})
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        return cls(folder, saved, state)

    def _save_state(self) -> None:
        atomic_write_text(self.folder / STATE_FILE, json.dumps(self.state, indent=2) + "\n")

    def _done(self, stage: str) -> bool:
        return stage in self.state["stages_done"]

    def _mark_done(self, stage: str) -> None:
        self.state["stages_done"].append(stage)
        self._save_state()

    @property
    def settings(self) -> list[str]:
        return list(dict.fromkeys(t["setting"] for t in search_trials(self.spec)))

    # --- running ------------------------------------------------------------------
    def run(self, verbose: bool = False, say: Say = print) -> dict[str, Path]:
        """Run the stages not yet done; returns the report paths. Raises StudyInterrupted if stopped."""
        from .tracking import StudyTracker

        spec, folder = self.spec, self.folder
        uri = self.state["mlflow_uri"]
        artifacts = folder / "mlartifacts" if spec.tracking.uri is None else None
        tracker = StudyTracker.connect(uri, spec.experiment_name(), artifacts)
        parent = tracker.study_run(self.state["study_id"], spec.name, spec.model_dump())
        if "mlflow_run_id" not in self.state:
            self.state.update(mlflow_run_id=parent, mlflow_experiment_id=tracker.experiment_id)
            self._save_state()
        say(f"study {spec.name}: folder {folder}, MLflow run {parent} in experiment {spec.experiment_name()!r} at {uri}")
        try:
            needs_ray = not (self._done("search") and self._done("retrain"))
            with ray_session(spec, verbose) if needs_ray else contextlib.nullcontext():
                self._search_stage(tracker, parent, verbose, say)
                self._select_stage(say)
                self._retrain_stage(tracker, parent, verbose, say)
            paths = self._report_stage(tracker, parent, say)
        except (StudyInterrupted, KeyboardInterrupt):
            _close_runs(tracker, parent, "KILLED", say)
            raise
        except BaseException:
            _close_runs(tracker, parent, "FAILED", say)
            raise
        tracker.client.set_terminated(parent, "FINISHED")
        return paths

    def tune_experiment(self, stage: str) -> str:
        """The Tune experiment of a stage. The study id is in the name: another study of the same
        name in a shared storage is never restored."""
        return f"{self.spec.name}-{self.state['study_id'][:8]}-{stage}"

    def _stage(self, stage: str, trials: list[dict[str, Any]], trainable: Any, metric: str, mode: str,
               tracker: Any, parent: str, verbose: bool, say: Say) -> None:
        from .progress import StageProgress
        from .tracking import TrialLogger

        say(f"stage {stage}: {len(trials)} trials")
        callbacks = [TrialLogger(tracker.uri, tracker.experiment_id, parent), StageProgress(stage, metric, mode)]
        results = run_stage(self.tune_experiment(stage), trainable, trials, self.spec, self.state["storage_path"], callbacks, verbose, say)
        # The stage is done only once MLflow holds all of it: if it cannot, the stage stays open and
        # --resume logs what is missing (restoring a finished Tune experiment runs nothing again).
        catch_up(tracker, parent, results, say=say)
        rows = pd.DataFrame([trial_row(r) for r in results])
        atomic_write_text(self.folder / f"{stage}.csv", rows.to_csv(index=False))
        failed = rows[rows["status"] != "finished"]
        for row in failed.itertuples(index=False):
            say(f"  {row.trial} ({row.setting}, seed {row.seed}): {row.status}: {row.error}")
        self._mark_done(stage)

    def _search_stage(self, tracker: Any, parent: str, verbose: bool, say: Say) -> None:
        if self._done("search"):
            say("stage search: done earlier")
            return
        from .trainables import search_trial

        self._stage("search", search_trials(self.spec), search_trial, "valid_acc", "max", tracker, parent, verbose, say)

    def _select_stage(self, say: Say) -> None:
        if self._done("select"):
            return
        searches = read_table(self.folder / "search.csv")
        selection = select_genotypes(searches, self.spec.select)
        atomic_write_text(self.folder / "selection.csv", selection.to_csv(index=False))
        for row in selection.itertuples(index=False):
            say(f"  selected {row.genotype_id}: {row.source} ({row.setting}), {row.metric} {row.value:.3f}, found by {row.found_by}")
        self._mark_done("select")

    def _retrain_stage(self, tracker: Any, parent: str, verbose: bool, say: Say) -> None:
        if self._done("retrain"):
            say("stage retrain: done earlier")
            return
        from .trainables import retrain_trial

        selection = read_table(self.folder / "selection.csv")
        trials = retrain_trials(self.spec, selection)
        if not trials:
            say("stage retrain: nothing to retrain (no search finished, no baseline asked for)")
            atomic_write_text(self.folder / "retrain.csv", "")
            self._mark_done("retrain")
            return
        self._stage("retrain", trials, retrain_trial, "test_acc", "max", tracker, parent, verbose, say)

    def _report_stage(self, tracker: Any, parent: str, say: Say) -> dict[str, Path]:
        """The tables, pictures and report.html (see ``orchestrator.report``), logged to the study's run.
        First the searches' α/β histories are copied from their Tune checkpoints into the folder, once,
        so that ``python -m orchestrator.report`` can rebuild the report from the folder alone."""
        from mlflow.entities import Metric

        from .arch_history import ARCH_HISTORY_FILE, save_arch_history
        from .report import build_study_report, log_study_report

        say("stage report: tables, pictures, report.html")
        if not (self.folder / ARCH_HISTORY_FILE).is_file():
            save_arch_history(self.folder, self.state["storage_path"], self.tune_experiment("search"), search_trials(self.spec), say)
        paths = build_study_report(self.folder, self.spec, self.state, say)
        summary = read_table(paths["summary"])
        metrics = [Metric(k, float(v), 0, 0) for k, v in summary_metrics(summary).items()]
        if metrics and not self._done("report"):
            tracker.client.log_batch(parent, metrics=metrics)
        log_study_report(tracker.client, parent, self.folder, paths)
        if not self._done("report"):
            self._mark_done("report")
        say((self.folder / "summary.md").read_text(encoding="utf-8"))
        return paths


def first_difference(old: Any, new: Any, path: str = "") -> str | None:
    """The dotted path of the first value that differs between two nested dictionaries, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(dict.fromkeys([*old, *new])):
            found = first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    return None if old == new else path


def check_data(spec: StudySpec) -> None:
    """Load the dataset once on the driver before any trial: a missing or malformed dataset is one
    clear error instead of every trial failing, and CIFAR is downloaded once, not by each trial."""
    from pcdarts_core import load_dataset
    from pcdarts_core.errors import DataError

    d = spec.dataset
    try:
        data = load_dataset(d.name, d.root, download=d.download, image_size=d.image_size)
    except DataError as err:
        raise SpecError("dataset", str(err)) from None
    if data.test is None:
        raise SpecError("dataset.root", f"{d.root}: has no test split (val/ or test/), which the retrain stage reports; add one")


def preflight(spec: StudySpec, folder: Path) -> None:
    """Checks before a new study writes anything: the folder is free and writable, the data loads,
    and a tracking server given in the spec answers."""
    if (folder / STATE_FILE).exists():
        raise UserInputError(f"--out {folder}: already holds a study; pass --resume to continue it or choose another --out")
    check_writable(folder)
    check_data(spec)
    if spec.tracking.uri is not None:
        from .tracking import StudyTracker

        StudyTracker.connect(spec.tracking.uri, spec.experiment_name(), None)


#: Bytes the write check writes (and removes): a full disk fails here, not in the middle of a stage.
PROBE_BYTES = 1 << 16


def check_writable(folder: Path) -> None:
    """``folder`` can be created and written (a probe file is written, synced and removed). Folders
    made for the check are removed again, so a refused study leaves nothing behind."""
    made: list[Path] = []
    place = folder.absolute()
    while not place.exists() and place != place.parent:
        made.append(place)
        place = place.parent
    if not place.is_dir():
        raise UserInputError(f"--out {folder}: {place} is a file, not a folder; choose another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".write-check-") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        raise UserInputError(
            f"--out {folder}: cannot write there ({err.strerror or err}); choose another --out, or free space / "
            "fix the permissions there"
        ) from None
    finally:
        for path in made:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()


def catch_up(tracker: Any, parent: str, results: list[Any], say: Say = print, wait_s: float = 60.0) -> None:
    """Complete every trial's MLflow run from Tune's own results: epochs the live logger missed
    (a driver restart, a tracking outage), then, if the run is not ended yet, its final values,
    genotype files and end status. A tracking server that does not answer is tried again for
    ``wait_s`` seconds; after that the study stops, naming the trials whose logs are missing."""
    from mlflow.exceptions import MlflowException

    pending = list(results)
    deadline = time.monotonic() + wait_s
    while True:
        failed, reason = [], ""
        for index, result in enumerate(pending):
            try:
                _catch_up_trial(tracker, parent, result)
            except (MlflowException, OSError) as err:  # an unreachable or failing tracking server
                failed = pending[index:]  # the next trials would wait for the same server: try them all later
                reason = one_line(err)
                break
        if not failed:
            return
        keys = [r.config["trial"]["key"] for r in failed]
        if time.monotonic() >= deadline:
            raise StudyInterrupted(
                f"MLflow at {tracker.uri} did not take the runs of {len(keys)} trials ({', '.join(keys)}): {reason}; "
                "their results are kept by Ray Tune and are logged when the study is resumed with MLflow up"
            )
        say(f"  MLflow at {tracker.uri} did not answer ({reason[:120]}); trying again for the runs of {', '.join(keys)}")
        time.sleep(5)
        pending = failed


def _catch_up_trial(tracker: Any, parent: str, result: Any) -> None:
    from .stages import epoch_rows
    from .tracking import RUN_STATUS, trial_identity

    key, tags, params = trial_identity(result.config)
    existing = tracker.find_trial_run(parent, key)
    # Ended by finish_trial, not merely closed after an interruption (KILLED) part-way through it.
    ended = existing is not None and existing.info.status == RUN_STATUS.get(existing.data.tags.get("pcdarts.status"))
    run_id = existing.info.run_id if ended else tracker.trial_run(parent, key, tags, params)
    tracker.log_epochs(run_id, epoch_rows(result), tracker.logged_epochs(run_id))
    if ended:
        return
    status = trial_status(result)
    final = dict(result.metrics or {})
    if result.error is not None and not final.get("error"):
        final["error"] = error_line(result.error)
    tracker.finish_trial(run_id, status, final if status == "finished" else {"error": final.get("error")})


def _close_runs(tracker: Any, parent: str, status: str, say: Say) -> None:
    """End the study's open runs after an interruption or a failure; a tracking outage only warns (a resume reopens them)."""
    try:
        tracker.close_open_runs(parent, status)
    except Exception as err:  # noqa: BLE001
        say(f"warning: could not mark the study's MLflow runs {status} ({one_line(err)[:160]}); --resume reopens them")


@contextlib.contextmanager
def ray_session(spec: StudySpec, verbose: bool) -> Iterator[None]:
    """Ray for the study: joined at ``ray.address``, or a local Ray started (and stopped) here.
    A Ray already initialised in this process is used as it is."""
    import ray

    if ray.is_initialized():
        yield
        return
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.WARNING,
    }
    if spec.ray.address:
        check_ray_address(spec.ray.address)
    try:
        if spec.ray.address:
            ray.init(address=spec.ray.address, **options)
        else:
            ray.init(num_cpus=spec.ray.num_cpus, num_gpus=spec.ray.num_gpus, **options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        reason = " ".join(str(err).split())[:200]
        if spec.ray.address:
            raise SpecError(
                "ray.address",
                f"{spec.ray.address!r}: cannot join Ray ({reason}); start the cluster (ray start --head) "
                "or fix ray.address (leave it out for a local Ray)",
            ) from None
        raise SpecError("ray", f"cannot start a local Ray ({reason}); check ray.num_cpus and ray.num_gpus") from None
    try:
        check_resources(spec, ray.cluster_resources())
        yield
    finally:
        ray.shutdown()


def check_ray_address(address: str, timeout_s: float = 3.0) -> None:
    """A cluster address (``host:port``) answers a TCP connection within ``timeout_s``: ``ray.init``
    would otherwise wait a long time for a head that is not there. Ray Client (``ray://``) is refused:
    Ray Tune then runs each stage on the cluster, out of reach of the driver's Ctrl-C handling."""
    if address in ("auto", "local"):
        return  # Ray finds (or fails to find) the cluster of this machine itself, quickly
    if address.startswith("ray://"):
        raise SpecError(
            "ray.address",
            f"{address!r}: Ray Client addresses are not supported; run the study on a node of the cluster with "
            "ray.address: auto, or give the head's host:port (e.g. 10.0.0.1:6379)",
        )
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SpecError(
            "ray.address",
            f"{address!r}: write the head's address as host:port (e.g. 10.0.0.1:6379) or auto",
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise SpecError(
            "ray.address",
            f"{address!r}: nothing answers there ({reason}); start the cluster's head (ray start --head --port {port}) "
            "or fix ray.address (leave it out for a local Ray)",
        ) from None


def check_resources(spec: StudySpec, available: dict[str, float]) -> None:
    """A trial that asks for more than the whole cluster has would wait forever: refuse it now.
    ``gpus_per_trial: auto`` asks for at most one GPU, or none where the cluster has none (said by
    each stage, see :func:`orchestrator.gpu_packing.measure_gpu_shares`)."""
    for name, field, asked in (("CPU", "cpus_per_trial", spec.resources.cpus_per_trial), ("GPU", "gpus_per_trial", spec.resources.gpus_per_trial)):
        if asked == "auto":
            continue
        have = available.get(name, 0.0)
        if asked > have:
            raise SpecError(
                f"resources.{field}",
                f"{asked:g}: the Ray cluster has {have:g} {name}s in all, so no trial could start; "
                f"ask for at most {have:g} or add nodes",
            )
