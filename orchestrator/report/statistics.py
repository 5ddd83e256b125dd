"""The statistics of a study report, on plain lists of numbers and genotypes (numpy, scipy and statsmodels).

* :func:`describe`: n, mean, sample standard deviation and the 95% t interval of the mean.
* :func:`compare`: the difference of two groups' means with its 95% interval and p-value.
* :func:`seed_pairs` and :func:`compare_paired`: the paired design (both settings ran the same seeds)
  and the paired t-test on the per-seed differences.
* :func:`holm`: Holm's adjustment of the p-values of one report for multiple comparisons.
* :func:`pooled_std` and :func:`n_for_power`: how many values per group would detect an observed
  difference at 80% power and the 5% level.
* :func:`rank_agreement`: Kendall's tau between two paired lists.
* :func:`genotype_overlap`, :func:`mean_pairwise_overlap`, :func:`op_counts`, :func:`alpha_entropy`:
  how stable the searches of one setting are.

The method, with its formulas and how far to trust it, is written once, in ``method.md`` beside this
module (``report.html`` shows it). Too few values never raise or warn: a value that cannot be
computed is NaN, and identical values give a zero standard deviation and a zero-width interval.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower
from statsmodels.tools.sm_exceptions import ConvergenceWarning  # imported here: its import sets "always"

from pcdarts_core import Genotype
from pcdarts_core.search_space import PARAMETER_FREE

CONFIDENCE = 0.95
#: Below this many values per group, a comparison is printed with a caveat.
FEW = 4
#: The power :func:`n_for_power` plans for.
POWER = 0.8
#: Per-seed differences closer together than this (in accuracy, a fraction) count as identical: the
#: float differences of equal steps (0.7 - 0.5 and 0.8 - 0.6) are not exactly equal.
SAME_DIFFERENCE = 1e-9
NAN = math.nan


def _values(values: Iterable[float]) -> np.ndarray:
    array = np.asarray([float(v) for v in values], dtype=float)
    return array[~np.isnan(array)]


def _constant(values: np.ndarray) -> bool:
    """All values equal (tested exactly: the float std of equal values such as 0.8, 0.8, 0.8 is not 0)."""
    return bool(np.all(values == values[0]))


@dataclass(frozen=True)
class Estimate:
    """A mean with its spread: ``std`` is the sample standard deviation (ddof=1), the interval is
    the mean's 95% t interval. NaN where the values do not determine it (std and CI need n >= 2)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


