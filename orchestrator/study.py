"""A study: its folder, its state, and running its stages (resuming where it stopped).

The stages run in the order :data:`~orchestrator.stages.sequence.SEQUENCE` declares: ``search`` (one
Tune experiment over the grid), ``select`` (the genotypes to retrain), ``retrain`` (a second Tune
experiment: selected genotypes and random baselines, each with every retrain seed) and ``report``.
``study.json`` records the finished stages, so a resumed study skips them; an unfinished stage's Tune
experiment is restored, so its finished trials are kept and the others continue from their last
checkpoints.

The study folder holds ``spec.yaml`` (the spec as run, overrides applied), ``study.json``,
``search.csv``, ``selection.csv``, ``retrain.csv``, the reports, and by default the MLflow
database (``mlflow.db``, artifacts in ``mlartifacts/``) and the Tune experiments (``tune/``).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from pcdarts_core.checkpoint import atomic_write_text
from pcdarts_core.errors import UserInputError

from .errors import SpecError, StudyInterrupted
from .plan import StudyPlan
from .preflight import check_free
from .ray_cluster import ray_session
from .spec import StudySpec, parse_spec
from .stages.context import Stage, StageContext
from .stages.sequence import SEQUENCE
from .study_files import SPEC_FILE, STATE_FILE
from .study_state import StudyState
from .tracking import StudyTracker, close_runs

Say = Callable[[str], None]


class Study:
    """A study folder, its plan and its state (``study.json``), and the stages run into it."""

    def __init__(self, folder: Path, spec: StudySpec, state: StudyState) -> None:
        self.folder = folder
        self.plan = StudyPlan.from_spec(spec)
        self.state = state

    @property
    def spec(self) -> StudySpec:
        return self.plan.spec

    @classmethod
    def create(cls, folder: Path, spec: StudySpec, raw: dict[str, Any]) -> Study:
        check_free(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / SPEC_FILE, yaml.safe_dump(raw, sort_keys=False))
        state = StudyState(
            study_id=uuid.uuid4().hex,
            name=spec.name,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            # resolved once, so that a resume from another working directory finds the same places
            mlflow_uri=spec.tracking_uri(folder),
            storage_path=spec.storage_path(folder),
        )
        study = cls(folder, spec, state)
        study.save_state()
        return study

    @classmethod
    def resume(cls, folder: Path, spec: StudySpec | None, raw: dict[str, Any] | None) -> Study:
        """The study saved in ``folder``. A spec given again must equal the saved one, except ``ray``."""
        if not (folder / STATE_FILE).is_file():
            raise UserInputError(
                f"--resume: {folder / STATE_FILE} does not exist; run without --resume to start a study there"
            )
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
        return cls(folder, saved, StudyState.read(folder))

    # --- study.json -------------------------------------------------------------------------
    def save_state(self) -> None:
        self.state.write(self.folder)

    def done(self, stage: str) -> bool:
        return self.state.done(stage)

    def mark_done(self, stage: str) -> None:
        self.state.stages_done.append(stage)
        self.save_state()

    def tune_experiment(self, stage: str) -> str:
        """The Tune experiment of a stage. The study id is in the name: another study of the same
        name in a shared storage is never restored."""
        return f"{self.spec.name}-{self.state.study_id[:8]}-{stage}"

    # --- running ----------------------------------------------------------------------------
    def run(self, verbose: bool = False, say: Say = print) -> None:
        """Run the stages not yet done. Raises StudyInterrupted if stopped.

        Ray runs from the first stage to the last one that uses it, if any of these is still to do;
        the stages after it (the report) run once Ray is stopped."""
        spec, folder = self.spec, self.folder
        uri = self.state.mlflow_uri
        artifacts = folder / "mlartifacts" if spec.tracking.uri is None else None
        tracker = StudyTracker.connect(uri, spec.experiment_name(), artifacts)
        parent = tracker.study_run(self.state.study_id, spec.name, spec.model_dump())
        if self.state.mlflow_run_id is None:
            self.state.mlflow_run_id, self.state.mlflow_experiment_id = parent, tracker.experiment_id
            self.save_state()
        say(
            f"study {spec.name}: folder {folder}, MLflow run {parent} in experiment {spec.experiment_name()!r} at {uri}"
        )
        context = StageContext(self, tracker, parent, verbose, say)
        stages = [stage for stage in SEQUENCE if stage.applies(spec)]
        last_ray = max((i for i, stage in enumerate(stages) if stage.uses_ray), default=-1)
        with_ray, after_ray = stages[: last_ray + 1], stages[last_ray + 1 :]
        try:
            needs_ray = any(stage.uses_ray and not self.done(stage.name) for stage in with_ray)
            with ray_session(spec, verbose) if needs_ray else contextlib.nullcontext():
                for stage in with_ray:
                    self._timed(stage, context)
            for stage in after_ray:
                self._timed(stage, context)
        except (StudyInterrupted, KeyboardInterrupt):
            close_runs(tracker, parent, "KILLED", say)
            raise
        except BaseException:
            close_runs(tracker, parent, "FAILED", say)
            raise
        tracker.client.set_terminated(parent, "FINISHED")

    def _timed(self, stage: Stage, context: StageContext) -> None:
        """Run a stage, adding its time to ``study.json`` (also when it is interrupted); a stage done earlier (the
        report, rebuilt on every resume, included) adds nothing."""
        if self.done(stage.name):
            stage.run(context)
            return
        start = time.monotonic()
        try:
            stage.run(context)
        finally:
            self.state.stage_time(stage.name).wall_s += round(time.monotonic() - start, 3)
            self.save_state()


def first_difference(old: Any, new: Any, path: str = "") -> str | None:
    """The dotted path of the first value that differs between two nested dictionaries, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(dict.fromkeys([*old, *new])):
            found = first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    return None if old == new else path
