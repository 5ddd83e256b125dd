"""``study.json``: what a study records about itself, typed.

Written when the study is created and after each finished stage; read by a resume and by
``python -m orchestrator.report``. The places (MLflow URI, Tune storage) are resolved once, at
creation, so a resume from another working directory finds the same ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from pcdarts_core.checkpoint import atomic_write_text
from pcdarts_core.errors import UserInputError

from .study_files import STATE_FILE


class StageTime(BaseModel):
    """How long a stage ran (every session added up) and, for a stage of trials, how busy its slots were:
    ``slots`` trials could run at once, ``epoch_s`` seconds went into their epochs, in ``worker_processes``
    distinct worker processes. ``occupancy`` is the share of the slot-seconds spent inside epochs."""

    model_config = ConfigDict(extra="forbid")

    wall_s: float = 0.0
    slots: int | None = None
    epoch_s: float | None = None
    worker_processes: int | None = None

    @property
    def occupancy(self) -> float | None:
        if not self.slots or self.epoch_s is None or self.wall_s <= 0:
            return None
        return self.epoch_s / (self.wall_s * self.slots)


class StudyState(BaseModel):
    """The contents of ``study.json``, in the order the file holds them."""

    model_config = ConfigDict(extra="forbid")

    study_id: str
    name: str
    created: str
    stages_done: list[str] = []
    mlflow_uri: str
    storage_path: str
    #: set once the study's MLflow run exists
    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None
    #: per stage, its time and slot use (studies before these were recorded have none)
    stage_times: dict[str, StageTime] = {}

    @classmethod
    def read(cls, folder: Path) -> StudyState:
        """The state saved in ``folder``; a damaged file is one line naming it."""
        path = folder / STATE_FILE
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as err:
            raise UserInputError(f"{path}: not valid JSON ({err}); the study folder is damaged") from None
        except ValidationError as err:
            problem = err.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise UserInputError(f"{path}: {where}: {problem['msg']}; the study folder is damaged") from None

    def write(self, folder: Path) -> None:
        """Replace ``study.json`` atomically (the unset MLflow ids are left out, as before they exist)."""
        atomic_write_text(folder / STATE_FILE, json.dumps(self.model_dump(exclude_none=True), indent=2) + "\n")

    def done(self, stage: str) -> bool:
        return stage in self.stages_done

    def stage_time(self, stage: str) -> StageTime:
        """The stage's record, made empty the first time it is asked for."""
        return self.stage_times.setdefault(stage, StageTime())
