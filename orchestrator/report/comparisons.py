"""``comparisons.csv``: each setting against the reference setting (search validation and retrain
test accuracy) and against the baselines, published and random cells (retrain test accuracy), with the
sentence that says it; and the search-to-retrain agreement. How the intervals and p-values are computed, and how far to
trust them: ``method.md`` in this package.

Which test decides: search accuracy is compared seed by seed (paired t) when both settings ran
exactly the same seeds (the same data split per seed), else, like retrain accuracy (one value per
genotype, never paired), by the unpaired test of :func:`~orchestrator.report.statistics.compare`.
The ``test`` column names it. The word "significant" (column ``significant`` and the sentences) is
that test's p after Holm's adjustment over every comparison of the report (``p_holm``) below 0.05."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from ..trial import TrialStatus, is_baseline
from .genotypes import baseline_settings, genotype_results, setting_genotype_ids
from .statistics import (
    CONFIDENCE,
    FEW,
    Agreement,
    Difference,
    Paired,
    compare,
    compare_paired,
    describe,
    holm,
    n_for_power,
    pooled_std,
    rank_agreement,
    seed_pairs,
)
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
    # appended (issue 15): the test that decides, the paired p, Holm's p and the n for 80% power
    "test",
    "p_paired",
    "n_pairs",
    "p_holm",
    "n_for_80pct_power",
)
#: The ``test`` column: the unpaired test of each ``method`` of compare(), and the paired one.
UNPAIRED_TESTS = {"welch": "Welch t", "single-case": "single-case t", "none": "none"}
PAIRED_TEST = "paired t"
METRIC_WORDS = {"search_valid_acc": "search validation accuracy", "retrain_test_acc": "retrain test accuracy"}


def comparison_sentence(
    diff: Difference,
    setting: str,
    versus_label: str,
    metric: str,
    std: float,
    std_versus: float,
    shared: int = 0,
    *,
    paired: Paired | None = None,
    p_holm: float = math.nan,
    comparisons: int = 0,
) -> str:
    """The comparison in plain words, e.g. ``k=4 edge_norm=on vs k=1 edge_norm=off (DARTS), retrain
    test accuracy: 93.1 ± 0.4 vs 92.5 ± 0.6 %, difference +0.6 [-0.2, +1.4] points, p = 0.12 (Welch t),
    n = 4: not significant (Holm-adjusted p = 0.36 over 3 comparisons)``. ``shared``: genotypes found
    by both settings, left out of both groups. ``paired``: the paired test, which then decides (its p
    is the one given; Welch's stays beside it, and the interval is Welch's). ``comparisons``: how many
    comparisons ``p_holm`` was adjusted over; 0 (the default) judges by the raw p alone."""

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
    if paired is not None:
        p, note = paired.p_value, paired.note
        interval = " (Welch interval)" if diff.ci_low == diff.ci_low else ""
        test = f"paired t over the {_many_seeds(paired.n)} both ran; Welch t {p_text(diff.p_value)}"
        words += f" points{interval}, {p_text(p)} ({test}), {n}"
    else:
        p, note = diff.p_value, diff.note
        test = f" ({UNPAIRED_TESTS[diff.method]})" if diff.method != "none" else ""
        words += f" points, {p_text(p)}{test}, {n}"
    if shared:
        words += f" ({_shared_text(shared)})"
    adjusted = comparisons > 0 and p_holm == p_holm
    if p != p:
        verdict = f"not testable ({note})"
    else:
        decisive = p_holm if comparisons > 0 else p
        significant = decisive == decisive and decisive < 1 - CONFIDENCE
        verdict = f"significant at the {1 - CONFIDENCE:.0%} level" if significant else "not significant"
        if adjusted:
            many = "comparison" if comparisons == 1 else "comparisons"
            verdict += f" (Holm-adjusted {p_text(p_holm)} over {comparisons} {many})"
    if (paired.n if paired is not None else min(diff.n_a, diff.n_b)) < FEW:
        verdict += f"; caveat: fewer than {FEW} values per group, a hint at most"
    if diff.method == "single-case" and paired is None:
        verdict += "; single-case t-test (one group is a single value)"
    return f"{words}: {verdict}"


def _many_seeds(n: int) -> str:
    return "1 seed" if n == 1 else f"{n} seeds"


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
    and against each baseline, the published cells and then the random ones (retrain test accuracy):
    difference of means with a 95% interval and p (:func:`~orchestrator.report.statistics.compare`), and
    the sentence that says it.

    Retrain accuracy is one value per retrained genotype (mean over its seeds). A genotype that
    both settings found (:func:`setting_genotype_ids`) is left out of both groups, so that the two
    groups are independent; ``n_shared`` counts them and the note and sentence say so.

    Search accuracy is also compared seed by seed when both settings' finished searches ran exactly
    the same seeds (:func:`~orchestrator.report.statistics.seed_pairs`): then the paired t-test
    decides (``test`` = ``paired t``, ``p_paired``, ``n_pairs``) and Welch's p stays in ``p_value``.
    ``p_holm``: the deciding p adjusted by Holm over every row; ``significant`` is ``p_holm`` < 0.05.
    ``n_for_80pct_power``: the values per setting (pairs when paired) that would detect the observed
    difference at 80% power and the 5% level, two-sided, from the pooled standard deviation (the
    differences' when paired)."""
    searches = trials[(trials["stage"] == "search") & (trials["status"] == TrialStatus.FINISHED)]
    searches = searches[searches["valid_acc"].notna()]
    genotypes = genotype_results(trials, selection)
    genotypes = genotypes[genotypes["retrain_seeds"] > 0]
    accuracy = dict(zip(genotypes["genotype_id"], genotypes["retrain_test_acc_mean"]))
    found = setting_genotype_ids(selection)
    search_runs = {
        s: list(
            zip(searches.loc[searches["setting"] == s, "seed"], searches.loc[searches["setting"] == s, "valid_acc"])
        )
        for s in settings
    }
    retrained = {s: [g for g in found.get(s, []) if g in accuracy] for s in settings}
    baselines = baseline_settings(genotypes)
    for baseline in baselines:
        retrained[baseline] = genotypes.loc[genotypes["setting"] == baseline, "genotype_id"].tolist()
    pairs = []
    if reference is not None:
        label = f"{reference} ({reference_name})" if reference_name else reference
        for metric in ("search_valid_acc", "retrain_test_acc"):
            pairs += [(s, reference, label, metric) for s in settings if s != reference]
    for baseline in baselines:  # the published cells, then the random ones
        pairs += [(s, baseline, baseline, "retrain_test_acc") for s in settings]
    rows, sentences = [], []
    for setting, versus, label, metric in pairs:
        paired = None
        if metric == "search_valid_acc":
            runs_a, runs_b, shared = search_runs.get(setting, []), search_runs.get(versus, []), 0
            if not runs_a or not runs_b:
                continue
            a, b = [v for _, v in runs_a], [v for _, v in runs_b]
            by_seed = seed_pairs(runs_a, runs_b)
            paired = compare_paired(by_seed) if by_seed is not None else None
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
        notes = [diff.note, _shared_text(shared) if shared else ""]
        if paired is not None:
            notes.append(
                f"paired by seed: {_many_seeds(paired.n)} both ran" + (f", {paired.note}" if paired.note else "")
            )
        elif metric == "search_valid_acc":
            notes.append(_unpaired_text(runs_a, runs_b))
        if paired is not None:
            test, p_test, power_n = PAIRED_TEST, paired.p_value, n_for_power(paired.difference, paired.std, paired=True)
        else:
            test, p_test = UNPAIRED_TESTS[diff.method], diff.p_value
            power_n = n_for_power(diff.difference, pooled_std(a, b))
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
                "significant": False,
                "method": diff.method,
                "n_shared": shared,
                "note": "; ".join(text for text in notes if text),
                "sentence": "",
                "test": test,
                "p_paired": paired.p_value if paired is not None else math.nan,
                "n_pairs": paired.n if paired is not None else 0,
                "p_holm": math.nan,
                "n_for_80pct_power": power_n,
                "_p_test": p_test,
            }
        )
        sentences.append((diff, setting, label, metric, da.std, db.std, shared, paired))
    adjusted = holm([row.pop("_p_test") for row in rows])
    count = sum(p == p for p in adjusted)
    for row, p_holm, (diff, setting, label, metric, std, std_versus, shared, paired) in zip(rows, adjusted, sentences):
        row["p_holm"] = p_holm
        row["significant"] = p_holm == p_holm and p_holm < 1 - CONFIDENCE
        row["sentence"] = comparison_sentence(
            diff, setting, label, metric, std, std_versus, shared, paired=paired, p_holm=p_holm, comparisons=count
        )
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def _unpaired_text(runs_a: list[tuple[object, float]], runs_b: list[tuple[object, float]]) -> str:
    """Why a search comparison is not paired by seed."""
    seeds_a, seeds_b = [seed for seed, _ in runs_a], [seed for seed, _ in runs_b]
    if len(set(seeds_a)) < len(seeds_a) or len(set(seeds_b)) < len(seeds_b):
        return "unpaired: a seed ran more than once in a setting"
    common = len(set(seeds_a) & set(seeds_b))
    return f"unpaired: the settings share {common} of their {len(set(seeds_a))} vs {len(set(seeds_b))} seeds"


def search_retrain_agreement(genotypes: pd.DataFrame) -> Agreement:
    """Kendall's tau between the search validation accuracy and the retrain test accuracy of the
    retrained searched genotypes (the baselines, random and published, had no search)."""
    searched = genotypes[~genotypes["setting"].astype(str).map(is_baseline) & (genotypes["retrain_seeds"] > 0)]
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
