"""The pictures of ``report.html`` (and ``report_figures/``), declared in :data:`PICTURES`: each
kind of picture with the page section that shows it and the function that draws it from the study's
results. A new picture is one drawing in :mod:`~orchestrator.report.figures` and one
:class:`PictureKind` here; the page shows it in its section, in this order."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pcdarts_core import parse_genotype

from ..trial import RANDOM, TrialStatus, is_baseline
from . import figures
from .genotypes import baseline_settings, setting_genotype_ids
from .results import StudyResults
from .text import percent


@dataclass(frozen=True)
class Picture:
    """One PNG of the report: its file name (in the figures folder), caption, and how it is drawn:
    ``draw(*args)`` gives its bytes. ``data`` holds them once drawn (or read back from the figures folder,
    see :mod:`~orchestrator.report.picture_cache`). ``in_page``: embedded in ``report.html``; the others
    are files only, linked from the page."""

    name: str
    caption: str
    draw: Callable[..., bytes]
    args: tuple[Any, ...]
    in_page: bool = True
    data: bytes | None = None

    @property
    def data_uri(self) -> str:
        if self.data is None:
            raise ValueError(f"{self.name}: not drawn yet")
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
    return [Picture("accuracy.png", caption, figures.accuracy_figure, (search_groups, retrain_groups, seed_values))]


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
    return [Picture("agreement.png", caption, figures.agreement_figure, (searched, tau_text))]


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
            return [Picture("cost_per_k.png", caption, figures.cost_figure, (searches, column))]
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
        pictures.append(
            Picture(f"cell_{row.genotype_id}.png", title, figures.cell_figure, (parse_genotype(row.genotype), title))
        )
    return pictures


#: Up to this many searches, every search's α/β is drawn in the page; beyond it, the page shows each setting's
#: mean over its searches, the searches that found a selected genotype and one typical search per setting (up
#: to this many), and every search's picture is a file in the figures folder, listed on the page.
IN_PAGE_SEARCHES = 12


def arch_pictures(results: StudyResults) -> list[Picture]:
    primitives = results.histories.get("primitives", [])
    searches = {key: trial for key, trial in results.histories.get("trials", {}).items() if trial.get("epochs")}
    shown = _searches_in_page(results, searches)
    pictures = []
    if len(shown) < len(searches):
        for number, setting in enumerate(results.settings, start=1):
            same = [trial["epochs"] for trial in searches.values() if trial["setting"] == setting]
            if len(same) > 1:
                mean = mean_epochs(same)
                title = f"{setting}: mean of {len(same)} searches"
                pictures.append(
                    Picture(
                        f"arch_mean_{number:02d}_{_file_part(setting)}.png",  # numbered: two settings may read alike
                        title,
                        figures.arch_weights_figure,
                        (mean, primitives, title),
                    )
                )
    for key in natural_sorted(searches):
        trial = searches[key]
        title = f"{key} ({trial['setting']}, seed {trial['seed']})"
        pictures.append(
            Picture(
                f"arch_{key}.png",
                title,
                figures.arch_weights_figure,
                (trial["epochs"], primitives, title),
                key in shown,
            )
        )
    return pictures


def _searches_in_page(results: StudyResults, searches: dict[str, Any]) -> set[str]:
    """Every search when there are few; else those that found a selected genotype, then the typical (median final
    validation accuracy) search of each setting, up to :data:`IN_PAGE_SEARCHES`."""
    if len(searches) <= IN_PAGE_SEARCHES:
        return set(searches)
    chosen = [
        key for key in natural_sorted(set(results.selection.get("source", pd.Series()).dropna())) if key in searches
    ]
    finished = _finished(results, "search")
    for setting in results.settings:
        values = finished[(finished["setting"] == setting) & finished["trial"].isin(searches)].dropna(
            subset=["valid_acc"]
        )
        if len(values):
            order = values.sort_values(["valid_acc", "trial"]).reset_index(drop=True)
            chosen.append(order.loc[(len(order) - 1) // 2, "trial"])
    return set(list(dict.fromkeys(chosen))[:IN_PAGE_SEARCHES])


def mean_epochs(histories: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The epoch-by-epoch mean of several searches' α and β (the searches with the most common number of epochs)."""
    lengths = [len(epochs) for epochs in histories]
    common = max(set(lengths), key=lambda n: (lengths.count(n), n))
    same = [epochs for epochs in histories if len(epochs) == common]
    mean = []
    for at in zip(*same):
        row = dict(at[0])
        for name in ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce"):
            if all(epoch.get(name) is not None for epoch in at):
                row[name] = np.mean([epoch[name] for epoch in at], axis=0).tolist()
        mean.append(row)
    return mean


def natural_sorted(keys: Any) -> list[str]:
    """Trial keys in grid order whatever their width (``search-99`` before ``search-100``)."""
    return sorted(keys, key=lambda key: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)])


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_") or "setting"


PICTURES: tuple[PictureKind, ...] = (
    PictureKind("accuracy", accuracy_pictures),
    PictureKind("agreement", agreement_pictures),
    PictureKind("cost", cost_pictures),
    PictureKind("genotypes", cell_pictures),
    PictureKind("architecture", arch_pictures),
)


def report_pictures(results: StudyResults) -> dict[str, list[Picture]]:
    """Every picture of the report, by section, not yet drawn (see :mod:`~orchestrator.report.picture_cache`)."""
    pictures: dict[str, list[Picture]] = {}
    for kind in PICTURES:
        pictures.setdefault(kind.section, []).extend(kind.draw(results))
    return pictures
