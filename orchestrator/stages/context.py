"""What every stage is given, and the shape of a stage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..plan import StudyPlan
    from ..spec import StudySpec
    from ..study import Study
    from ..tracking import StudyTracker

Say = Callable[[str], None]


@dataclass(frozen=True)
class StageContext:
    """A study being run: the study (folder, plan, study.json), its MLflow tracker and parent run, and
    how to talk (``say``; ``verbose``: Ray's and Tune's own output too)."""

    study: Study
    tracker: StudyTracker
    parent_run: str
    verbose: bool
    say: Say

    @property
    def folder(self) -> Path:
        return self.study.folder

    @property
    def plan(self) -> StudyPlan:
        return self.study.plan


class Stage(Protocol):
    """One step of a study. ``run`` does what is left of it (a stage done earlier does nothing, or only
    what must be redone) and marks it done in ``study.json``. ``uses_ray``: it needs a Ray session.
    ``applies``: whether the study's spec has this stage at all (the screen only with ``select.by: screen``);
    one that does not apply is neither run nor marked done."""

    name: str
    uses_ray: bool

    def applies(self, spec: StudySpec) -> bool: ...

    def run(self, context: StageContext) -> None: ...
