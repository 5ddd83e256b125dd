"""The study's tables: ``trials.csv`` (one row per trial), ``summary.csv`` and ``summary.md`` (one
row per setting, the random baseline as its own row), ``retrained_genotypes.csv`` (one row per
retrained genotype) and ``comparisons.csv`` (each setting against the reference setting and the
random baseline).

Accuracies are fractions in the CSV files and percent in the Markdown and HTML reports. Per
setting (see :data:`SUMMARY_COLUMNS`):

* search: n, mean, std and 95% t interval of the final validation accuracy of its searches;
* retrain: the test accuracy of each retrained genotype the setting found (see
  :func:`setting_genotype_ids`), averaged over its retraining seeds first; n, mean, std and
  interval over those genotype means; and the retraining seeds' own spread (the pooled
  within-genotype standard deviation) on its own;
* stability: mean pairwise edge overlap of its searches' genotypes, skip connections and
  parameter-free operations per cell, entropy of the final α (random row: the same counts of the
  random cells, the chance level);
* cost: device hours, peak memory, images per second.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from pcdarts_core import parse_genotype
from pcdarts_core.checkpoint import atomic_write_text

from .statistics import (
    CONFIDENCE,
    FEW,
    Agreement,
    Difference,
    alpha_entropy,
    compare,
    describe,
    mean_pairwise_overlap,
    op_counts,
    rank_agreement,
)

RANDOM = "random"
SUMMARY_COLUMNS = (
    "setting",
    "searches",
    "searches_failed",
    "search_valid_acc_n",
    "search_valid_acc_mean",
    "search_valid_acc_std",
    "search_valid_acc_ci_low",
    "search_valid_acc_ci_high",
    "genotypes_retrained",
    "retrains",
    "retrain_test_acc_n",
    "retrain_test_acc_mean",
    "retrain_test_acc_std",
    "retrain_test_acc_ci_low",
    "retrain_test_acc_ci_high",
    "retrain_seed_std",
    "genotype_overlap",
    "skip_connect_normal",
    "skip_connect_reduce",
    "parameter_free_normal",
    "parameter_free_reduce",
    "alpha_entropy_normal",
    "alpha_entropy_reduce",
    "parameters_mean",
    "search_time_s_mean",
    "search_gpu_hours",
    "search_cpu_hours",
    "peak_memory_mib",
    "images_per_s",
    "gpu_hours",
    "cpu_hours",
)
GENOTYPE_COLUMNS = (
    "genotype_id", "setting", "source", "search_valid_acc", "retrain_seeds", "retrain_test_acc_mean",
    "retrain_test_acc_std", "parameters", "genotype",
)
COMPARISON_COLUMNS = (
    "setting", "versus", "metric", "n", "n_versus", "mean", "std", "mean_versus", "std_versus",
    "difference", "ci_low", "ci_high", "p_value", "significant", "method", "n_shared", "note", "sentence",
)
METRIC_WORDS = {"search_valid_acc": "search validation accuracy", "retrain_test_acc": "retrain test accuracy"}


def _column(rows: pd.DataFrame, name: str) -> pd.Series:
    """A column that older or hand-made tables may lack, as NaN."""
    return rows[name] if name in rows else pd.Series(math.nan, index=rows.index, dtype=float)


def _hours(rows: pd.DataFrame, unit: str) -> float:
    if rows.empty:
        return 0.0
    amount = pd.to_numeric(rows[unit], errors="coerce").fillna(0)
    return float((pd.to_numeric(rows["time_s"], errors="coerce").fillna(0) * amount).sum() / 3600)


def _mean(values: Iterable[float]) -> float:
    values = [float(v) for v in values if v == v and v is not None]
    return float(np.mean(values)) if values else math.nan


def _genotypes(texts: Iterable[Any]) -> list:
    return [parse_genotype(str(text)) for text in texts if isinstance(text, str) and text.strip()]


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
    """One row per retrained genotype (selected ones, then the random baselines): the final
    validation accuracy of the search it was selected from, and its test accuracy averaged over
    its finished retraining seeds (with their standard deviation)."""
    searches = trials[trials["stage"] == "search"].set_index("trial")
    retrains = trials[trials["stage"] == "retrain"]
    finished = retrains[retrains["status"] == "finished"]
    rows = []
    jobs = [(r.genotype_id, r.found_by_settings, r.source, r.genotype) for r in selection.itertuples(index=False)]
    for gid in dict.fromkeys(retrains.loc[retrains["setting"] == RANDOM, "genotype_id"]):
        texts = _column(retrains[retrains["genotype_id"] == gid], "genotype").dropna()
        jobs.append((gid, RANDOM, RANDOM, texts.iloc[0] if len(texts) else None))
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
                "parameters": _mean(_column(own, "parameters")),
                "genotype": text,
            }
        )
    return pd.DataFrame(rows, columns=list(GENOTYPE_COLUMNS))


def _pooled_seed_std(genotypes: pd.DataFrame) -> float:
    """The retraining seeds' own spread: the pooled within-genotype standard deviation, the root of
    the genotypes' variances weighted by their degrees of freedom (seeds - 1)."""
    rows = genotypes[(genotypes["retrain_seeds"] > 1) & genotypes["retrain_test_acc_std"].notna()]
    dof = rows["retrain_seeds"] - 1
    return float(math.sqrt((dof * rows["retrain_test_acc_std"] ** 2).sum() / dof.sum())) if len(rows) else math.nan


