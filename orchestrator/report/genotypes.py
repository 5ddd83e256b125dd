"""The retrained genotypes: which settings found each one, and ``retrained_genotypes.csv`` (one row
per retrained genotype: the selected ones, then the published anchors, then the random baselines)."""

from __future__ import annotations

import math

import pandas as pd

from ..trial import PUBLISHED, RANDOM, TrialStatus, is_baseline
from .frames import finite_mean, optional_column

GENOTYPE_COLUMNS = (
    "genotype_id",
    "setting",
    "source",
    "search_valid_acc",
    "retrain_seeds",
    "retrain_test_acc_mean",
    "retrain_test_acc_std",
    "parameters",
    "genotype",
)


def baseline_settings(retrains: pd.DataFrame) -> list[str]:
    """The baselines among the retrained genotypes' settings, in the report's order: the published cells
    (``published:NAME``, in the order they were planned), then the random cells."""
    found = [s for s in dict.fromkeys(retrains["setting"]) if is_baseline(str(s))]
    return [s for s in found if s != RANDOM] + [s for s in found if s == RANDOM]


def setting_genotype_ids(selection: pd.DataFrame) -> dict[str, list[str]]:
    """For each setting, the selected genotypes it *found*: those that at least one of its finished
    searches ended with (the same cell, see :func:`~orchestrator.selection.canonical_genotype`),
    whether or not that search was the one selected or ranked in the setting's top N. A genotype
    found by searches of several settings is listed under each (it was retrained once)."""
    out: dict[str, list[str]] = {}
    for row in selection.itertuples(index=False):
        for setting in str(row.found_by_settings).split(";"):
            out.setdefault(setting, []).append(row.genotype_id)
    return out


def genotype_results(trials: pd.DataFrame, selection: pd.DataFrame) -> pd.DataFrame:
    """One row per retrained genotype (selected ones, then the published and the random baselines): the final
    validation accuracy of the search it was selected from, and its test accuracy averaged over
    its finished retraining seeds (with their standard deviation)."""
    searches = trials[trials["stage"] == "search"].set_index("trial")
    retrains = trials[trials["stage"] == "retrain"]
    finished = retrains[retrains["status"] == TrialStatus.FINISHED]
    rows = []
    jobs = [(r.genotype_id, r.found_by_settings, r.source, r.genotype) for r in selection.itertuples(index=False)]
    for setting in baseline_settings(retrains):
        for gid in dict.fromkeys(retrains.loc[retrains["setting"] == setting, "genotype_id"]):
            own = retrains[retrains["genotype_id"] == gid]
            texts = optional_column(own, "genotype").dropna()
            source = RANDOM if setting == RANDOM else PUBLISHED
            jobs.append((gid, setting, source, texts.iloc[0] if len(texts) else None))
    for gid, setting, source, text in jobs:
        own = finished[finished["genotype_id"] == gid]
        accs = own["test_acc"].dropna().astype(float)
        valid = searches["valid_acc"].get(source, math.nan) if source in searches.index else math.nan
        rows.append(
            {
                "genotype_id": gid,
                "setting": setting,
                "source": source,
                "search_valid_acc": valid,
                "retrain_seeds": len(accs),
                "retrain_test_acc_mean": float(accs.mean()) if len(accs) else math.nan,
                "retrain_test_acc_std": float(accs.std(ddof=1)) if len(accs) > 1 else math.nan,
                "parameters": finite_mean(optional_column(own, "parameters")),
                "genotype": text,
            }
        )
    return pd.DataFrame(rows, columns=list(GENOTYPE_COLUMNS))
