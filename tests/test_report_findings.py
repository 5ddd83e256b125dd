"""The report's findings (orchestrator.report.findings) against hand-made tables: a significant lead,
a non-significant one, n = 1, a missing reference, flat α, many skip connections. That the fixture
study's summary.md and report.html open with them: tests/test_report_html.py."""

from __future__ import annotations

import math

import pandas as pd

from orchestrator.report.comparisons import COMPARISON_COLUMNS
from orchestrator.report.findings import FindingsInput, findings
from orchestrator.report.statistics import Agreement

REF, K4, RANDOM = "k=1 edge_norm=off", "k=4 edge_norm=on", "random"
NAN = math.nan


def _summary_row(setting: str, **values) -> dict:
    row = {
        "setting": setting,
        "search_valid_acc_n": 3,
        "retrain_test_acc_n": 3,
        "retrain_test_acc_mean": 0.80,
        "retrain_test_acc_std": 0.01,
        "search_time_s_mean": 100.0,
        "search_gpu_hours": 0.0,
        "peak_memory_mib": 1000.0,
        "alpha_entropy_normal": 0.70,
        "alpha_entropy_reduce": 0.80,
        "skip_connect_normal": 1.0,
        "skip_connect_reduce": 0.5,
    }
    return {**row, **values}


def _comparison(setting: str, versus: str, difference: float, p: float, n: int = 3, n_versus: int = 3, **more) -> dict:
    row = dict.fromkeys(COMPARISON_COLUMNS, NAN)
    row.update(setting=setting, versus=versus, metric="retrain_test_acc", n=n, n_versus=n_versus, note="")
    row.update(difference=difference, ci_low=difference - 0.01, ci_high=difference + 0.01, p_value=p)
    row.update(significant=p == p and p < 0.05, **more)
    return row


def _input(summary: list[dict], comparisons: list[dict], reference: str | None = REF, **more) -> FindingsInput:
    return FindingsInput(
        summary=pd.DataFrame(summary),
        comparisons=pd.DataFrame(comparisons, columns=list(COMPARISON_COLUMNS)),
        agreement=more.pop("agreement", Agreement(6, 0.6, 0.01)),
        reference=reference,
        reference_label=f"{reference} (DARTS)" if reference else "",
        search_epochs={REF: 10, K4: 10},
        **more,
    )


def _three_settings(**k4) -> list[dict]:
    return [
        _summary_row(REF),
        _summary_row(K4, retrain_test_acc_mean=0.85, search_time_s_mean=40.0, peak_memory_mib=310.0, **k4),
        _summary_row(RANDOM, search_valid_acc_n=0, retrain_test_acc_mean=0.70, search_time_s_mean=NAN),
    ]


def test_significant_lead_and_relative_cost():
    text = findings(
        _input(_three_settings(), [_comparison(K4, REF, 0.05, 0.004), _comparison(K4, RANDOM, 0.15, 0.0004)])
    )
    cost, best, agreement, entropy, skips = text
    assert "relative to k=1 edge_norm=off (DARTS), which took 10.00 s per epoch (mean of 3 searches)" in cost
    assert "k=4 edge_norm=on 0.40×" in cost and "Peak memory" in cost and "k=4 edge_norm=on 0.31×" in cost
    assert "peak resident size" in cost and "not the activation memory per image" in cost
    assert best.startswith("Best setting by retrain test accuracy: k=4 edge_norm=on, 85.00 ± 1.00 %")
    assert "lead over k=1 edge_norm=off (DARTS) is +5.0 points [+4.0, +6.0], p = 0.004, n = 3" in best
    assert best.count("significant at the 5% level") == 2 and "p < 0.001" in best
    assert "a hint at most" in best  # n = 3 < 4
    assert "Kendall's tau = +0.60 over n = 6" in agreement and "went with a better retrained network" in agreement
    assert "k=4 edge_norm=on 0.70 / 0.80" in entropy and "barely moved" not in entropy
    assert "(random cells, the chance level: 1.0 / 0.5)" in skips and "none near" in skips


def test_non_significant_lead_and_gpu_memory():
    summary = _three_settings(retrain_test_acc_n=5)
    summary[0].update(search_gpu_hours=0.5, retrain_test_acc_n=5)
    text = findings(
        _input(summary, [_comparison(K4, REF, 0.05, 0.3, n=5, n_versus=5), _comparison(K4, RANDOM, 0.15, 0.2)])
    )
    assert "CUDA peak of allocated memory" in text[0]
    assert "p = 0.30, n = 5: not significant" in text[1] and "significant at" not in text[1]
    assert "p = 0.20, n = 3: not significant, a hint at most." in text[1]


