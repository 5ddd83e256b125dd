"""``comparisons.csv``: each setting against the reference setting (search validation and retrain
test accuracy) and against the random baseline (retrain test accuracy), with the sentence that says
it; and the search-to-retrain agreement. How the intervals and p-values are computed, and how far to
trust them: ``method.md`` in this package."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..trial import RANDOM, TrialStatus
from .genotypes import genotype_results, setting_genotype_ids
from .statistics import CONFIDENCE, FEW, Agreement, Difference, compare, describe, rank_agreement
from .text import p_text, percent

COMPARISON_COLUMNS = (
    "setting",
    "versus",
    "metric",
    "n",
    "n_versus",
    "mean",
    "std",
    "mean_versus",
    "std_versus",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "significant",
    "method",
    "n_shared",
    "note",
    "sentence",
)
METRIC_WORDS = {"search_valid_acc": "search validation accuracy", "retrain_test_acc": "retrain test accuracy"}


def comparison_sentence(
    diff: Difference, setting: str, versus_label: str, metric: str, std: float, std_versus: float, shared: int = 0
) -> str:
    """The comparison in plain words, e.g. ``k=4 edge_norm=on vs k=1 edge_norm=off (DARTS), retrain
    test accuracy: 93.1 ± 0.4 vs 92.5 ± 0.6 %, difference +0.6 [-0.2, +1.4] points, p = 0.12, n = 4:
    not significant``. ``shared``: genotypes found by both settings, left out of both groups."""

    def side(mean: float, std: float) -> str:
        return percent(mean) + (f" ± {percent(std)}" if std == std else "")

    def signed(value: float) -> str:
        return f"{100 * value + 0.0:+.1f}".replace("-0.0", "+0.0")

    sides = f"{side(diff.mean_a, std)} vs {side(diff.mean_b, std_versus)} %"
    words = f"{setting} vs {versus_label}, {METRIC_WORDS[metric]}: {sides}"
    if diff.difference != diff.difference:
        return f"{words}: no comparison ({diff.note}{'; ' + _shared_text(shared) if shared else ''})"
    words += f", difference {signed(diff.difference)}"
    if diff.ci_low == diff.ci_low:
        words += f" [{signed(diff.ci_low)}, {signed(diff.ci_high)}]"
    n = f"n = {diff.n_a}" if diff.n_a == diff.n_b else f"n = {diff.n_a} vs {diff.n_b}"
    words += f" points, {p_text(diff.p_value)}, {n}"
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
    return (
        f"{shared} genotype{'s' if shared > 1 else ''} found by both settings left out of both groups, "
        "since one genotype cannot count on both sides of a comparison"
    )


def compare_settings(
    trials: pd.DataFrame,
    selection: pd.DataFrame,
    settings: Sequence[str],
    reference: str | None,
    reference_name: str = "",
) -> pd.DataFrame:
    """Each setting against the reference setting (search validation and retrain test accuracy)
    and against the random baseline (retrain test accuracy): difference of means with a 95%
    interval and p (:func:`~orchestrator.report.statistics.compare`), and the sentence that says it.

    Retrain accuracy is one value per retrained genotype (mean over its seeds). A genotype that
    both settings found (:func:`setting_genotype_ids`) is left out of both groups, so that the two
    groups are independent; ``n_shared`` counts them and the note and sentence say so."""
    searches = trials[(trials["stage"] == "search") & (trials["status"] == TrialStatus.FINISHED)]
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
        pairs += [(s, RANDOM, RANDOM, "retrain_test_acc") for s in settings]
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
        rows.append(
            {
                "setting": setting,
                "versus": versus,
                "metric": metric,
                "n": diff.n_a,
                "n_versus": diff.n_b,
                "mean": da.mean,
                "std": da.std,
                "mean_versus": db.mean,
                "std_versus": db.std,
                "difference": diff.difference,
                "ci_low": diff.ci_low,
                "ci_high": diff.ci_high,
                "p_value": diff.p_value,
                "significant": diff.significant,
                "method": diff.method,
                "n_shared": shared,
                "note": note,
                "sentence": comparison_sentence(diff, setting, label, metric, da.std, db.std, shared),
            }
        )
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def search_retrain_agreement(genotypes: pd.DataFrame) -> Agreement:
    """Kendall's tau between the search validation accuracy and the retrain test accuracy of the
    retrained searched genotypes (the random baselines had no search)."""
    searched = genotypes[(genotypes["setting"] != RANDOM) & (genotypes["retrain_seeds"] > 0)]
    return rank_agreement(searched["search_valid_acc"].tolist(), searched["retrain_test_acc_mean"].tolist())


def agreement_sentence(agreement: Agreement) -> str:
    if agreement.tau != agreement.tau:
        return (
            f"Search-to-retrain agreement: not measurable over {agreement.n} retrained searched genotype(s) "
            "(it needs at least two, with different accuracies)."
        )
    text = (
        f"Search-to-retrain agreement: Kendall's tau = {agreement.tau:+.2f} ({p_text(agreement.p_value)}) over "
        f"{agreement.n} retrained searched genotypes: +1 means the search ranked them exactly as retraining did, "
        "0 no relation."
    )
    if agreement.n < FEW:
        text += f" Caveat: fewer than {FEW} genotypes."
    return text
