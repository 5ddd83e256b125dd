"""The study's tables: ``trials.csv`` (one row per trial), ``summary.csv`` and ``summary.md``
(one row per setting, the random baseline as its own row).

Per setting: the number of searches and of failed ones, mean and standard deviation of
the searches' final validation accuracy, the retrain test accuracy of the genotypes that
setting found (every retraining seed of every such genotype), parameters, and the device
hours spent (GPU-hours and CPU-hours: trial time times the trial's GPUs or CPUs).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from pcdarts_core.checkpoint import atomic_write_text

RANDOM = "random"
SUMMARY_COLUMNS = (
    "setting",
    "searches",
    "searches_failed",
    "search_valid_acc_mean",
    "search_valid_acc_std",
    "genotypes_retrained",
    "retrains",
    "retrain_test_acc_mean",
    "retrain_test_acc_std",
    "parameters_mean",
    "gpu_hours",
    "cpu_hours",
)


def _hours(rows: pd.DataFrame, unit: str) -> float:
    if rows.empty:
        return 0.0
    return float((rows["time_s"].fillna(0) * rows[unit].fillna(0)).sum() / 3600)


def _stats(values: pd.Series) -> tuple[float, float, int]:
    values = values.dropna().astype(float)
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    std = float(values.std(ddof=1)) if n > 1 else math.nan
    return mean, std, n


def summarize(trials: pd.DataFrame, selection: pd.DataFrame, settings: list[str]) -> pd.DataFrame:
    """One row per search setting (in grid order), then one for the random baseline if it ran."""
    searches = trials[trials["stage"] == "search"]
    retrains = trials[(trials["stage"] == "retrain") & (trials["status"] == "finished")]
    all_retrains = trials[trials["stage"] == "retrain"]
    found = {row.genotype_id: set(str(row.found_by_settings).split(";")) for row in selection.itertuples(index=False)}
    rows = []
    for setting in settings:
        own = searches[searches["setting"] == setting]
        ok = own[own["status"] == "finished"]
        ids = [gid for gid, where in found.items() if setting in where]
        retrained = retrains[retrains["genotype_id"].isin(ids)]
        valid_mean, valid_std, _ = _stats(ok["valid_acc"])
        test_mean, test_std, n_test = _stats(retrained["test_acc"])
        spent = pd.concat([own, all_retrains[all_retrains["genotype_id"].isin(ids)]])
        rows.append(
            {
                "setting": setting,
                "searches": len(own),
                "searches_failed": int((own["status"] != "finished").sum()),
                "search_valid_acc_mean": valid_mean,
                "search_valid_acc_std": valid_std,
                "genotypes_retrained": int(retrained["genotype_id"].nunique()),
                "retrains": n_test,
                "retrain_test_acc_mean": test_mean,
                "retrain_test_acc_std": test_std,
                "parameters_mean": _stats(retrained["parameters"] if n_test else ok["parameters"])[0],
                "gpu_hours": _hours(spent, "gpus"),
                "cpu_hours": _hours(spent, "cpus"),
            }
        )
    baseline = retrains[retrains["setting"] == RANDOM]
    if not all_retrains[all_retrains["setting"] == RANDOM].empty:
        test_mean, test_std, n_test = _stats(baseline["test_acc"])
        spent = all_retrains[all_retrains["setting"] == RANDOM]
        rows.append(
            {
                "setting": RANDOM,
                "searches": 0,
                "searches_failed": 0,
                "search_valid_acc_mean": math.nan,
                "search_valid_acc_std": math.nan,
                "genotypes_retrained": int(baseline["genotype_id"].nunique()),
                "retrains": n_test,
                "retrain_test_acc_mean": test_mean,
                "retrain_test_acc_std": test_std,
                "parameters_mean": _stats(baseline["parameters"])[0],
                "gpu_hours": _hours(spent, "gpus"),
                "cpu_hours": _hours(spent, "cpus"),
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _mean_std(mean: float, std: float, n: int) -> str:
    if n == 0 or mean != mean:
        return "–"
    spread = f" ± {std:.3f}" if std == std else ""
    return f"{mean:.3f}{spread} (n={n})"


def summary_markdown(name: str, summary: pd.DataFrame, selection: pd.DataFrame, trials: pd.DataFrame) -> str:
    """A readable summary: the per-setting table, the selected genotypes and the failed trials."""
    table = pd.DataFrame(
        {
            "setting": summary["setting"],
            "search valid acc": [
                _mean_std(r.search_valid_acc_mean, r.search_valid_acc_std, r.searches - r.searches_failed) for r in summary.itertuples()
            ],
            "failed searches": summary["searches_failed"],
            "retrain test acc": [
                _mean_std(r.retrain_test_acc_mean, r.retrain_test_acc_std, r.retrains) for r in summary.itertuples()
            ],
            "genotypes": summary["genotypes_retrained"],
            "params (M)": [f"{p / 1e6:.3f}" if p == p else "–" for p in summary["parameters_mean"]],
            "GPU-h": [f"{h:.3f}" for h in summary["gpu_hours"]],
            "CPU-h": [f"{h:.3f}" for h in summary["cpu_hours"]],
        }
    )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Study {name}",
        "",
        f"Written {stamp}. Mean ± sample standard deviation (n). Search: final-epoch validation accuracy of each "
        "search. Retrain: final-epoch test accuracy of every retraining (all seeds) of the genotypes the setting found; "
        "`random` is the random-architecture baseline with the same protocol.",
        "",
        table.to_markdown(index=False),
        "",
        "## Retrained genotypes",
        "",
    ]
    if selection.empty:
        lines.append("None: no search finished.")
    else:
        shown = selection[["genotype_id", "setting", "source", "found_by", "value", "genotype"]].rename(columns={"value": selection["metric"].iloc[0]})
        lines.append(shown.to_markdown(index=False))
    failed = trials[trials["status"] != "finished"]
    if not failed.empty:
        lines += ["", "## Trials that did not finish", "", failed[["stage", "trial", "setting", "seed", "status", "epochs", "error"]].to_markdown(index=False)]
    return "\n".join(lines) + "\n"


def write_reports(folder: Path, name: str, trials: pd.DataFrame, selection: pd.DataFrame, summary: pd.DataFrame) -> dict[str, Path]:
    """Write trials.csv, summary.csv (``summary`` from :func:`summarize`) and summary.md, atomically; return their paths."""
    paths = {"trials": folder / "trials.csv", "summary": folder / "summary.csv", "summary_md": folder / "summary.md"}
    atomic_write_text(paths["trials"], trials.to_csv(index=False))
    atomic_write_text(paths["summary"], summary.to_csv(index=False))
    atomic_write_text(paths["summary_md"], summary_markdown(name, summary, selection, trials))
    return paths


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=True)


def summary_metrics(summary: pd.DataFrame) -> dict[str, Any]:
    """Numbers for the study's MLflow run, keyed like ``k=4_edge_norm=on/retrain_test_acc_mean``."""
    out = {}
    for row in summary.to_dict("records"):
        prefix = re.sub(r"[^\w.\-/:]", "_", str(row["setting"]).replace("=", "").replace(" ", "_"))
        for column in ("search_valid_acc_mean", "search_valid_acc_std", "retrain_test_acc_mean", "retrain_test_acc_std"):
            value = row[column]
            if isinstance(value, float) and value == value:
                out[f"{prefix}/{column}"] = value
    return out
