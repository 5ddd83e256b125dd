"""The statistics that plan the next study (issue 15), against hand-computed values: Holm's
adjustment, the paired t-test on per-seed differences (and that only shared seeds make a design
paired), the n for 80% power (statsmodels and a noncentral-t computation of our own), the new
``comparisons.csv`` columns from a hand-made study, and the findings' "Seeds needed" sentence."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.power import TTestIndPower, TTestPower

from orchestrator.report.comparisons import COMPARISON_COLUMNS, compare_settings
from orchestrator.report.findings import FindingsInput, findings
from orchestrator.report.statistics import (
    Agreement,
    compare,
    compare_paired,
    holm,
    n_for_power,
    pooled_std,
    seed_pairs,
)

NAN = math.nan
NEW_COLUMNS = ("test", "p_paired", "n_pairs", "p_holm", "n_for_80pct_power")


def _holm_by_hand(p: list[float]) -> list[float]:
    """Holm's step-down: the i-th smallest of m p-values times (m - i), made monotone, at most 1."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def _power_by_hand(d: float, n: int, paired: bool, alpha: float = 0.05) -> float:
    """Two-sided power of the t-test from the noncentral t distribution."""
    df, nc = (n - 1, d * math.sqrt(n)) if paired else (2 * n - 2, d * math.sqrt(n / 2))
    critical = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(critical, df, nc) + stats.nct.cdf(-critical, df, nc))


def _n_by_hand(d: float, paired: bool) -> int:
    n = 2
    while _power_by_hand(d, n, paired) < 0.8:
        n += 1
    return n


def test_holm_against_hand_values():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    p = [0.001, 0.2, 0.04, 0.012]
    assert holm(p) == pytest.approx([0.004, 0.2, 0.08, 0.036])
    assert _holm_by_hand(p) == pytest.approx([0.004, 0.2, 0.08, 0.036])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    # an undefined p stays undefined and is not counted among the comparisons
    adjusted = holm([0.01, NAN, 0.04])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert holm([]) == [] and all(math.isnan(v) for v in holm([NAN, NAN]))


