"""Which genotypes a study retrains: the best finished searches, each distinct genotype once.

Searches are ranked by a final-epoch metric (ties broken by trial key, so the choice is
reproducible), over the whole study or within each setting. Two searches that found the
same cell (the same two edges per node, in either order) give one genotype to retrain,
which records every search and setting that found it.
"""

from __future__ import annotations

import random

import pandas as pd

from pcdarts_core import Genotype, parse_genotype, random_genotype

from .spec import BaselineSpec, SelectSpec
from .trial import TrialStatus

LOWER_IS_BETTER = {"valid_loss"}
SELECTION_COLUMNS = ("genotype_id", "setting", "source", "found_by", "found_by_settings", "metric", "value", "genotype")


def canonical_genotype(genotype: Genotype) -> str:
    """The genotype's text with each node's two edges in a fixed order: equal for identical cells."""
    cells = {}
    for cell in ("normal", "reduce"):
        cells[cell] = [edge for pair in genotype.nodes(cell) for edge in sorted(pair)]
    return Genotype(
        normal=cells["normal"],
        normal_concat=genotype.normal_concat,
        reduce=cells["reduce"],
        reduce_concat=genotype.reduce_concat,
    ).to_text()


def select_genotypes(searches: pd.DataFrame, select: SelectSpec) -> pd.DataFrame:
    """The genotypes to retrain, best first, one row each (see :data:`SELECTION_COLUMNS`)."""
    finished = searches[(searches["status"] == TrialStatus.FINISHED) & searches["genotype"].notna()].copy()
    if finished.empty:
        return pd.DataFrame(columns=list(SELECTION_COLUMNS))
    finished["canonical"] = [canonical_genotype(parse_genotype(text)) for text in finished["genotype"]]
    ascending = select.metric in LOWER_IS_BETTER
    ranked = finished.sort_values([select.metric, "trial"], ascending=[ascending, True], kind="stable")
    groups = [ranked] if select.per == "study" else [group for _, group in ranked.groupby("setting", sort=True)]
    chosen: dict[str, dict] = {}
    for group in groups:
        taken: set[str] = set()  # this group's distinct genotypes so far
        for row in group.itertuples(index=False):
            if len(taken) == select.top:
                break
            if row.canonical in taken:
                continue
            taken.add(row.canonical)
            if row.canonical not in chosen:  # another setting may have chosen it already: retrained once
                chosen[row.canonical] = {
                    "setting": row.setting,
                    "source": row.trial,
                    "metric": select.metric,
                    "value": getattr(row, select.metric),
                    "genotype": row.canonical,
                }
    # Every search that found a chosen genotype, whether or not it ranked high enough itself.
    for entry in chosen.values():
        found = finished[finished["canonical"] == entry["genotype"]].sort_values("trial")
        entry["found_by"] = ";".join(found["trial"])
        entry["found_by_settings"] = ";".join(dict.fromkeys(found["setting"]))
    order = sorted(chosen.values(), key=lambda e: (e["value"] if ascending else -e["value"], e["source"]))
    rows = [{"genotype_id": f"g{i:02d}", **entry} for i, entry in enumerate(order, start=1)]
    return pd.DataFrame(rows, columns=list(SELECTION_COLUMNS))


def screen_candidates(searches: pd.DataFrame, select: SelectSpec, top: int | None) -> pd.DataFrame:
    """The genotypes a screen ranks (``select.by: screen``): the distinct found genotypes, best search first
    by ``select.metric`` over the whole study, at most ``top`` (all when None); rows as in :func:`select_genotypes`."""
    count = top if top is not None else max(1, len(searches))
    return select_genotypes(searches, select.model_copy(update={"top": count, "per": "study"}))


#: How the screen's choice is named in ``selection.csv``'s ``metric`` column.
SCREEN_METRIC = "screen_valid_acc"


def screen_scores(screened: pd.DataFrame) -> pd.Series:
    """Each candidate's screen score by genotype id: the mean final validation accuracy of its finished screen
    seeds. A candidate that ASHA stopped on any seed has none, nor one without a finished seed."""
    stopped = set(screened.loc[screened["status"] == TrialStatus.STOPPED, "genotype_id"])
    finished = screened[(screened["status"] == TrialStatus.FINISHED) & ~screened["genotype_id"].isin(stopped)]
    return finished.groupby("genotype_id")["valid_acc"].mean() if len(finished) else pd.Series(dtype=float)


def select_screened(candidates: pd.DataFrame, screened: pd.DataFrame, select: SelectSpec) -> pd.DataFrame:
    """The candidates to retrain, by the screen's final validation accuracy (mean over the candidate's finished
    screen seeds; never the test set): the top ``select.top`` over the study, or per setting (a genotype found by
    several settings competes in each). A candidate that ASHA stopped on any seed is never chosen, nor one without
    a finished seed (diverged or failed on all of them). Rows as in :func:`select_genotypes`, ``metric`` =
    ``screen_valid_acc`` and ``value`` its mean."""
    if screened.empty:
        return pd.DataFrame(columns=list(SELECTION_COLUMNS))
    means = screen_scores(screened)
    ranked = candidates[candidates["genotype_id"].isin(means.index)].copy()
    ranked["metric"], ranked["value"] = SCREEN_METRIC, ranked["genotype_id"].map(means).astype(float)
    ranked = ranked.sort_values(["value", "genotype_id"], ascending=[False, True], kind="stable")
    if select.per == "study":
        chosen = list(ranked["genotype_id"][: select.top])
    else:
        settings = dict.fromkeys(s for found in ranked["found_by_settings"] for s in str(found).split(";"))
        chosen = []
        for setting in settings:
            own = ranked[[setting in str(found).split(";") for found in ranked["found_by_settings"]]]
            chosen += [gid for gid in own["genotype_id"][: select.top] if gid not in chosen]
    return ranked[ranked["genotype_id"].isin(chosen)].reset_index(drop=True)[list(SELECTION_COLUMNS)]


def baseline_genotypes(baseline: BaselineSpec, steps: int, avoid: set[str]) -> list[tuple[str, Genotype]]:
    """``baseline.count`` distinct random genotypes, none equal to a selected one: (id, genotype)."""
    rng = random.Random(baseline.seed)
    out: list[tuple[str, Genotype]] = []
    seen = set(avoid)
    attempts = 0
    while len(out) < baseline.count:
        genotype = random_genotype(rng, steps=steps)
        canonical = canonical_genotype(genotype)
        attempts += 1
        if canonical in seen and attempts < 1000:
            continue
        seen.add(canonical)
        out.append((f"random{len(out) + 1:02d}", genotype))
    return out
