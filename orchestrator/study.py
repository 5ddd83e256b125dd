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
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import yaml

from pcdarts_core.checkpoint import atomic_write_text
from pcdarts_core.errors import UserInputError

from .errors import SpecError, StudyInterrupted, error_line
from .reports import RANDOM, read_table, summarize, summary_metrics, write_reports
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
        f"  each trial: {res.cpus_per_trial:g} CPU, {res.gpus_per_trial:g} GPU; at most "
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
        "stage report: trials.csv, summary.csv, summary.md (also logged to the study's MLflow run)",
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
            with ray_session(spec, verbose):
                self._search_stage(tracker, parent, verbose, say)
                self._select_stage(say)
                self._retrain_stage(tracker, parent, verbose, say)
            paths = self._report_stage(tracker, parent, say)
        except (StudyInterrupted, KeyboardInterrupt):
            tracker.close_open_runs(parent, "KILLED")
            raise
        except BaseException:
            tracker.close_open_runs(parent, "FAILED")
            raise
        tracker.client.set_terminated(parent, "FINISHED")
        return paths

    def _stage(self, stage: str, trials: list[dict[str, Any]], trainable: Any, metric: str, mode: str,
               tracker: Any, parent: str, verbose: bool, say: Say) -> None:
        from .progress import StageProgress
        from .tracking import TrialLogger

        say(f"stage {stage}: {len(trials)} trials")
        callbacks = [TrialLogger(tracker.uri, tracker.experiment_id, parent), StageProgress(stage, metric, mode)]
        # The study id in the experiment's name: another study of the same name in a shared storage is never restored.
        experiment = f"{self.spec.name}-{self.state['study_id'][:8]}-{stage}"
        results = run_stage(experiment, trainable, trials, self.spec, self.state["storage_path"], callbacks, verbose)
        catch_up(tracker, parent, results)
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
        tables = [read_table(self.folder / "search.csv")]
        if (self.folder / "retrain.csv").stat().st_size > 0:
            tables.append(read_table(self.folder / "retrain.csv"))
        trials = pd.concat(tables, ignore_index=True)
        selection = read_table(self.folder / "selection.csv")
        summary = summarize(trials, selection, self.settings)
        paths = write_reports(self.folder, self.spec.name, trials, selection, summary)
        from mlflow.entities import Metric

        metrics = [Metric(k, float(v), 0, 0) for k, v in summary_metrics(summary).items()]
        if metrics and not self._done("report"):
            tracker.client.log_batch(parent, metrics=metrics)
        for path in [*paths.values(), self.folder / "selection.csv", self.folder / SPEC_FILE]:
            tracker.client.log_artifact(parent, str(path))
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
    """Checks before a new study writes anything: the folder is free, the data loads, and a tracking
    server given in the spec answers."""
    if (folder / STATE_FILE).exists():
        raise UserInputError(f"--out {folder}: already holds a study; pass --resume to continue it or choose another --out")
    check_data(spec)
    if spec.tracking.uri is not None:
        from .tracking import StudyTracker

        StudyTracker.connect(spec.tracking.uri, spec.experiment_name(), None)


def catch_up(tracker: Any, parent: str, results: list[Any]) -> None:
    """Complete every trial's MLflow run from Tune's own results: epochs the live logger missed
    (a driver restart, a tracking outage), then, if the run is not ended yet, its final values,
    genotype files and end status."""
    from .stages import epoch_rows
    from .tracking import trial_identity

    for result in results:
        key, tags, params = trial_identity(result.config)
        existing = tracker.find_trial_run(parent, key)
        ended = existing is not None and existing.info.status != "RUNNING" and "pcdarts.status" in existing.data.tags
        run_id = existing.info.run_id if ended else tracker.trial_run(parent, key, tags, params)
        tracker.log_epochs(run_id, epoch_rows(result), tracker.logged_epochs(run_id))
        if ended:
            continue
        status = trial_status(result)
        final = dict(result.metrics or {})
        if result.error is not None and not final.get("error"):
            final["error"] = error_line(result.error)
        tracker.finish_trial(run_id, status, final if status == "finished" else {"error": final.get("error")})


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


def check_resources(spec: StudySpec, available: dict[str, float]) -> None:
    """A trial that asks for more than the whole cluster has would wait forever: refuse it now."""
    for name, field, asked in (("CPU", "cpus_per_trial", spec.resources.cpus_per_trial), ("GPU", "gpus_per_trial", spec.resources.gpus_per_trial)):
        have = available.get(name, 0.0)
        if asked > have:
            raise SpecError(
                f"resources.{field}",
                f"{asked:g}: the Ray cluster has {have:g} {name}s in all, so no trial could start; "
                f"ask for at most {have:g} or add nodes",
            )