def _stability(genotypes: list, entropies: list[tuple[float, float]]) -> dict[str, float]:
    counts = [op_counts(g) for g in genotypes]
    row = {"genotype_overlap": mean_pairwise_overlap(genotypes)}
    for name in ("skip_connect_normal", "skip_connect_reduce", "parameter_free_normal", "parameter_free_reduce"):
        row[name] = _mean(c[name] for c in counts)
    row["alpha_entropy_normal"] = _mean(e[0] for e in entropies)
    row["alpha_entropy_reduce"] = _mean(e[1] for e in entropies)
    return row


def final_entropies(histories: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Per search trial, the entropy of its last epoch's α (normal, reduce); see :func:`alpha_entropy`."""
    out = {}
    for key, trial in histories.items():
        epochs = trial.get("epochs") or []
        if epochs:
            out[key] = (alpha_entropy(epochs[-1]["alphas_normal"]), alpha_entropy(epochs[-1]["alphas_reduce"]))
    return out


def _prefixed(prefix: str, values: Any) -> dict[str, float]:
    return {f"{prefix}_{field}": getattr(values, field) for field in ("n", "mean", "std", "ci_low", "ci_high")}


def summarize(trials: pd.DataFrame, selection: pd.DataFrame, settings: list[str],
              histories: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per search setting (in grid order), then one for the random baseline if it ran
    (:data:`SUMMARY_COLUMNS`). ``histories``: the searches' saved α history (for the entropy)."""
    entropies = final_entropies(histories or {})
    searches = trials[trials["stage"] == "search"]
    all_retrains = trials[trials["stage"] == "retrain"]
    retrains = all_retrains[all_retrains["status"] == "finished"]
    genotypes = genotype_results(trials, selection)
    found = setting_genotype_ids(selection)
    rows = []
    for setting in settings:
        own = searches[searches["setting"] == setting]
        ok = own[own["status"] == "finished"]
        ids = found.get(setting, [])
        mine = genotypes[genotypes["genotype_id"].isin(ids) & (genotypes["retrain_seeds"] > 0)]
        retrained = retrains[retrains["genotype_id"].isin(ids)]
        spent = pd.concat([own, all_retrains[all_retrains["genotype_id"].isin(ids)]])
        peak = _column(ok, "peak_memory_bytes").max()
        rows.append(
            {
                "setting": setting,
                "searches": len(own),
                "searches_failed": int((own["status"] != "finished").sum()),
                **_prefixed("search_valid_acc", describe(ok["valid_acc"])),
                "genotypes_retrained": len(mine),
                "retrains": len(retrained),
                **_prefixed("retrain_test_acc", describe(mine["retrain_test_acc_mean"])),
                "retrain_seed_std": _pooled_seed_std(mine),
                **_stability(_genotypes(_column(ok, "genotype")), [entropies[t] for t in ok["trial"] if t in entropies]),
                "parameters_mean": _mean(retrained["parameters"] if len(retrained) else ok["parameters"]),
                "search_time_s_mean": _mean(ok["time_s"]),
                "search_gpu_hours": _hours(own, "gpus"),
                "search_cpu_hours": _hours(own, "cpus"),
                "peak_memory_mib": float(peak) / 2**20 if peak == peak else math.nan,
                "images_per_s": _mean(_column(ok, "images_per_s")),
                "gpu_hours": _hours(spent, "gpus"),
                "cpu_hours": _hours(spent, "cpus"),
            }
        )
    baseline_runs = all_retrains[all_retrains["setting"] == RANDOM]
    if not baseline_runs.empty:
        mine = genotypes[(genotypes["setting"] == RANDOM) & (genotypes["retrain_seeds"] > 0)]
        rows.append(
            {
                "setting": RANDOM,
                "searches": 0,
                "searches_failed": 0,
                **_prefixed("search_valid_acc", describe([])),
                "genotypes_retrained": len(mine),
                "retrains": int((baseline_runs["status"] == "finished").sum()),
                **_prefixed("retrain_test_acc", describe(mine["retrain_test_acc_mean"])),
                "retrain_seed_std": _pooled_seed_std(mine),
                **_stability(_genotypes(genotypes.loc[genotypes["setting"] == RANDOM, "genotype"]), []),
                "parameters_mean": _mean(retrains.loc[retrains["setting"] == RANDOM, "parameters"]),
                "gpu_hours": _hours(baseline_runs, "gpus"),
                "cpu_hours": _hours(baseline_runs, "cpus"),
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


# --- comparisons -------------------------------------------------------------------------


def percent(value: float, digits: int = 1, unit: str = "") -> str:
    """A fraction in percent, e.g. ``93.1`` (``unit="%"``: ``93.1%``); ``–`` for NaN."""
    return "–" if value != value else f"{100 * value:.{digits}f}{unit}"


def _p_text(p: float) -> str:
    if p != p:
        return "p undefined"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def comparison_sentence(diff: Difference, setting: str, versus_label: str, metric: str, std: float, std_versus: float,
                        shared: int = 0) -> str:
    """The comparison in plain words, e.g. ``k=4 edge_norm=on vs k=1 edge_norm=off (DARTS), retrain
    test accuracy: 93.1 ± 0.4 vs 92.5 ± 0.6 %, difference +0.6 [-0.2, +1.4] points, p = 0.12, n = 4:
    not significant``. ``shared``: genotypes found by both settings, left out of both groups."""
    def side(mean: float, std: float) -> str:
        return percent(mean) + (f" ± {percent(std)}" if std == std else "")

    def signed(value: float) -> str:
        return f"{100 * value + 0.0:+.1f}".replace("-0.0", "+0.0")

    words = f"{setting} vs {versus_label}, {METRIC_WORDS[metric]}: {side(diff.mean_a, std)} vs {side(diff.mean_b, std_versus)} %"
    if diff.difference != diff.difference:
        return f"{words}: no comparison ({diff.note}{'; ' + _shared_text(shared) if shared else ''})"
    words += f", difference {signed(diff.difference)}"
    if diff.ci_low == diff.ci_low:
        words += f" [{signed(diff.ci_low)}, {signed(diff.ci_high)}]"
    n = f"n = {diff.n_a}" if diff.n_a == diff.n_b else f"n = {diff.n_a} vs {diff.n_b}"
    words += f" points, {_p_text(diff.p_value)}, {n}"
    if shared:
        words += f" ({_shared_text(shared)})"
    if diff.p_value != diff.p_value:
        verdict = f"not testable ({diff.note})"
    elif diff.significant:
        verdict = f"significant at the {1 - CONFIDENCE:.0%} level"
    else:
        verdict = "not significant"
    if diff.few:
        verdict += f"; caveat: fewer than {FEW} values per group, a hint at most"
    if diff.method == "single-case":
        verdict += "; single-case t-test (one group is a single value)"
    return f"{words}: {verdict}"


def _shared_text(shared: int) -> str:
    return (f"{shared} genotype{'s' if shared > 1 else ''} found by both settings left out of both groups, "
            "since one genotype cannot count on both sides of a comparison")


def compare_settings(trials: pd.DataFrame, selection: pd.DataFrame, settings: list[str], reference: str | None,
                     reference_name: str = "") -> pd.DataFrame:
    """Each setting against the reference setting (search validation and retrain test accuracy)
    and against the random baseline (retrain test accuracy): difference of means with a 95%
    interval and p (:func:`~orchestrator.statistics.compare`), and the sentence that says it.

    Retrain accuracy is one value per retrained genotype (mean over its seeds). A genotype that
    both settings found (:func:`setting_genotype_ids`) is left out of both groups, so that the two
    groups are independent; ``n_shared`` counts them and the note and sentence say so."""
    searches = trials[(trials["stage"] == "search") & (trials["status"] == "finished")]
    genotypes = genotype_results(trials, selection)
    genotypes = genotypes[genotypes["retrain_seeds"] > 0]
    accuracy = dict(zip(genotypes["genotype_id"], genotypes["retrain_test_acc_mean"]))
    found = setting_genotype_ids(selection)
    search_values = {s: searches.loc[searches["setting"] == s, "valid_acc"].dropna().tolist() for s in settings}
    retrained = {s: [g for g in found.get(s, []) if g in accuracy] for s in settings}
    retrained[RANDOM] = genotypes.loc[genotypes["setting"] == RANDOM, "genotype_id"].tolist()
    pairs = []
    if reference is not None:
        label = f"{reference} ({reference_name})" if reference_name else reference
        for metric in ("search_valid_acc", "retrain_test_acc"):
            pairs += [(s, reference, label, metric) for s in settings if s != reference]
    if retrained[RANDOM]:
        pairs += [(s, RANDOM, "random", "retrain_test_acc") for s in settings]
    rows = []
    for setting, versus, label, metric in pairs:
        if metric == "search_valid_acc":
            a, b, shared = search_values.get(setting, []), search_values.get(versus, []), 0
            if not a or not b:
                continue
        else:
            ids_a, ids_b = retrained.get(setting, []), retrained.get(versus, [])
            if not ids_a or not ids_b:
                continue
            both = set(ids_a) & set(ids_b)
            a = [accuracy[g] for g in ids_a if g not in both]
            b = [accuracy[g] for g in ids_b if g not in both]
            shared = len(both)
        diff = compare(a, b)
        da, db = describe(a), describe(b)
        note = "; ".join(text for text in (diff.note, _shared_text(shared) if shared else "") if text)
        rows.append({
            "setting": setting, "versus": versus, "metric": metric, "n": diff.n_a, "n_versus": diff.n_b,
            "mean": da.mean, "std": da.std, "mean_versus": db.mean, "std_versus": db.std,
            "difference": diff.difference, "ci_low": diff.ci_low, "ci_high": diff.ci_high, "p_value": diff.p_value,
            "significant": diff.significant, "method": diff.method, "n_shared": shared, "note": note,
            "sentence": comparison_sentence(diff, setting, label, metric, da.std, db.std, shared),
        })
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def search_retrain_agreement(genotypes: pd.DataFrame) -> Agreement:
    """Kendall's tau between the search validation accuracy and the retrain test accuracy of the
    retrained searched genotypes (the random baselines had no search)."""
    searched = genotypes[(genotypes["setting"] != RANDOM) & (genotypes["retrain_seeds"] > 0)]
    return rank_agreement(searched["search_valid_acc"].tolist(), searched["retrain_test_acc_mean"].tolist())


def agreement_sentence(agreement: Agreement) -> str:
    if agreement.tau != agreement.tau:
        return (f"Search-to-retrain agreement: not measurable over {agreement.n} retrained searched genotype(s) "
                "(it needs at least two, with different accuracies).")
    text = (f"Search-to-retrain agreement: Kendall's tau = {agreement.tau:+.2f} ({_p_text(agreement.p_value)}) over "
            f"{agreement.n} retrained searched genotypes: +1 means the search ranked them exactly as retraining did, "
            "0 no relation.")
    if agreement.n < FEW:
        text += f" Caveat: fewer than {FEW} genotypes."
    return text


# --- Markdown and files ------------------------------------------------------------------


def _estimate_text(mean: float, std: float, n: int, low: float = math.nan, high: float = math.nan) -> str:
    if n == 0 or mean != mean:
        return "–"
    text = percent(mean, 2) + (f" ± {percent(std, 2)}" if std == std else "")
    if low == low:
        text += f" [{percent(low, 2)}, {percent(high, 2)}]"
    return f"{text} (n={n})"


def _number(value: float, digits: int = 2) -> str:
    return "–" if value != value else f"{value:.{digits}f}"


def accuracy_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The accuracy columns of the summary, formatted (percent; mean ± std [95% CI] (n))."""
    return pd.DataFrame(
        {
            "setting": summary["setting"],
            "searches (failed)": [f"{r.searches} ({r.searches_failed})" for r in summary.itertuples()],
            "search valid acc %": [
                _estimate_text(r.search_valid_acc_mean, r.search_valid_acc_std, r.search_valid_acc_n,
                               r.search_valid_acc_ci_low, r.search_valid_acc_ci_high) for r in summary.itertuples()
            ],
            "retrain test acc % (per genotype)": [
                _estimate_text(r.retrain_test_acc_mean, r.retrain_test_acc_std, r.retrain_test_acc_n,
                               r.retrain_test_acc_ci_low, r.retrain_test_acc_ci_high) for r in summary.itertuples()
            ],
            "retrain seed std %": [percent(v, 2) for v in summary["retrain_seed_std"]],
            "retrains": summary["retrains"],
            "params (M)": [_number(p / 1e6, 3) for p in summary["parameters_mean"]],
        }
    )


def stability_table(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "setting": summary["setting"],
            "genotype overlap": [_number(v) for v in summary["genotype_overlap"]],
            "skip_connect normal / reduce": [f"{_number(a, 1)} / {_number(b, 1)}"
                                             for a, b in zip(summary["skip_connect_normal"], summary["skip_connect_reduce"])],
            "parameter-free normal / reduce": [f"{_number(a, 1)} / {_number(b, 1)}"
                                               for a, b in zip(summary["parameter_free_normal"], summary["parameter_free_reduce"])],
            "α entropy normal / reduce": [f"{_number(a)} / {_number(b)}"
                                          for a, b in zip(summary["alpha_entropy_normal"], summary["alpha_entropy_reduce"])],
        }
    )


def cost_table(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "setting": summary["setting"],
            "search time (s)": [_number(v, 1) for v in summary["search_time_s_mean"]],
            "search GPU-h": [_number(v, 3) for v in summary["search_gpu_hours"]],
            "search CPU-h": [_number(v, 3) for v in summary["search_cpu_hours"]],
            "peak memory (MiB)": [_number(v, 0) for v in summary["peak_memory_mib"]],
            "images/s": [_number(v, 1) for v in summary["images_per_s"]],
            "GPU-h with retrains": [_number(v, 3) for v in summary["gpu_hours"]],
            "CPU-h with retrains": [_number(v, 3) for v in summary["cpu_hours"]],
        }
    )


ACCURACY_NOTE = (
    "Accuracies in percent: mean ± sample standard deviation [95% t confidence interval of the mean] (n). "
    "Search: final-epoch validation accuracy of each search. Retrain: final-epoch test accuracy of each "
    "retrained genotype the setting found, averaged over its retraining seeds first (n counts genotypes); the "
    "seeds' own spread (pooled within-genotype standard deviation) is the separate column. A setting found a "
    "genotype when at least one of its finished searches ended with that cell, whether or not that search was "
    "the one selected: a genotype found by several settings counts in each of their rows (and is left out of "
    "the comparisons between them). `random`: random cells retrained with the same protocol."
)
STABILITY_NOTE = (
    "Genotype overlap: mean share of (node, input, operation) edges two searches of the setting have in "
    "common (1 = the same cells). skip_connect and parameter-free operations (skip, pooling) per cell, mean "
    "over the searches: many of them is DARTS's known failure mode. α entropy of the final epoch, as a share "
    "of the maximum (1 = undecided, 0 = every edge chose). The random row gives the chance level."
)


def summary_markdown(name: str, summary: pd.DataFrame, selection: pd.DataFrame, trials: pd.DataFrame,
                     comparisons: pd.DataFrame | None = None, agreement: Agreement | None = None,
                     notes: Iterable[str] = ()) -> str:
    """A readable summary: accuracy, comparisons, stability and cost per setting, the selected
    genotypes and the failed trials."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Study {name}", "", f"Written {stamp}. {ACCURACY_NOTE}", "", accuracy_table(summary).to_markdown(index=False), ""]
    if comparisons is not None or agreement is not None or notes:
        lines += ["## Comparisons", ""]
        lines += [f"- {note}" for note in notes]
        if comparisons is not None:
            lines += [f"- {sentence}" for sentence in comparisons["sentence"]]
        if agreement is not None:
            lines.append(f"- {agreement_sentence(agreement)}")
        lines.append("")
    lines += ["## Stability", "", STABILITY_NOTE, "", stability_table(summary).to_markdown(index=False), ""]
    lines += ["## Cost", "", cost_table(summary).to_markdown(index=False), ""]
    lines += ["## Retrained genotypes", ""]
    if selection.empty:
        lines.append("None: no search finished.")
    else:
        shown = selection[["genotype_id", "setting", "source", "found_by", "value", "genotype"]].rename(columns={"value": selection["metric"].iloc[0]})
        lines.append(shown.to_markdown(index=False))
    failed = trials[trials["status"] != "finished"]
    if not failed.empty:
        lines += ["", "## Trials that did not finish", "", failed[["stage", "trial", "setting", "seed", "status", "epochs", "error"]].to_markdown(index=False)]
    return "\n".join(lines) + "\n"


def write_reports(folder: Path, name: str, trials: pd.DataFrame, selection: pd.DataFrame, summary: pd.DataFrame,
                  comparisons: pd.DataFrame | None = None, genotypes: pd.DataFrame | None = None,
                  agreement: Agreement | None = None, notes: Iterable[str] = ()) -> dict[str, Path]:
    """Write trials.csv, summary.csv (``summary`` from :func:`summarize`), summary.md and, when
    given, comparisons.csv and retrained_genotypes.csv, atomically; return their paths."""
    paths = {"trials": folder / "trials.csv", "summary": folder / "summary.csv", "summary_md": folder / "summary.md"}
    atomic_write_text(paths["trials"], trials.to_csv(index=False))
    atomic_write_text(paths["summary"], summary.to_csv(index=False))
    if comparisons is not None:
        paths["comparisons"] = folder / "comparisons.csv"
        atomic_write_text(paths["comparisons"], comparisons.to_csv(index=False))
    if genotypes is not None:
        paths["genotypes"] = folder / "retrained_genotypes.csv"
        atomic_write_text(paths["genotypes"], genotypes.to_csv(index=False))
    markdown = summary_markdown(name, summary, selection, trials, comparisons, agreement, notes)
    atomic_write_text(paths["summary_md"], markdown)
    return paths


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=True)


def summary_metrics(summary: pd.DataFrame) -> dict[str, Any]:
    """Numbers for the study's MLflow run, keyed like ``k4_edge_normon/retrain_test_acc_mean``."""
    out = {}
    columns = (
        "search_valid_acc_mean", "search_valid_acc_std", "search_valid_acc_ci_low", "search_valid_acc_ci_high",
        "retrain_test_acc_mean", "retrain_test_acc_std", "retrain_test_acc_ci_low", "retrain_test_acc_ci_high",
        "retrain_seed_std", "genotype_overlap", "search_gpu_hours", "search_cpu_hours", "peak_memory_mib", "images_per_s",
    )
    for row in summary.to_dict("records"):
        prefix = re.sub(r"[^\w.\-/:]", "_", str(row["setting"]).replace("=", "").replace(" ", "_"))
        for column in columns:
            value = row.get(column)
            if isinstance(value, (float, int)) and not isinstance(value, bool) and value == value:
                out[f"{prefix}/{column}"] = float(value)
    return out