def describe(values: Iterable[float], confidence: float = CONFIDENCE) -> Estimate:
    """n, mean, std and the t confidence interval of the mean; NaN values are left out."""
    x = _values(values)
    n = len(x)
    if n == 0:
        return Estimate(0, NAN, NAN, NAN, NAN)
    mean = float(x.mean())
    if n == 1:
        return Estimate(1, mean, NAN, NAN, NAN)
    if _constant(x):
        return Estimate(n, mean, 0.0, mean, mean)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * std / math.sqrt(n)
    return Estimate(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Difference:
    """``mean(a) - mean(b)`` with its 95% interval and two-sided p-value (see ``method.md``).

    ``method``: ``welch`` (Welch's t-test), ``single-case`` (one group is a single value: Crawford
    and Howell's test) or ``none`` (nothing beyond the difference can be said). ``note`` says why a
    value is NaN."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str
    note: str = ""

    @property
    def few(self) -> bool:
        """Fewer than :data:`FEW` values on either side: the interval and p rest on very little."""
        return min(self.n_a, self.n_b) < FEW

    @property
    def significant(self) -> bool:
        """This one test's raw p below 1 - :data:`CONFIDENCE` (False where p is undefined). The report's verdict
        is not this: it adjusts the p-values of all its comparisons by Holm (:func:`holm`)."""
        return self.p_value == self.p_value and self.p_value < 1 - CONFIDENCE


def compare(a: Iterable[float], b: Iterable[float], confidence: float = CONFIDENCE) -> Difference:
    """Difference of means of ``a`` and ``b`` (independent groups); see :class:`Difference`."""
    x, y = _values(a), _values(b)
    n_a, n_b = len(x), len(y)
    mean_a = float(x.mean()) if n_a else NAN
    mean_b = float(y.mean()) if n_b else NAN
    if n_a == 0 or n_b == 0:
        return Difference(n_a, n_b, mean_a, mean_b, NAN, NAN, NAN, NAN, "none", "a group has no values")
    diff = mean_a - mean_b
    if n_a == 1 and n_b == 1:
        return Difference(
            n_a, n_b, mean_a, mean_b, diff, NAN, NAN, NAN, "none", "one value per group: no interval or p-value"
        )
    if n_a >= 2 and n_b >= 2:
        if _constant(x) and _constant(y):
            return Difference(
                n_a, n_b, mean_a, mean_b, diff, diff, diff, NAN, "welch", "no spread in either group: p undefined"
            )
        with warnings.catch_warnings():
            # one constant group is exact here (its variance is 0), not a loss of precision
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.ttest_ind(x, y, equal_var=False)
            interval = result.confidence_interval(confidence)
        return Difference(
            n_a, n_b, mean_a, mean_b, diff, float(interval.low), float(interval.high), float(result.pvalue), "welch"
        )
    # One side is a single value (Crawford and Howell): its own spread is unknown, so it is taken as
    # one more draw from the other group's distribution; the standard error of x* - x̄ is then s·√((n+1)/n).
    group = y if n_a == 1 else x
    n = len(group)
    if _constant(group):
        return Difference(
            n_a, n_b, mean_a, mean_b, diff, diff, diff, NAN, "single-case", "no spread in the larger group: p undefined"
        )
    se = float(group.std(ddof=1)) * math.sqrt((n + 1) / n)
    note = "one group has a single value: single-case t-test (Crawford-Howell)"
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * se
    p_value = float(2 * stats.t.sf(abs(diff) / se, df=n - 1))
    return Difference(n_a, n_b, mean_a, mean_b, diff, diff - half, diff + half, p_value, "single-case", note)


# --- paired comparisons, multiple comparisons, power -----------------------------------------


def seed_pairs(
    a: Iterable[tuple[object, float]], b: Iterable[tuple[object, float]]
) -> list[tuple[float, float]] | None:
    """The design is paired when both groups ran exactly the same seeds, each once (so that, seed by
    seed, both saw the same data split): then the (a, b) value pairs in seed order; None otherwise.
    ``a`` and ``b`` are (seed, value) pairs; pairs whose value is NaN are left out first, so a seed
    that lacks a value on one side only makes the design unpaired."""
    sides = []
    for side in (a, b):
        values = [(seed, float(v)) for seed, v in side if float(v) == float(v)]
        by_seed = dict(values)
        if len(by_seed) != len(values):  # a seed ran twice: no one-to-one pairing
            return None
        sides.append(by_seed)
    first, second = sides
    if not first or set(first) != set(second):
        return None
    return [(first[seed], second[seed]) for seed in sorted(first, key=str)]


@dataclass(frozen=True)
class Paired:
    """The paired t-test on the differences ``a - b`` of ``n`` pairs: their mean, sample standard
    deviation (ddof=1), the mean's 95% t interval and the two-sided p-value (scipy's ``ttest_rel``).
    NaN where the differences do not determine it; ``note`` says why."""

    n: int
    difference: float
    std: float
    ci_low: float
    ci_high: float
    p_value: float
    note: str = ""


def compare_paired(pairs: Sequence[tuple[float, float]], confidence: float = CONFIDENCE) -> Paired:
    """Paired t-test of ``a - b`` over ``pairs`` (from :func:`seed_pairs`): t = mean / (sd / √n)
    with n - 1 degrees of freedom. Fewer than two pairs, or differences without spread, give no p."""
    x = np.asarray([a for a, _ in pairs], dtype=float)
    y = np.asarray([b for _, b in pairs], dtype=float)
    d = x - y
    n = len(d)
    if n == 0:
        return Paired(0, NAN, NAN, NAN, NAN, NAN, "no pairs")
    mean = float(d.mean())
    if n == 1:
        return Paired(1, mean, NAN, NAN, NAN, NAN, "one pair: no interval or p-value")
    if float(np.ptp(d)) <= SAME_DIFFERENCE:
        return Paired(n, mean, 0.0, mean, mean, NAN, "no spread in the per-seed differences: p undefined")
    result = stats.ttest_rel(x, y)
    interval = result.confidence_interval(confidence)
    return Paired(n, mean, float(d.std(ddof=1)), float(interval.low), float(interval.high), float(result.pvalue))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (statsmodels' ``multipletests(method="holm")``) over the p-values
    that are defined; a NaN p stays NaN and does not count among the comparisons."""
    p = np.asarray([float(v) for v in p_values], dtype=float)
    out = np.full(len(p), NAN)
    defined = ~np.isnan(p)
    if defined.any():
        out[defined] = multipletests(p[defined], alpha=1 - CONFIDENCE, method="holm")[1]
    return [float(v) for v in out]


def pooled_std(a: Iterable[float], b: Iterable[float]) -> float:
    """The pooled sample standard deviation of two groups, each weighted by its n - 1 (NaN with fewer
    than three values in all, since a group of one adds no degree of freedom)."""
    x, y = _values(a), _values(b)
    dof = len(x) + len(y) - 2
    if dof < 1 or len(x) == 0 or len(y) == 0:
        return NAN
    squares = sum(float(((g - g.mean()) ** 2).sum()) if len(g) > 1 and not _constant(g) else 0.0 for g in (x, y))
    return math.sqrt(squares / dof)


