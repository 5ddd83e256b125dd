"""What the report shows, computed once from the study folder: the trials, the summary, the
retrained genotypes, the comparisons and the searches' α/β histories."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..plan import StudyPlan
from ..study_files import SELECTION_FILE
from .arch_history import load_arch_history
from .comparisons import compare_settings, search_retrain_agreement
from .folder import load_trials, read_table
from .genotypes import genotype_results
from .screening import ScreenSummary, screen_summary
from .statistics import Agreement
from .summary import summarize


@dataclass(frozen=True)
class StudyResults:
    """The study's results as the report's tables and pictures use them."""

    #: search.csv, screen.csv (if any) and retrain.csv as one table, and selection.csv
    trials: pd.DataFrame
    selection: pd.DataFrame
    #: the settings in grid order
    settings: tuple[str, ...]
    #: arch_history.json (see :func:`~orchestrator.report.arch_history.load_arch_history`)
    histories: dict[str, Any]
    summary: pd.DataFrame
    genotypes: pd.DataFrame
    comparisons: pd.DataFrame
    agreement: Agreement
    #: what the comparisons leave out and why
    notes: list[str]
    #: the screen stage's summary (``select.by: screen``), else None
    screen: ScreenSummary | None = None


def reference_name(plan: StudyPlan) -> str:
    """How the comparisons name the reference setting: DARTS by default, else ``reference``."""
    return "DARTS" if plan.spec.report.reference is None else "reference"


def study_results(folder: Path, plan: StudyPlan) -> StudyResults:
    trials = load_trials(folder)
    selection = read_table(folder / SELECTION_FILE)
    histories = load_arch_history(folder)
    genotypes = genotype_results(trials, selection)
    comparisons = compare_settings(trials, selection, plan.settings, plan.reference, reference_name(plan))
    notes = [plan.reference_note] if plan.reference_note else []
    if plan.reference is not None and not (comparisons["versus"] == plan.reference).any():
        notes.append(f"Reference setting {plan.reference}: no comparison (it or the others lack finished values).")
    return StudyResults(
        trials=trials,
        selection=selection,
        settings=plan.settings,
        histories=histories,
        summary=summarize(trials, selection, plan.settings, histories["trials"]),
        genotypes=genotypes,
        comparisons=comparisons,
        agreement=search_retrain_agreement(genotypes),
        notes=notes,
        screen=screen_summary(trials, genotypes),
    )
