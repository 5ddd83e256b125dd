"""What the screen stage (``select.by: screen``) found and cost: how its ranking agrees with the search's
and with the final retraining, how many candidates ASHA stopped, and the device-hours it spent and saved."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..selection import screen_scores
from ..trial import TrialStatus
from .statistics import FEW, Agreement, rank_agreement
from .text import p_text


@dataclass(frozen=True)
class ScreenSummary:
    candidates: int
    trials: int
    stopped: int
    #: "GPU" or "CPU": what the hours count
    unit: str
    hours: float
    #: the hours the stopped trials would have taken to the end (their mean time per epoch so far)
    saved_hours: float
    search_vs_screen: Agreement
    screen_vs_retrain: Agreement


def screen_summary(trials: pd.DataFrame, genotypes: pd.DataFrame) -> ScreenSummary | None:
    """The screen of a study, from its trials (``screen`` rows) and retrained genotypes; None without a screen."""
    screen = trials[trials["stage"] == "screen"]
    if screen.empty:
        return None
    searches = trials[trials["stage"] == "search"].set_index("trial")["valid_acc"]
    screened = screen_scores(screen)  # the candidates as the selection scored them
    sources = screen.groupby("genotype_id")["source"].first()
    search_acc = [float(searches.get(sources[g], float("nan"))) for g in screened.index]
    retrained = genotypes[genotypes["retrain_seeds"] > 0].set_index("genotype_id")["retrain_test_acc_mean"]
    both = [g for g in screened.index if g in retrained.index]
    gpus = pd.to_numeric(screen["gpus"], errors="coerce").fillna(0)
    unit, share = ("GPU", gpus) if (gpus > 0).any() else ("CPU", pd.to_numeric(screen["cpus"], errors="coerce"))
    time_s = pd.to_numeric(screen["time_s"], errors="coerce").fillna(0)
    epochs = pd.to_numeric(screen["epochs"], errors="coerce")
    planned = pd.to_numeric(screen["epochs_planned"], errors="coerce")
    stopped = screen["status"] == TrialStatus.STOPPED
    left = ((planned - epochs) * time_s / epochs.where(epochs > 0)).where(stopped, 0).fillna(0)
    return ScreenSummary(
        candidates=int(screen["genotype_id"].nunique()),
        trials=len(screen),
        stopped=int(stopped.sum()),
        unit=unit,
        hours=float((time_s * share).sum() / 3600),
        saved_hours=float((left * share).sum() / 3600),
        search_vs_screen=rank_agreement(search_acc, screened.tolist()),
        screen_vs_retrain=rank_agreement(screened[both].tolist(), retrained[both].tolist()),
    )


def _tau(what: str, agreement: Agreement) -> str:
    if agreement.tau != agreement.tau:
        return f"{what}: not measurable (n = {agreement.n})"
    hint = ", a hint at most" if agreement.n < FEW else ""
    return f"{what}: Kendall's tau = {agreement.tau:+.2f} ({p_text(agreement.p_value)}, n = {agreement.n}{hint})"


def screen_sentence(summary: ScreenSummary) -> str:
    """The screen in one finding: its size, ASHA's stops, its cost and savings, and its rank agreements."""
    text = f"Screen: {summary.candidates} candidate genotypes in {summary.trials} short retrainings"
    if summary.stopped:
        text += (
            f", {summary.stopped} stopped early by ASHA; it took {summary.hours:.3g} {summary.unit}-h and saved about "
            f"{summary.saved_hours:.3g} {summary.unit}-h against screening every candidate to the end"
        )
    else:
        text += f"; it took {summary.hours:.3g} {summary.unit}-h"
    return (
        f"{text}. {_tau('Search vs screen accuracy', summary.search_vs_screen)}; "
        f"{_tau('screen vs retrain accuracy', summary.screen_vs_retrain)}."
    )
