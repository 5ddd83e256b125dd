"""The pictures of ``report.html`` (and ``report_figures/``), declared in :data:`PICTURES`: each
kind of picture with the page section that shows it and the function that draws it from the study's
results. A new picture is one drawing in :mod:`~orchestrator.report.figures` and one
:class:`PictureKind` here; the page shows it in its section, in this order."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from pcdarts_core import parse_genotype

from ..trial import RANDOM, TrialStatus, is_baseline
from . import figures
from .genotypes import baseline_settings, setting_genotype_ids
from .results import StudyResults
from .text import percent


@dataclass(frozen=True)
class Picture:
    """One PNG of the report: its file name (in the figures folder), caption and bytes."""

    name: str
    caption: str
    data: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.data).decode("ascii")


@dataclass(frozen=True)
class PictureKind:
    """Pictures of one kind: the ``report.html`` section that shows them (``accuracy``,
    ``agreement``, ``cost``, ``genotypes``, ``architecture``) and ``draw``, which makes them from
    the study's results: none, one, or one per genotype or search."""

    section: str
    draw: Callable[[StudyResults], list[Picture]]


def _finished(results: StudyResults, stage: str) -> pd.DataFrame:
    trials = results.trials
    return trials[(trials["stage"] == stage) & (trials["status"] == TrialStatus.FINISHED)]


def _retrained(results: StudyResults) -> pd.DataFrame:
    return results.genotypes[results.genotypes["retrain_seeds"] > 0]


def accuracy_pictures(results: StudyResults) -> list[Picture]:
    searches, finished = _finished(results, "search"), _finished(results, "retrain")
    retrained = _retrained(results)
    found = setting_genotype_ids(results.selection)
    settings = results.settings
    search_groups = [(s, searches.loc[searches["setting"] == s, "valid_acc"].dropna().tolist()) for s in settings]
    baselines = baseline_settings(retrained)
    retrain_groups, seed_values = [], {}
    for label in [*settings, *baselines]:
        if label in baselines:
            ids = retrained.loc[retrained["setting"] == label, "genotype_id"].tolist()
        else:
            ids = found.get(label, [])
        accuracy = retrained.loc[retrained["genotype_id"].isin(ids), "retrain_test_acc_mean"].tolist()
        retrain_groups.append((label, accuracy))
        seed_values[label] = finished.loc[finished["genotype_id"].isin(ids), "test_acc"].dropna().tolist()
    caption = (
        "Accuracy per setting: every search (left) and every retrained genotype (right), boxes where a "
        "setting has two values or more."
    )
    return [Picture("accuracy.png", caption, figures.accuracy_figure(search_groups, retrain_groups, seed_values))]


def agreement_pictures(results: StudyResults) -> list[Picture]:
    retrained = _retrained(results)
    searched = retrained[~retrained["setting"].astype(str).map(is_baseline)]
    if not len(searched):
        return []
    agreement = results.agreement
    if agreement.tau == agreement.tau:
        tau_text = f"Kendall's tau = {agreement.tau:+.2f}, p = {agreement.p_value:.2g}, n = {agreement.n}"
    else:
        tau_text = f"Kendall's tau: not measurable (n = {agreement.n})"
    caption = "Search validation accuracy against retrain test accuracy of each retrained searched genotype."
    return [Picture("agreement.png", caption, figures.agreement_figure(searched, tau_text))]


def cost_pictures(results: StudyResults) -> list[Picture]:
    """Memory and time per epoch against K. The memory is the saved activations per image where the
    searches measured them (the same on every device), else their peak memory (older studies)."""
    searches = _finished(results, "search")
    if not len(searches):
        return []
    for column, what in (
        ("activation_bytes_per_image", "activation memory per image"),
        ("peak_memory_bytes", "peak memory"),
    ):
        if column in searches and pd.to_numeric(searches[column], errors="coerce").notna().any():
            caption = f"{what.capitalize()} and time per epoch of each search against K."
            return [Picture("cost_per_k.png", caption, figures.cost_figure(searches, column))]
    return []


def cell_pictures(results: StudyResults) -> list[Picture]:
    pictures = []
    for row in results.genotypes.itertuples(index=False):
        if not isinstance(row.genotype, str):
            continue
        if row.setting == RANDOM:
            where = "random cell"
        elif is_baseline(row.setting):
            where = "published cell"
        else:
            where = f"{row.setting.replace(';', ', ')}, from {row.source}"
        title = (
            f"{row.genotype_id} ({where}): retrain test {percent(row.retrain_test_acc_mean, unit='%')} "
            f"over {row.retrain_seeds} seed(s)"
        )
        data = figures.cell_figure(parse_genotype(row.genotype), title)
        pictures.append(Picture(f"cell_{row.genotype_id}.png", title, data))
    return pictures


def arch_pictures(results: StudyResults) -> list[Picture]:
    primitives = results.histories.get("primitives", [])
    pictures = []
    for key, trial in sorted(results.histories.get("trials", {}).items()):
        if not trial.get("epochs"):
            continue
        title = f"{key} ({trial['setting']}, seed {trial['seed']})"
        pictures.append(
            Picture(f"arch_{key}.png", title, figures.arch_weights_figure(trial["epochs"], primitives, title))
        )
    return pictures


PICTURES: tuple[PictureKind, ...] = (
    PictureKind("accuracy", accuracy_pictures),
    PictureKind("agreement", agreement_pictures),
    PictureKind("cost", cost_pictures),
    PictureKind("genotypes", cell_pictures),
    PictureKind("architecture", arch_pictures),
)


def draw_pictures(results: StudyResults) -> dict[str, list[Picture]]:
    """Every picture of the report, by section."""
    pictures: dict[str, list[Picture]] = {}
    for kind in PICTURES:
        pictures.setdefault(kind.section, []).extend(kind.draw(results))
    return pictures
