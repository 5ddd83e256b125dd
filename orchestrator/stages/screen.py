"""The screen stage (``select.by: screen``): each candidate genotype retrained briefly, with the screen's
seeds, and ranked on a split held out of the training set, as one Tune experiment; optionally Ray Tune's
ASHA stops the weak candidates early. Its rows are ``screen.csv``; the genotypes it chooses are
``selection.csv``, which the retrain stage trains (the DARTS protocol's way of picking among searched cells)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from pcdarts_core.checkpoint import atomic_write_text

from ..selection import select_screened
from ..spec import StudySpec, screen_epochs, screen_section
from ..study_files import CANDIDATES_FILE, SELECTION_FILE
from ..trial import Trial
from .context import StageContext
from .retrain import retrain_trial
from .tune_stage import TuneStage

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

#: The metric ASHA and the progress line rank screen trials by: validation accuracy on the held-out split.
RANK_METRIC = "valid_acc"


def screens(spec: StudySpec) -> bool:
    return spec.select.by == "screen"


def asha(spec: StudySpec) -> TrialScheduler | None:
    """Ray Tune's ASHA on the screen's validation accuracy, one rung per epoch, or None."""
    screen = screen_section(spec)
    if screen.scheduler != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="epoch",
        metric=RANK_METRIC,
        mode="max",
        max_t=screen_epochs(spec),
        grace_period=screen.grace_period,
        reduction_factor=screen.reduction_factor,
    )


def _trials(context: StageContext) -> list[Trial]:
    from ..report import read_table  # on the driver only (see the retrain stage)

    return context.plan.screen_trials(read_table(context.folder / CANDIDATES_FILE))


def _choose(context: StageContext, rows: pd.DataFrame) -> None:
    """``selection.csv`` from the screen's rows: the top candidates by their final screen accuracy."""
    from ..report import read_table

    candidates = read_table(context.folder / CANDIDATES_FILE)
    selection = select_screened(candidates, rows, context.study.spec.select)
    atomic_write_text(context.folder / SELECTION_FILE, selection.to_csv(index=False))
    if selection.empty:
        context.say("  no candidate finished the screen: none selected")
    for row in selection.itertuples(index=False):
        context.say(
            f"  selected {row.genotype_id}: screen valid_acc {row.value:.3f} (from {row.source}, {row.setting})"
        )


SCREEN = TuneStage(
    "screen",
    _trials,
    retrain_trial,
    metric=RANK_METRIC,
    mode="max",
    nothing_to_run="nothing to screen (no search finished)",
    applies_to=screens,
    scheduler=asha,
    after=_choose,
)