def test_paired_t_against_hand_computation():
    a, b = [0.62, 0.58, 0.66, 0.61, 0.64], [0.55, 0.56, 0.60, 0.58, 0.57]
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    t = mean / (sd / math.sqrt(n))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    result = compare_paired(list(zip(a, b)))
    assert (result.n, result.difference, result.std) == (n, pytest.approx(mean), pytest.approx(sd))
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(t), n - 1))
    assert (result.ci_low, result.ci_high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    # the pairing matters: the same numbers, unpaired, are a different test with another p
    assert compare(a, b).p_value != pytest.approx(result.p_value)
    # no spread in the differences (0.7 - 0.5 and 0.8 - 0.6 differ by float rounding only), one pair
    same = compare_paired([(0.7, 0.5), (0.8, 0.6)])
    assert same.difference == pytest.approx(0.2) and same.std == 0 and math.isnan(same.p_value) and same.note
    assert math.isnan(compare_paired([(0.7, 0.5)]).p_value) and compare_paired([]).n == 0


def test_paired_only_when_every_seed_is_shared():
    assert seed_pairs([(1, 0.6), (0, 0.5)], [(0, 0.4), (1, 0.3)]) == [(0.5, 0.4), (0.6, 0.3)]
    assert seed_pairs([(0, 0.5), (1, 0.6)], [(0, 0.4), (2, 0.3)]) is None  # seed 1 vs seed 2
    assert seed_pairs([(0, 0.5), (1, 0.6)], [(0, 0.4)]) is None  # a seed missing on one side
    assert seed_pairs([(0, 0.5), (0, 0.6)], [(0, 0.4), (0, 0.3)]) is None  # a seed twice: no one-to-one
    assert seed_pairs([(0, 0.5), (1, NAN)], [(0, 0.4), (1, 0.3)]) is None  # no value for seed 1 on one side
    assert seed_pairs([], []) is None


def test_n_for_power_against_statsmodels_and_the_noncentral_t():
    # d = 1, two-sided, alpha = 0.05: 16.71 per group, so 17; paired (one-sample), 9.94 so 10
    assert TTestIndPower().solve_power(1.0, None, 0.05, 0.8) == pytest.approx(16.7147, abs=1e-3)
    assert _n_by_hand(1.0, paired=False) == 17 and _n_by_hand(1.0, paired=True) == 10
    assert n_for_power(1.0, 1.0) == 17 and n_for_power(0.02, 0.02) == 17  # only the effect size counts
    assert n_for_power(-0.02, 0.02, paired=True) == 10
    assert TTestPower().solve_power(1.0, None, 0.05, 0.8) == pytest.approx(9.9379, abs=1e-3)
    for d in (0.3, 0.5, 0.8, 2.0):
        for paired in (False, True):
            assert n_for_power(d, 1.0, paired=paired) == _n_by_hand(d, paired)
    # a huge effect needs the smallest n with a degree of freedom (statsmodels' root finder gives up there)
    assert n_for_power(20.0, 1.0) == 2 and n_for_power(20.0, 1.0, paired=True) == 2
    # and at d = 10 paired, n = 2 falls short (power 0.73), n = 3 suffices, where scipy's lower tail is NaN
    assert n_for_power(10.0, 1.0, paired=True) == 3 and _power_by_hand(10.0, 2, paired=True) < 0.8
    for difference, std in ((0.0, 1.0), (0.1, 0.0), (0.1, NAN), (NAN, 0.1)):
        assert math.isnan(n_for_power(difference, std))
    # pooled standard deviation, each group weighted by n - 1
    a, b = [0.50, 0.56, 0.53], [0.60, 0.61, 0.62, 0.66]
    ss = sum((v - sum(a) / 3) ** 2 for v in a) + sum((v - sum(b) / 4) ** 2 for v in b)
    assert pooled_std(a, b) == pytest.approx(math.sqrt(ss / 5))
    assert pooled_std([0.5], [0.6, 0.7]) == pytest.approx(stats.tstd([0.6, 0.7]))  # one value adds nothing
    assert math.isnan(pooled_std([0.5], [0.6])) and pooled_std([0.5, 0.5], [0.6, 0.6]) == 0


# --- comparisons.csv from a hand-made study ------------------------------------------------------

REF, K4, K2 = "k=1", "k=4", "k=2"
SEARCHES = {
    REF: {0: 0.50, 1: 0.56, 2: 0.53, 3: 0.55},
    K4: {0: 0.58, 1: 0.60, 2: 0.61, 3: 0.62},  # the reference's seeds: paired
    K2: {0: 0.52, 1: 0.57, 2: 0.50, 7: 0.54},  # seed 7 instead of 3: unpaired
}
RETRAINS = {  # genotype: (setting that found it, test accuracy per retrain seed)
    "g1": (REF, [0.80, 0.82]),
    "g2": (REF, [0.84]),
    "g3": (K4, [0.88]),
    "g4": (K4, [0.90]),
    "g5": (K2, [0.83]),
    "g6": (K2, [0.79]),
    "random01": ("random", [0.60]),
    "random02": ("random", [0.64]),
}


def _study() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [
        {"stage": "search", "trial": f"s-{s}-{seed}", "setting": s, "seed": seed, "status": "finished", "valid_acc": v}
        for s, by_seed in SEARCHES.items()
        for seed, v in by_seed.items()
    ]
    for gid, (setting, accs) in RETRAINS.items():
        for seed, acc in enumerate(accs):
            trial = f"r-{gid}-{seed}"
            retrain = {"stage": "retrain", "trial": trial, "setting": setting, "seed": seed, "status": "finished"}
            rows.append({**retrain, "test_acc": acc, "genotype_id": gid, "genotype": None})
    selection = pd.DataFrame(
        [
            {"genotype_id": g, "setting": s, "source": f"s-{s}-0", "found_by_settings": s, "genotype": None}
            for g, (s, _) in RETRAINS.items()
            if s != "random"
        ]
    )
    return pd.DataFrame(rows), selection


def _retrain_means(setting: str) -> list[float]:
    return [sum(accs) / len(accs) for s, accs in RETRAINS.values() if s == setting]


def test_comparisons_csv_has_the_paired_holm_and_power_columns():
    trials, selection = _study()
    table = compare_settings(trials, selection, [REF, K4, K2], REF, "DARTS")
    assert list(table.columns) == list(COMPARISON_COLUMNS) and list(COMPARISON_COLUMNS[-5:]) == list(NEW_COLUMNS)
    written = pd.read_csv(io.StringIO(table.to_csv(index=False)))
    assert list(written.columns[-5:]) == list(NEW_COLUMNS)
    rows = {(r["setting"], r["versus"], r["metric"]): r for r in table.to_dict("records")}
    assert len(rows) == 7  # 2 settings x 2 metrics vs the reference, 3 settings vs random

    # k=4 ran the reference's seeds: the paired t on the per-seed differences decides, Welch's p stays
    paired = rows[(K4, REF, "search_valid_acc")]
    pairs = [(SEARCHES[K4][seed], SEARCHES[REF][seed]) for seed in range(4)]
    d = [x - y for x, y in pairs]
    mean, sd = sum(d) / 4, stats.tstd(d)
    assert (paired["test"], paired["n_pairs"]) == ("paired t", 4)
    assert paired["p_paired"] == pytest.approx(2 * stats.t.sf(mean / (sd / 2), 3))
    assert paired["p_value"] == pytest.approx(
        compare(list(SEARCHES[K4].values()), list(SEARCHES[REF].values())).p_value
    )
    assert paired["n_for_80pct_power"] == _n_by_hand(mean / sd, paired=True)
    assert "paired t over the 4 seeds both ran; Welch t p = " in paired["sentence"]
    assert "paired by seed" in paired["note"]

    # k=2 shares 3 of 4 seeds: unpaired, Welch's test decides
    unpaired = rows[(K2, REF, "search_valid_acc")]
    a, b = list(SEARCHES[K2].values()), list(SEARCHES[REF].values())
    assert (unpaired["test"], unpaired["n_pairs"]) == ("Welch t", 0) and math.isnan(unpaired["p_paired"])
    assert unpaired["p_value"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert "share 3 of their 4 vs 4 seeds" in unpaired["note"]
    difference = sum(a) / 4 - sum(b) / 4
    assert unpaired["n_for_80pct_power"] == _n_by_hand(abs(difference) / pooled_std(a, b), paired=False)

    # retrain accuracy is per genotype, never paired
    retrain = rows[(K4, REF, "retrain_test_acc")]
    a, b = _retrain_means(K4), _retrain_means(REF)
    assert (retrain["test"], retrain["n_pairs"]) == ("Welch t", 0) and math.isnan(retrain["p_paired"])
    assert retrain["n_for_80pct_power"] == _n_by_hand(abs(retrain["difference"]) / pooled_std(a, b), paired=False)

    # Holm over the deciding p of every row; "significant" is Holm's p below 0.05, in the sentence too
    deciding = [r["p_paired"] if r["test"] == "paired t" else r["p_value"] for r in table.to_dict("records")]
    assert table["p_holm"].tolist() == pytest.approx(_holm_by_hand(deciding))
    assert (table["p_holm"] >= table[["p_value", "p_paired"]].min(axis=1)).all()
    for row in table.to_dict("records"):
        assert row["significant"] == (row["p_holm"] < 0.05) == ("significant at the 5% level" in row["sentence"])
        assert "Holm-adjusted p" in row["sentence"] and "over 7 comparisons" in row["sentence"]
    # the paired search difference is significant before Holm and stays so after it
    assert paired["p_paired"] < 0.05 and paired["significant"]


def test_seeds_needed_sentence():
    trials, selection = _study()
    table = compare_settings(trials, selection, [REF, K4, K2], REF, "DARTS")
    means = {s: sum(_retrain_means(s)) / 2 for s in (REF, K4, K2, "random")}
    summary = pd.DataFrame(
        [
            {"setting": s, "search_valid_acc_n": 0 if s == "random" else 4, "retrain_test_acc_n": 2}
            | {"retrain_test_acc_mean": m, "retrain_test_acc_std": 0.01}
            for s, m in means.items()
        ]
    )
    data = FindingsInput(summary, table, Agreement(6, 0.5, 0.2), REF, f"{REF} (DARTS)")
    best = findings(data)[1]
    row = table[(table["setting"] == K4) & (table["versus"] == REF) & (table["metric"] == "retrain_test_acc")].iloc[0]
    lead = f"{100 * row['difference']:+.1f}"
    needed = int(row["n_for_80pct_power"])
    assert best.startswith("Best setting by retrain test accuracy: k=4")
    assert (
        f"Seeds needed: to confirm k=4's lead of {lead} points over k=1 (DARTS) in retrain test accuracy at 80% "
        "power and the 5% level (two-sided, before any Holm adjustment), about "
        f"{needed} retrained genotypes per setting, each from its own search seed, would be needed "
        "(from the observed spread; n = 2 now)."
    ) in best
    assert "Holm-adjusted p = " in best and "over 7 comparisons" in best

    # not computable: said, with the reason
    zero = table.copy()
    zero.loc[row.name, ["difference", "n_for_80pct_power"]] = [0.0, NAN]
    assert (
        "Seeds needed: not computable for k=4 vs k=1 (DARTS) in retrain test accuracy, since the observed "
        in (findings(FindingsInput(summary, zero, Agreement(6, 0.5, 0.2), REF, f"{REF} (DARTS)"))[1])
    )
    # a table without the new columns (an older comparisons.csv): no Holm text, the reason instead of a number
    old = table.drop(columns=list(NEW_COLUMNS))
    text = findings(FindingsInput(summary, old, Agreement(6, 0.5, 0.2), REF, f"{REF} (DARTS)"))[1]
    assert "Holm" not in text and "Seeds needed: not computable" in text