def test_one_genotype_no_spread_and_flat_alpha():
    summary = [
        _summary_row(REF, retrain_test_acc_n=1, search_valid_acc_n=1, alpha_entropy_normal=1.0),
        _summary_row(K4, retrain_test_acc_n=1, retrain_test_acc_mean=0.9, alpha_entropy_normal=0.99),
    ]
    note = "one value per group: no interval or p-value"
    comparison = _comparison(K4, REF, 0.1, NAN, n=1, n_versus=1, note=note)
    comparison.update(ci_low=NAN, ci_high=NAN)
    cost, best, agreement, entropy, _ = findings(_input(summary, [comparison], agreement=Agreement(2, NAN, NAN)))
    assert "(mean of 1 search)" in cost and "One search per setting: no spread, a hint at most." in cost
    assert "90.00 % over 1 retrained genotype (one genotype: no spread)" in best
    assert f"+10.0 points, n = 1: not testable ({note}), a hint at most" in best
    assert "no comparison with the random cells: no random cells were retrained" in best
    assert "not measurable over n = 2" in agreement
    assert "α barely moved" in entropy and "every setting" in entropy and "did not decide" in entropy


def test_missing_reference_says_why():
    # the reference's searches all failed: no time, no retrained genotype
    summary = _three_settings()
    summary[0].update(search_valid_acc_n=0, search_time_s_mean=NAN, retrain_test_acc_n=0, retrain_test_acc_mean=NAN)
    cost, best, *_ = findings(_input(summary, [_comparison(K4, RANDOM, 0.15, 0.0004)]))
    assert "the reference k=1 edge_norm=off (DARTS) is missing: none of its searches finished" in cost
    assert "no comparison with the reference: the reference k=1 edge_norm=off (DARTS) is missing" in best
    assert "lead over the random cells is +15.0 points" in best
    # no reference in the grid at all: its reason is given
    cost, best, *_ = findings(_input(_three_settings(), [], reference=None, reference_note="no k=1 setting"))
    assert "there is no reference setting (no k=1 setting)" in cost
    assert "no comparison with a reference (no k=1 setting)" in best


def test_many_skip_connections_flagged():
    *_, skips = findings(_input(_three_settings(skip_connect_normal=4.0), []))
    assert "k=4 edge_norm=on: 3 or more per normal cell, DARTS's known collapse" in skips


def test_activation_memory_ratio_replaces_the_cpu_peak():
    settings = _three_settings(activation_mib_per_image=1.76)
    settings[0]["activation_mib_per_image"] = 5.5
    cost = findings(_input(settings, [_comparison(K4, REF, 0.05, 0.004)]))[0]
    assert "Activation memory per image" in cost and "relative to k=1 edge_norm=off (DARTS), 5.50 MiB" in cost
    assert "k=4 edge_norm=on 0.32×" in cost
    assert "Peak memory" not in cost  # on a CPU the process's resident size says nothing of the method


def test_activation_memory_and_the_cuda_peak_on_a_gpu():
    settings = _three_settings(activation_mib_per_image=1.76, search_gpu_hours=0.1)
    settings[0].update(activation_mib_per_image=5.5, search_gpu_hours=0.2)
    cost = findings(_input(settings, [_comparison(K4, REF, 0.05, 0.004)]))[0]
    assert "k=4 edge_norm=on 0.32×" in cost and "k=4 edge_norm=on 0.31×" in cost
    assert "This is the CUDA peak of allocated memory." in cost


def test_published_anchor_in_the_best_setting_sentence_and_not_a_candidate():
    anchor = "published:PC_DARTS_cifar"
    summary = [
        *_three_settings(),
        _summary_row(anchor, search_valid_acc_n=0, retrain_test_acc_mean=0.97, search_time_s_mean=NAN),
    ]
    comparisons = [_comparison(K4, REF, 0.05, 0.004), _comparison(K4, anchor, -0.12, 0.01, n_versus=1)]
    cost, best, *_ = findings(_input(summary, comparisons))
    # the anchor is better, yet the best *setting* is a searched one; the anchor is compared with it
    assert best.startswith("Best setting by retrain test accuracy: k=4 edge_norm=on")
    assert "its difference over the published PC_DARTS_cifar is -12.0 points" in best
    assert anchor not in cost  # no search cost for a published cell
