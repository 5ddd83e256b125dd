"""``summary.csv``: one row per search setting in grid order, then the baselines' (published cells, random
cells), with the columns declared in :mod:`orchestrator.report.columns`; and its numbers for the study's
MLflow run.

Retraining seeds are averaged per genotype first, so a setting's retrain accuracy is over the
genotypes it found (:func:`~orchestrator.report.genotypes.setting_genotype_ids`); the seeds' own
spread is a column of its own. How the statistics are computed: ``method.md`` in this package.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..trial import TrialStatus
from .columns import COLUMNS, SettingRows
from .frames import optional_column, parse_genotypes
from .genotypes import baseline_settings, genotype_results, setting_genotype_ids
from .statistics import alpha_entropy

#: summary.csv's columns, in order.
SUMMARY_COLUMNS = tuple(name for column in COLUMNS for name in column.names)


def final_entropies(histories: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Per search trial, the entropy of its last epoch's α (normal, reduce); see :func:`alpha_entropy`."""
    out = {}
    for key, trial in histories.items():
        epochs = trial.get("epochs") or []
        if epochs:
            out[key] = (alpha_entropy(epochs[-1]["alphas_normal"]), alpha_entropy(epochs[-1]["alphas_reduce"]))
    return out


def setting_rows(
    trials: pd.DataFrame, selection: pd.DataFrame, settings: Sequence[str], histories: dict[str, Any] | None = None
) -> list[SettingRows]:
    """The rows behind each summary row: each setting's, then each baseline's that ran (the published cells,
    then the random ones)."""
    entropies = final_entropies(histories or {})
    searches = trials[trials["stage"] == "search"]
    all_retrains = trials[trials["stage"] == "retrain"]
    retrains = all_retrains[all_retrains["status"] == TrialStatus.FINISHED]
    genotypes = genotype_results(trials, selection)
    found = setting_genotype_ids(selection)
    out = []
    for setting in settings:
        own = searches[searches["setting"] == setting]
        ok = own[own["status"] == TrialStatus.FINISHED]
        ids = found.get(setting, [])
        out.append(
            SettingRows(
                setting=setting,
                searches=own,
                finished_searches=ok,
                genotypes=genotypes[genotypes["genotype_id"].isin(ids) & (genotypes["retrain_seeds"] > 0)],
                retrains=retrains[retrains["genotype_id"].isin(ids)],
                spent=pd.concat([own, all_retrains[all_retrains["genotype_id"].isin(ids)]]),
                cells=parse_genotypes(optional_column(ok, "genotype")),
                entropies=[entropies[t] for t in ok["trial"] if t in entropies],
            )
        )
    for baseline in baseline_settings(all_retrains):
        runs = all_retrains[all_retrains["setting"] == baseline]
        own = genotypes["setting"] == baseline
        out.append(
            SettingRows(
                setting=baseline,
                searches=searches.iloc[:0],
                finished_searches=searches.iloc[:0],
                genotypes=genotypes[own & (genotypes["retrain_seeds"] > 0)],
                retrains=retrains[retrains["setting"] == baseline],
                spent=runs,
                cells=parse_genotypes(genotypes.loc[own, "genotype"]),
                entropies=[],
                baseline=True,
            )
        )
    return out


def summarize(
    trials: pd.DataFrame, selection: pd.DataFrame, settings: Sequence[str], histories: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One row per search setting (in grid order), then one per baseline that ran
    (:data:`SUMMARY_COLUMNS`). ``histories``: the searches' saved α history (for the entropy)."""
    rows = []
    for group in setting_rows(trials, selection, settings, histories):
        row: dict[str, Any] = {}
        for column in COLUMNS:
            row.update(column.values(group))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def summary_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """Numbers for the study's MLflow run, keyed like ``k4_edge_normon/retrain_test_acc_mean``: the
    columns declared with ``metric=True``, where they hold a number."""
    names = [name for column in COLUMNS for name in column.metric_names]
    out = {}
    for row in summary.to_dict("records"):
        prefix = re.sub(r"[^\w.\-/:]", "_", str(row["setting"]).replace("=", "").replace(" ", "_"))
        for name in names:
            value = row.get(name)
            if isinstance(value, (float, int)) and not isinstance(value, bool) and value == value:
                out[f"{prefix}/{name}"] = float(value)
    return out
