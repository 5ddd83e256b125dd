"""The study report's statistics against values computed by hand (or by a scipy-independent
integration of the t density): t intervals, Welch and single-case (Crawford–Howell) comparisons, Kendall's tau,
genotype overlap, operation counts and α entropy; too few or identical values give clean NaN or
zero-width answers without warnings."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from orchestrator.report.statistics import (
    alpha_entropy,
    compare,
    describe,
    genotype_overlap,
    mean_pairwise_overlap,
    op_counts,
    rank_agreement,
)
from pcdarts_core import Genotype

pytestmark = pytest.mark.filterwarnings("error")  # a warning from the statistics is a failure

T_975_DF2 = 4.302652729749464  # the 97.5% quantile of Student's t with 2 degrees of freedom (tables)


def _nan(*values: float) -> bool:
    return all(math.isnan(v) for v in values)


# --- a t distribution without scipy: the density integrated with Simpson's rule -------------------


def _t_tail(t: float, df: float, steps: int = 20000) -> float:
    """P(T > t) for t >= 0: the integral of the t density from 0 to t, taken from one half."""

    def density(x: float) -> float:
        c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
        return c * (1 + x * x / df) ** (-(df + 1) / 2)

    h = t / steps
    area = density(0) + density(t) + sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
    return 0.5 - area * h / 3


def _t_quantile(q: float, df: float) -> float:
    low, high = 0.0, 50.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if 1 - _t_tail(mid, df, 4000) < q else (low, mid)
    return (low + high) / 2


# --- describe ----------------------------------------------------------------------------------------


def test_describe_three_values_hand_computed():
    e = describe([0.9, 0.92, 0.94])
    half = T_975_DF2 * 0.02 / math.sqrt(3)  # = 0.0496827
    assert e.n == 3 and e.mean == pytest.approx(0.92) and e.std == pytest.approx(0.02)
    assert (e.ci_low, e.ci_high) == (pytest.approx(0.92 - half), pytest.approx(0.92 + half))
    assert e.ci_low == pytest.approx(0.8703173, abs=1e-6)


def test_describe_one_value_none_and_identical_values():
    one = describe([0.8])
    assert one.n == 1 and one.mean == pytest.approx(0.8) and _nan(one.std, one.ci_low, one.ci_high)
    none = describe([])
    assert none.n == 0 and _nan(none.mean, none.std, none.ci_low, none.ci_high)
    same = describe([0.5, 0.5, 0.5])
    assert (same.n, same.mean, same.std, same.ci_low, same.ci_high) == (3, 0.5, 0.0, 0.5, 0.5)
    skipped = describe([0.5, float("nan"), 0.7])  # a failed trial's missing value is left out
    assert skipped.n == 2 and skipped.mean == pytest.approx(0.6)


# --- compare -----------------------------------------------------------------------------------------


def test_welch_difference_against_hand_computation():
    a, b = [0.9, 0.92, 0.94], [0.88, 0.9]
    va, vb = 0.02**2 / 3, (0.02**2 / 2) / 2  # variance of each mean: s²/n (b: s² = 0.0002)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 1)  # Welch–Satterthwaite: 2.882353
    t = 0.03 / se  # 1.963961
    d = compare(a, b)
    assert d.method == "welch" and (d.n_a, d.n_b) == (3, 2)
    assert d.difference == pytest.approx(0.03)
    assert df == pytest.approx(2.882353, abs=1e-6)
    assert d.p_value == pytest.approx(2 * _t_tail(t, df), abs=1e-6)
    half = _t_quantile(0.975, df) * se
    assert (d.ci_low, d.ci_high) == (pytest.approx(0.03 - half, abs=1e-5), pytest.approx(0.03 + half, abs=1e-5))
    assert d.few and not d.significant


def test_welch_with_one_constant_group_closed_form():
    # b's variance is 0.0025, a's is 0: df = 2 exactly, where the t distribution has a closed form
    d = compare([0.9, 0.9, 0.9], [0.8, 0.85, 0.9])
    se = math.sqrt(0.0025 / 3)
    t = 0.05 / se
    assert d.difference == pytest.approx(0.05)
    assert d.p_value == pytest.approx(1 - t / math.sqrt(2 + t * t))  # = 0.225403
    assert d.p_value == pytest.approx(0.225403, abs=1e-6)
    assert (d.ci_low, d.ci_high) == (pytest.approx(0.05 - T_975_DF2 * se), pytest.approx(0.05 + T_975_DF2 * se))


def test_identical_values_give_zero_width_interval_and_no_p():
    same = compare([0.9, 0.9], [0.9, 0.9])
    assert (same.difference, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0) and math.isnan(same.p_value)
    apart = compare([0.9, 0.9], [0.8, 0.8])
    assert apart.difference == pytest.approx(0.1) and apart.ci_low == apart.ci_high == pytest.approx(0.1)
    assert math.isnan(apart.p_value) and "no spread" in apart.note and not apart.significant
    # equal values whose float mean is not exactly them (0.8 · 3 / 3 = 0.8000000000000002): still no spread, no p
    rounded = compare([0.9, 0.9, 0.9], [0.8, 0.8, 0.8])
    assert (
        rounded.ci_low == rounded.ci_high == rounded.difference
        and math.isnan(rounded.p_value)
        and not rounded.significant
    )
    assert describe([0.8, 0.8, 0.8]).std == 0.0


def test_single_values_one_or_both_sides():
    both = compare([0.9], [0.8])
    assert (
        both.method == "none"
        and both.difference == pytest.approx(0.1)
        and _nan(both.ci_low, both.ci_high, both.p_value)
    )
    empty = compare([], [0.8, 0.9])
    assert empty.n_a == 0 and _nan(empty.difference, empty.p_value)


def test_single_value_against_a_group_crawford_howell():
    # x* = 0.9 against n = 3 values with mean 0.82 and s = 0.02: the standard error of x* - x̄ is
    # s·√((n+1)/n) = 0.02·√(4/3), t = 0.08 / 0.0230940 = 2√3 with 2 degrees of freedom
    se = 0.02 * math.sqrt(4 / 3)
    t = 0.08 / se
    assert t == pytest.approx(2 * math.sqrt(3))
    d = compare([0.9], [0.8, 0.82, 0.84])
    assert d.method == "single-case" and (d.n_a, d.n_b) == (1, 3) and d.difference == pytest.approx(0.08)
    half = float(stats.t.ppf(0.975, 2)) * se  # = 4.302653 · 0.0230940 = 0.0993655
    assert (d.ci_low, d.ci_high) == (pytest.approx(0.08 - half), pytest.approx(0.08 + half))
    assert d.ci_low == pytest.approx(-0.0193655, abs=1e-6)
    # two-sided p with 2 degrees of freedom in closed form: 1 - t / √(2 + t²) = 1 - 2√3/√14
    assert d.p_value == pytest.approx(1 - t / math.sqrt(2 + t * t)) and d.p_value == pytest.approx(0.0741799, abs=1e-6)
    assert not d.significant and d.few and "single value" in d.note
    # the single value on the other side: the same interval, mirrored, and the same p
    mirrored = compare([0.8, 0.82, 0.84], [0.9])
    assert mirrored.difference == pytest.approx(-0.08) and mirrored.p_value == pytest.approx(d.p_value)
    assert (mirrored.ci_low, mirrored.ci_high) == (pytest.approx(-d.ci_high), pytest.approx(-d.ci_low))


def test_single_case_against_the_integrated_t_density_and_consistent_verdict():
    # x* = 0.95 against 0.80, 0.85, 0.90, 0.82: mean 0.8425, deviations -0.0425, 0.0075, 0.0575, -0.0225
    group = [0.80, 0.85, 0.90, 0.82]
    s = math.sqrt((0.0425**2 + 0.0075**2 + 0.0575**2 + 0.0225**2) / 3)
    se = s * math.sqrt(5 / 4)
    t = 0.1075 / se
    d = compare([0.95], group)
    assert d.difference == pytest.approx(0.1075)
    assert d.p_value == pytest.approx(2 * _t_tail(t, 3), abs=1e-6)
    half = _t_quantile(0.975, 3) * se
    assert (d.ci_low, d.ci_high) == (pytest.approx(0.1075 - half, abs=1e-5), pytest.approx(0.1075 + half, abs=1e-5))
    # the interval excludes 0 exactly when p < 0.05: interval and test never disagree
    for single in (0.95, 0.99, 1.05, 0.60, 0.86):
        e = compare([single], group)
        assert (e.ci_low > 0 or e.ci_high < 0) == e.significant
    assert compare([1.05], group).significant and not compare([0.86], group).significant


def test_single_value_against_identical_values_zero_width():
    d = compare([0.9], [0.8, 0.8, 0.8])
    assert d.method == "single-case" and d.difference == pytest.approx(0.1)
    assert d.ci_low == d.ci_high == d.difference and math.isnan(d.p_value) and "no spread" in d.note
    assert not d.significant


# --- Kendall's tau --------------------------------------------------------------------------------------


def test_rank_agreement_small_table():
    # pairs (1,1) (2,3) (3,2) (4,4): 5 concordant, 1 discordant: tau = 4/6; exact two-sided p: of the 24
    # orderings, 4 have at most one inversion and 4 at least five: 8/24
    a = rank_agreement([1, 2, 3, 4], [1, 3, 2, 4])
    assert a.n == 4 and a.tau == pytest.approx(2 / 3) and a.p_value == pytest.approx(1 / 3)
    assert rank_agreement([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]).tau == pytest.approx(-1.0)
    assert math.isnan(rank_agreement([0.5], [0.7]).tau)
    constant = rank_agreement([1, 2, 3], [0.5, 0.5, 0.5])
    assert constant.n == 3 and _nan(constant.tau, constant.p_value)
    assert rank_agreement([1, float("nan"), 3], [1, 2, 3]).n == 2


# --- stability ------------------------------------------------------------------------------------------

REDUCE = [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("avg_pool_3x3", 1)]
A = Genotype(
    [("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 2)], [2, 3], REDUCE, [2, 3]
)


def test_overlap_on_crafted_genotypes():
    swapped = Genotype(
        [("skip_connect", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2), ("max_pool_3x3", 0)],
        [2, 3],
        [REDUCE[1], REDUCE[0], REDUCE[3], REDUCE[2]],
        [2, 3],
    )
    assert genotype_overlap(A, A) == 1.0 and genotype_overlap(A, swapped) == 1.0  # order within a node is irrelevant
    # 2 of 8 edges differ: another op on the same input, and the same (input, op) moved to another node
    two_off = Genotype(
        [("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 0), ("dil_conv_3x3", 2)],
        [2, 3],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0)],
        [2, 3],
    )
    assert genotype_overlap(A, two_off) == pytest.approx(6 / 8)
    # the same edges in the other cell do not count
    crossed = Genotype(REDUCE, [2, 3], list(A.normal), [2, 3])
    assert genotype_overlap(A, crossed) == 0.0
    assert mean_pairwise_overlap([A, swapped, two_off]) == pytest.approx((1 + 0.75 + 0.75) / 3)
    assert math.isnan(mean_pairwise_overlap([A]))


def test_op_counts_skip_and_parameter_free():
    assert op_counts(A) == {
        "skip_connect_normal": 1,
        "parameter_free_normal": 2,
        "skip_connect_reduce": 1,
        "parameter_free_reduce": 4,
    }


def test_alpha_entropy_uniform_one_hot_and_between():
    uniform = [[1 / 8] * 8] * 14
    one_hot = [[1.0] + [0.0] * 7] * 14
    assert alpha_entropy(uniform) == pytest.approx(1.0)
    assert alpha_entropy(one_hot) == pytest.approx(0.0)
    assert alpha_entropy([[0.5, 0.5] + [0.0] * 6]) == pytest.approx(math.log(2) / math.log(8))
    assert alpha_entropy([[1 / 8] * 8, [1.0] + [0.0] * 7]) == pytest.approx(0.5)
    assert math.isnan(alpha_entropy([]))
