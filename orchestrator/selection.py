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
