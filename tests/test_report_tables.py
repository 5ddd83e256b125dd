"""The report's tables on a small hand-made study: retrain seeds averaged per genotype before the
per-setting statistics, the seeds' own spread (pooled, weighted by seeds - 1), genotype stability,
the comparisons with the reference setting and the random baseline (a genotype both settings found
left out of both groups), search-to-retrain agreement; and ``report.reference`` in the spec."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from orchestrator.errors import SpecError
from orchestrator.report.comparisons import compare_settings, search_retrain_agreement
from orchestrator.report.genotypes import genotype_results
from orchestrator.report.statistics import compare
from orchestrator.report.summary import summarize
from orchestrator.report.tables import summary_markdown
from orchestrator.spec import parse_spec, reference_setting
from pcdarts_core import KNOWN_GENOTYPES, random_genotype

DARTS = KNOWN_GENOTYPES["DARTS_V2"].to_text()
PC = KNOWN_GENOTYPES["PC_DARTS_cifar"].to_text()
OTHER = random_genotype(5).to_text()


def _retrain_row(gid: str, setting: str, seed: int, acc: float) -> dict:
    """A finished retrain trial of genotype ``gid`` with test accuracy ``acc``."""
    return {
        "stage": "retrain",
        "trial": f"r-{gid}-{seed}",
        "setting": setting,
        "seed": seed,
        "status": "finished",
        "test_acc": acc,
        "genotype_id": gid,
        "parameters": 2000,
        "time_s": 720.0,
        "cpus": 1,
        "gpus": 0.0,
        "epochs": 2,
    }


def _study() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    searches = [
        ("k=1", 0.50, DARTS),
        ("k=1", 0.60, DARTS),
        ("k=1", 0.55, PC),
        ("k=4", 0.70, PC),
        ("k=4", 0.65, PC),
        ("k=4", 0.60, OTHER),
    ]
    for i, (setting, acc, genotype) in enumerate(searches):
        rows.append(
            {
                "stage": "search",
                "trial": f"s{i}",
                "setting": setting,
                "seed": i % 3,
                "k": int(setting[2]),
                "status": "finished",
                "valid_acc": acc,
                "parameters": 1000,
                "time_s": 360.0,
                "cpus": 1,
                "gpus": 0.0,
                "epochs": 2,
                "images_per_s": 100.0 + i,
                "peak_memory_bytes": (i + 1) * 2**20,
                "activation_bytes_per_image": (3 if setting.startswith("k=1") else 1) * 2**20,
                "genotype": genotype,
            }
        )
    retrains = {
        "g01": ("k=1", [0.80, 0.84]),
        "g02": ("k=4", [0.90, 0.92]),
        "g03": ("k=4", [0.70, 0.74]),
        "random01": ("random", [0.60, 0.62]),
        "random02": ("random", [0.50, 0.54]),
    }
    for gid, (setting, accs) in retrains.items():
        for seed, acc in enumerate(accs):
            rows.append(
                {**_retrain_row(gid, setting, seed, acc), "genotype": OTHER if gid.startswith("random") else None}
            )
    selection = pd.DataFrame(
        [
            # g02 was found by a search of each setting: it counts for both
            {
                "genotype_id": "g02",
                "setting": "k=4",
                "source": "s3",
                "found_by": "s2;s3;s4",
                "found_by_settings": "k=1;k=4",
                "metric": "valid_acc",
                "value": 0.70,
                "genotype": PC,
            },
            {
                "genotype_id": "g01",
                "setting": "k=1",
                "source": "s1",
                "found_by": "s0;s1",
                "found_by_settings": "k=1",
                "metric": "valid_acc",
                "value": 0.60,
                "genotype": DARTS,
            },
            {
                "genotype_id": "g03",
                "setting": "k=4",
                "source": "s5",
                "found_by": "s5",
                "found_by_settings": "k=4",
                "metric": "valid_acc",
                "value": 0.60,
                "genotype": OTHER,
            },
        ]
    )
    return pd.DataFrame(rows), selection


def test_genotypes_averaged_over_seeds_first():
    trials, selection = _study()
    genotypes = genotype_results(trials, selection).set_index("genotype_id")
    assert list(genotypes.index) == ["g02", "g01", "g03", "random01", "random02"]
    assert genotypes.loc["g01", "retrain_test_acc_mean"] == pytest.approx(0.82)
    assert genotypes.loc["g01", "retrain_test_acc_std"] == pytest.approx(math.sqrt(0.0008))  # (0.02² · 2) / 1
    assert genotypes.loc["g02", "search_valid_acc"] == pytest.approx(0.70)  # its source search s3
    assert genotypes.loc["random01", "setting"] == "random" and genotypes.loc["random01", "genotype"] == OTHER

    summary = summarize(trials, selection, ["k=1", "k=4"]).set_index("setting")
    k1, k4, rnd = summary.loc["k=1"], summary.loc["k=4"], summary.loc["random"]
    # k=1: genotypes g01 (0.82) and g02 (0.91): n counts genotypes, not the 4 retrainings
    assert (k1.retrain_test_acc_n, k1.retrains, k1.genotypes_retrained) == (2, 4, 2)
    assert k1.retrain_test_acc_mean == pytest.approx(0.865)
    assert k1.retrain_test_acc_std == pytest.approx(math.sqrt(2 * 0.045**2))
    half = 12.706204736174707 * k1.retrain_test_acc_std / math.sqrt(2)  # t(0.975, 1) from tables
    assert (k1.retrain_test_acc_ci_low, k1.retrain_test_acc_ci_high) == (
        pytest.approx(0.865 - half),
        pytest.approx(0.865 + half),
    )
    # every genotype's two seeds differ by 0.02 or 0.04: with equal seed counts, the pooled seed std is
    # the root of the mean variance
    assert k1.retrain_seed_std == pytest.approx(math.sqrt((0.0008 + 0.0002) / 2))
    assert k4.retrain_test_acc_mean == pytest.approx((0.91 + 0.72) / 2)
    assert rnd.retrain_test_acc_mean == pytest.approx((0.61 + 0.52) / 2) and rnd.retrain_test_acc_n == 2
    # search statistics over the three searches of each setting
    assert (
        k1.search_valid_acc_n == 3
        and k1.search_valid_acc_mean == pytest.approx(0.55)
        and k1.search_valid_acc_std == pytest.approx(0.05)
    )
    # stability: k=1 found DARTS, DARTS, PC: pairs (1, o, o) with o the DARTS/PC overlap
    from orchestrator.report.statistics import genotype_overlap, op_counts
    from pcdarts_core import parse_genotype

    o = genotype_overlap(parse_genotype(DARTS), parse_genotype(PC))
    assert k1.genotype_overlap == pytest.approx((1 + 2 * o) / 3)
    skips = [op_counts(parse_genotype(g))["skip_connect_normal"] for g in (DARTS, DARTS, PC)]
    assert k1.skip_connect_normal == pytest.approx(sum(skips) / 3)
    assert rnd.genotype_overlap == pytest.approx(1.0)  # both random cells are OTHER here
    # cost of the searches only
    assert k1.search_cpu_hours == pytest.approx(3 * 0.1) and k1.peak_memory_mib == pytest.approx(3.0)
    assert k4.images_per_s == pytest.approx(104.0) and math.isnan(rnd.peak_memory_mib)
    assert k1.activation_mib_per_image == pytest.approx(3.0) and k4.activation_mib_per_image == pytest.approx(1.0)
    assert math.isnan(rnd.activation_mib_per_image)


def test_comparisons_with_reference_and_random():
    trials, selection = _study()
    table = compare_settings(trials, selection, ["k=1", "k=4"], "k=1", "DARTS")
    keys = list(zip(table["setting"], table["versus"], table["metric"]))
    assert keys == [
        ("k=4", "k=1", "search_valid_acc"),
        ("k=4", "k=1", "retrain_test_acc"),
        ("k=1", "random", "retrain_test_acc"),
        ("k=4", "random", "retrain_test_acc"),
    ]
    row = table.iloc[0]
    expected = compare([0.70, 0.65, 0.60], [0.50, 0.60, 0.55])
    assert (row["difference"], row["ci_low"], row["p_value"]) == (
        pytest.approx(expected.difference),
        pytest.approx(expected.ci_low),
        pytest.approx(expected.p_value),
    )
    assert row["sentence"].startswith(
        "k=4 vs k=1 (DARTS), search validation accuracy: 65.0 ± 5.0 vs 55.0 ± 5.0 %, difference +10.0 ["
    )
    assert "n = 3: " in row["sentence"] and "caveat: fewer than 4 values per group" in row["sentence"]
    # retrain: g02 was found by both k=1 and k=4, so it is left out of both groups: g03 (0.72) vs g01 (0.82)
    retrain = table.iloc[1]
    assert (retrain["n"], retrain["n_versus"], retrain["n_shared"]) == (1, 1, 1)
    assert retrain["mean"] == pytest.approx(0.72) and retrain["mean_versus"] == pytest.approx(0.82)
    assert retrain["difference"] == pytest.approx(-0.10) and retrain["method"] == "none"
    assert "1 genotype found by both settings left out" in retrain["note"]
    assert "1 genotype found by both settings left out" in retrain["sentence"]
    # against the random baseline nothing is shared: k=1 keeps both of its genotypes g01 and g02
    k1_random = table.iloc[2]
    assert (k1_random["n"], k1_random["n_shared"]) == (2, 0) and k1_random["mean"] == pytest.approx(0.865)
    assert "left out" not in k1_random["sentence"]
    # one verdict: the significant column, the sentence and Holm's p < 0.05 agree on every row
    for row in table.itertuples():
        assert row.significant == (row.p_holm < 0.05) == ("significant at the 5% level" in row.sentence)

    # no reference in the grid: only the comparisons with the random baseline
    assert set(compare_settings(trials, selection, ["k=1", "k=4"], None)["versus"]) == {"random"}

    agreement = search_retrain_agreement(genotype_results(trials, selection))
    # searched genotypes (search, retrain): g02 (0.70, 0.91), g01 (0.60, 0.82), g03 (0.60, 0.72):
    # 2 concordant pairs, 1 tie
    assert agreement.n == 3 and agreement.tau == pytest.approx(2 / math.sqrt(3 * 2))
    text = summary_markdown(
        "tiny", summarize(trials, selection, ["k=1", "k=4"]), selection, trials, table, agreement, ["a note"]
    )
    assert (
        "## Comparisons" in text and "- a note" in text and "Kendall's tau = +0.82" in text and "## Stability" in text
    )


BASE = {
    "name": "tiny",
    "dataset": {"name": "fashion_mnist_mini", "train_subset": 128},
    "search": {
        "seed": [0, 1],
        "k": [1, 4],
        "edge_norm": [True, False],
        "init_channels": 4,
        "layers": 3,
        "epochs": 2,
        "warmup_epochs": 1,
    },
    "retrain": {"init_channels": 4, "layers": 3, "epochs": 1},
}


def _spec(report=None, **search):
    raw = yaml.safe_load(yaml.safe_dump(BASE, sort_keys=False))
    raw["search"].update(search)
    if report is not None:
        raw["report"] = report
    return parse_spec(raw, source="tiny.yaml")


def test_reference_setting_in_the_spec():
    assert reference_setting(_spec()) == ("k=1 edge_norm=off", "")  # the default: DARTS
    assert reference_setting(_spec({"reference": {"k": 4, "edge_norm": True}}))[0] == "k=4 edge_norm=on"
    assert reference_setting(_spec({"reference": {"k": 4}}, edge_norm=True))[0] == "k=4"  # edge_norm not swept
    label, why = reference_setting(_spec(k=[2, 4]))  # the default is not in this grid: left out, with the reason
    assert label is None and "report.reference" in why and "DARTS" in why
    problems = [
        (
            {"reference": {"k": 2, "edge_norm": False}},
            r"^tiny.yaml: report.reference: k=2, edge_norm=false is not a setting",
        ),
        ({"reference": {"k": 4}}, r"report.reference: k=4 matches 2 settings .*also give edge_norm"),
        ({"reference": {"kk": 1}}, r"report.reference.kk: not a search setting"),
        ({"reference": {"edge_norm": 1, "k": 1}}, r"report.reference: .* is not a setting"),  # 1 is not false
        ({"referenc": {"k": 1}}, r"report.referenc: unknown key"),
    ]
    for report, message in problems:
        with pytest.raises(SpecError, match=message):
            _spec(report)


def _add_genotype(trials: pd.DataFrame, selection: pd.DataFrame, gid: str, setting: str, accs: list[float]):
    """One more selected genotype, found only by ``setting``, retrained with len(accs) seeds."""
    retrains = [_retrain_row(gid, setting, seed, acc) for seed, acc in enumerate(accs)]
    source = "s0" if setting == "k=1" else "s5"  # a search of that setting
    chosen = {
        "genotype_id": gid,
        "setting": setting,
        "source": source,
        "found_by": source,
        "found_by_settings": setting,
        "metric": "valid_acc",
        "value": 0.5,
        "genotype": OTHER,
    }
    return pd.concat([trials, pd.DataFrame(retrains)], ignore_index=True), pd.concat(
        [selection, pd.DataFrame([chosen])], ignore_index=True
    )


def test_shared_genotype_left_out_of_a_comparison_between_settings():
    trials, selection = _study()
    trials, selection = _add_genotype(trials, selection, "g04", "k=1", [0.86, 0.88])
    trials, selection = _add_genotype(trials, selection, "g05", "k=4", [0.76, 0.78])
    # the per-setting statistics count g02 for both settings (each found it)
    summary = summarize(trials, selection, ["k=1", "k=4"]).set_index("setting")
    assert summary.loc["k=1", "retrain_test_acc_n"] == 3 and summary.loc["k=4", "retrain_test_acc_n"] == 3
    table = compare_settings(trials, selection, ["k=1", "k=4"], "k=1", "DARTS")
    row = table[(table["versus"] == "k=1") & (table["metric"] == "retrain_test_acc")].iloc[0]
    # k=4: g03 0.72, g05 0.77; k=1: g01 0.82, g04 0.87; the shared g02 (0.91) is in neither group
    expected = compare([0.72, 0.77], [0.82, 0.87])
    assert (row["n"], row["n_versus"], row["n_shared"], row["method"]) == (2, 2, 1, "welch")
    assert row["difference"] == pytest.approx(-0.10) and row["p_value"] == pytest.approx(expected.p_value)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(expected.ci_low), pytest.approx(expected.ci_high))
    assert "n = 2 (1 genotype found by both settings left out of both groups" in row["sentence"]

    # a setting whose only retrained genotype the reference also found: no comparison, and why
    trials, selection = _study()
    selection = selection[selection["genotype_id"] != "g03"]
    trials = trials[trials["genotype_id"] != "g03"]
    row = compare_settings(trials, selection, ["k=1", "k=4"], "k=1", "DARTS").iloc[1]
    assert (row["metric"], row["n"], row["n_shared"]) == ("retrain_test_acc", 0, 1) and math.isnan(row["difference"])
    assert "no comparison (a group has no values; 1 genotype found by both settings left out" in row["sentence"]


def test_pooled_seed_std_weights_by_degrees_of_freedom():
    trials, selection = _study()
    # g01 gets a third seed: 0.80, 0.84, 0.88 (variance 0.0016, 2 degrees of freedom); g02 keeps 0.90, 0.92 (0.0002, 1)
    third = trials[trials["trial"] == "r-g01-1"].assign(trial="r-g01-2", seed=2, test_acc=0.88)
    trials = pd.concat([trials, third], ignore_index=True)
    k1 = summarize(trials, selection, ["k=1", "k=4"]).set_index("setting").loc["k=1"]
    assert k1.retrain_seed_std == pytest.approx(math.sqrt((2 * 0.0016 + 1 * 0.0002) / 3))
    assert k1.retrain_seed_std != pytest.approx(math.sqrt((0.0016 + 0.0002) / 2))  # not the plain mean of the variances


def test_published_anchor_has_its_row_and_every_setting_is_compared_with_it():
    trials, selection = _study()
    anchor = "published:PC_DARTS_cifar"
    published = [
        {**_retrain_row("PC_DARTS_cifar", anchor, seed, acc), "genotype": PC} for seed, acc in ((0, 0.95), (1, 0.97))
    ]
    trials = pd.concat([trials, pd.DataFrame(published)], ignore_index=True)
    genotypes = genotype_results(trials, selection).set_index("genotype_id")
    # selected genotypes, then the published anchor, then the random cells
    assert list(genotypes.index) == ["g02", "g01", "g03", "PC_DARTS_cifar", "random01", "random02"]
    assert (
        genotypes.loc["PC_DARTS_cifar", "setting"] == anchor
        and genotypes.loc["PC_DARTS_cifar", "source"] == "published"
    )
    assert genotypes.loc["PC_DARTS_cifar", "retrain_test_acc_mean"] == pytest.approx(0.96)
    summary = summarize(trials, selection, ["k=1", "k=4"]).set_index("setting")
    assert list(summary.index) == ["k=1", "k=4", anchor, "random"]
    assert summary.loc[anchor, "retrain_test_acc_mean"] == pytest.approx(0.96) and summary.loc[anchor, "searches"] == 0
    comparisons = compare_settings(trials, selection, ["k=1", "k=4"], "k=1")
    versus_anchor = comparisons[comparisons["versus"] == anchor].set_index("setting")
    assert list(versus_anchor.index) == ["k=1", "k=4"] and (versus_anchor["metric"] == "retrain_test_acc").all()
    # k=4 found g02 (0.91) and g03 (0.72): 0.815 against the anchor's 0.96
    assert versus_anchor.loc["k=4", "difference"] == pytest.approx(0.815 - 0.96)
    # the anchors are not searched genotypes: the agreement is over g01..g03 alone
    assert search_retrain_agreement(genotype_results(trials, selection)).n == 3