def n_for_power(
    difference: float, std: float, paired: bool = False, power: float = POWER, alpha: float = 1 - CONFIDENCE
) -> float:
    """The smallest n that detects ``difference`` with ``power`` in a two-sided t-test at ``alpha``,
    for an effect size ``|difference| / std``: n per group of a two-sample t-test with equal groups
    (statsmodels' ``TTestIndPower``; ``std`` the pooled standard deviation), or n pairs of a paired
    t-test (``TTestPower``, the one-sample test on the differences; ``std`` theirs). An integer
    (rounded up, at least 2) as a float; NaN when the difference is 0 or the std is 0 or undefined."""
    if not (difference == difference and std == std) or difference == 0 or std <= 0:
        return NAN
    effect = abs(difference) / std
    solver = TTestPower() if paired else TTestIndPower()

    def reached(n: float) -> bool:
        achieved = float(solver.power(effect, n, alpha, alternative="two-sided"))
        if achieved != achieved:
            # scipy's noncentral t gives NaN for the far tail (t < -critical) of a huge effect at few
            # degrees of freedom; that tail is 0 then, which leaves the one-sided power at alpha / 2
            achieved = float(solver.power(effect, n, alpha / 2, alternative="larger"))
        return achieved >= power

    if reached(2):  # the smallest n with a degree of freedom; the root finder fails on huge effects
        return 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        n = float(np.asarray(solver.solve_power(effect, None, alpha, power, alternative="two-sided")).item())
    if n == n and math.isfinite(n):
        whole = math.ceil(n - 1e-9)
        return float(whole if reached(whole) else whole + 1)
    low, high = 2, 4  # the root finder gave up: the integer search on the power itself
    while not reached(high):
        low, high = high, high * 2
        if high > 10**12:
            return NAN
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reached(middle) else (middle, high)
    return float(high)


@dataclass(frozen=True)
class Agreement:
    """Kendall's tau between two paired lists (NaN with fewer than 2 pairs or a constant list)."""

    n: int
    tau: float
    p_value: float


def rank_agreement(x: Sequence[float], y: Sequence[float]) -> Agreement:
    pairs = [(float(a), float(b)) for a, b in zip(x, y) if a == a and b == b]
    n = len(pairs)
    if n < 2:
        return Agreement(n, NAN, NAN)
    xs, ys = zip(*pairs)
    if len(set(xs)) == 1 or len(set(ys)) == 1:
        return Agreement(n, NAN, NAN)
    result = stats.kendalltau(xs, ys)
    return Agreement(n, float(result.statistic), float(result.pvalue))


# --- stability of the searches ---------------------------------------------------------


def edges(genotype: Genotype) -> Counter:
    """The genotype's edges as (cell, node, input, op), counted (a node may repeat an edge)."""
    found: Counter = Counter()
    for cell in ("normal", "reduce"):
        for node, pair in enumerate(genotype.nodes(cell)):
            for op, source in pair:
                found[(cell, node, source, op)] += 1
    return found


def genotype_overlap(a: Genotype, b: Genotype) -> float:
    """The share of edges two genotypes have in common, (node, input, op) in the same cell:
    1 for the same cells (in either order within a node), 0 for no edge in common."""
    ea, eb = edges(a), edges(b)
    total = max(sum(ea.values()), sum(eb.values()))
    return sum((ea & eb).values()) / total if total else NAN


def mean_pairwise_overlap(genotypes: Sequence[Genotype]) -> float:
    """Mean :func:`genotype_overlap` over every pair (NaN with fewer than two genotypes)."""
    pairs = list(itertools.combinations(genotypes, 2))
    if not pairs:
        return NAN
    return float(np.mean([genotype_overlap(a, b) for a, b in pairs]))


def op_counts(genotype: Genotype) -> dict[str, int]:
    """Per cell, the skip connections and the parameter-free operations (skip, pooling) among its edges."""
    counts = {}
    for cell in ("normal", "reduce"):
        ops = [op for op, _ in getattr(genotype, cell)]
        counts[f"skip_connect_{cell}"] = sum(op == "skip_connect" for op in ops)
        counts[f"parameter_free_{cell}"] = sum(op in PARAMETER_FREE for op in ops)
    return counts


def alpha_entropy(alphas: Sequence[Sequence[float]]) -> float:
    """Mean entropy of the edges' softmaxed α, as a share of the maximum (log of the number of
    operations): 1 when every edge is undecided (uniform), 0 when every edge picked one operation."""
    rows = np.asarray(alphas, dtype=float)
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] < 2:
        return NAN
    rows = rows / rows.sum(axis=1, keepdims=True)
    per_edge = stats.entropy(rows, axis=1) / math.log(rows.shape[1])
    return float(np.clip(per_edge.mean(), 0.0, 1.0))
