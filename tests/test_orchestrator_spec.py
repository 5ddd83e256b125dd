"""The study spec, its grid, the selection rule and the report tables: no Ray, no MLflow."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orchestrator.errors import SpecError
from orchestrator.plan import StudyPlan
from orchestrator.report.summary import summarize
from orchestrator.report.tables import summary_markdown
from orchestrator.selection import baseline_genotypes, canonical_genotype, select_genotypes
from orchestrator.spec import BaselineSpec, SelectSpec, parse_spec
from orchestrator.spec_file import apply_overrides, load_spec
from pcdarts_core import KNOWN_GENOTYPES, Genotype, random_genotype

REPO = Path(__file__).resolve().parents[1]

#: A search small enough to run in seconds on a CPU.
TINY_SEARCH = {"init_channels": 4, "layers": 3, "epochs": 2, "warmup_epochs": 1}
BASE = {
    "name": "tiny",
    "dataset": {"name": "fashion_mnist_mini", "train_subset": 128},
    "search": {"seed": [0, 1], "k": [2, 4], "edge_norm": [True, False], **TINY_SEARCH},
    "select": {"top": 2},
    "retrain": {"seeds": [0, 1], "init_channels": 4, "layers": 3, "epochs": 1},
    "baseline": {"count": 1},
}


def spec_with(**changes):
    raw = yaml.safe_load(yaml.safe_dump(BASE, sort_keys=False))
    for path, value in changes.items():
        node = raw
        keys = path.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(keys[-1])
        else:
            node[keys[-1]] = value
    return raw


DELETE = object()


def search_trials(raw: dict):
    return StudyPlan.from_spec(parse_spec(raw)).search_trials()


def test_grid_crosses_every_list_with_seeds_innermost():
    trials = search_trials(spec_with())
    assert len(trials) == 8
    assert [t.key for t in trials[:2]] == ["search-001", "search-002"]
    assert [(t.setting, t.seed) for t in trials[:3]] == [
        ("k=2 edge_norm=on", 0),
        ("k=2 edge_norm=on", 1),
        ("k=2 edge_norm=off", 0),
    ]
    assert {t.config["k"] for t in trials} == {2, 4}
    assert all(t.config["train_subset"] == 128 and t.config["dataset"] == "fashion_mnist_mini" for t in trials)
    # a fixed value is not an axis; any other setting given as a list is one
    trials = search_trials(spec_with(search__lr=[0.05, 0.1]))
    assert len(trials) == 16 and trials[0].setting == "k=2 edge_norm=on lr=0.05"


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"colour": "red"}, "colour", "unknown key"),
        ({"search__kk": [1]}, "search.kk", "unknown setting"),
        ({"search__k": [2, "four"]}, "search.k", "valid integer"),
        ({"search__k": [3]}, "search.k", "divide"),
        ({"search__k": []}, "search.k", "empty list"),
        ({"search__seed": DELETE}, "search.seed", "missing"),
        ({"search__epochs": -1}, "search.epochs", "greater than or equal to 1"),
        ({"search__dataset": "cifar10"}, "search.dataset", "dataset.name"),
        ({"dataset__name": "mnist"}, "dataset.name", "cifar10"),
        ({"retrain__seeds": []}, "retrain.seeds", "non-empty"),
        ({"retrain__layers": [3, 4]}, "retrain.layers", "single values"),
        ({"retrain__lr_schedule": "step"}, "retrain.lr_schedule", "cosine"),
        ({"select__metric": "test_acc"}, "select.metric", "valid_acc"),
        ({"resources__gpus_per_trial": 1.5}, "resources.gpus_per_trial", "fraction"),
        ({"resources__gpus_per_trial": math.inf}, "resources.gpus_per_trial", "not a finite number; use a number >= 0"),
        ({"resources__gpus_per_trial": math.nan}, "resources.gpus_per_trial", "or auto"),
        ({"name": "my study/1"}, "name", "letters"),
        ({"dataset": DELETE}, "dataset", "missing"),
        ({"search__k": [2, 2.0]}, "search.k", "same setting"),
        ({"search__steps": [3, 4]}, "search.steps", "one value per study"),
        ({"retrain__protocol": ["imagenet"]}, "retrain.protocol", "cifar or imagenet"),
        ({"retrain__dataset": {"name": "mnist"}}, "retrain.dataset.name", "cifar100"),
        ({"retrain__dataset": {"name": "cifar100", "colour": 1}}, "retrain.dataset.colour", "unknown key"),
        ({"retrain__dataset": 3}, "retrain.dataset", "e.g. {name: cifar100}"),
        ({"retrain__image_size": 16}, "retrain.image_size", "retrain.dataset.image_size"),
        ({"baseline__known": ["PC_DARTS"]}, "baseline.known", "use some of DARTS_V1, DARTS_V2, PC_DARTS_cifar"),
        ({"baseline__known": ["DARTS_V2", "DARTS_V2"]}, "baseline.known", "given twice"),
        ({"search__train_subset": [64, 128]}, "", ""),  # a valid axis, also given under dataset: the search's wins
    ],
)
def test_bad_specs_name_the_key_and_the_fix(changes, path, words):
    if not path:
        assert {t.config["train_subset"] for t in search_trials(spec_with(**changes))} == {64, 128}
        return
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_with(**changes), source="study.yaml")
    message = str(caught.value)
    assert message.startswith(f"study.yaml: {path}:"), message
    assert words in message and "\n" not in message


def test_overrides_set_nested_values_read_as_yaml():
    raw = apply_overrides(
        BASE, ["search.epochs=5", "search.k=[1, 4]", "select.per=setting", "tracking.uri=sqlite:///x.db"]
    )
    assert raw["search"]["epochs"] == 5 and raw["search"]["k"] == [1, 4]
    assert raw["select"]["per"] == "setting" and raw["tracking"] == {"uri": "sqlite:///x.db"}
    assert BASE["search"]["epochs"] == 2  # the original is untouched
    with pytest.raises(SpecError, match=r"^--set: .*KEY.PATH=VALUE"):
        apply_overrides(BASE, ["search.epochs"])
    with pytest.raises(SpecError, match=r"^--set: name.x: name is a value"):
        apply_overrides(BASE, ["name.x=1"])


def test_selection_ranks_by_metric_and_retrains_identical_genotypes_once():
    a, b, c = (KNOWN_GENOTYPES[n] for n in ("PC_DARTS_cifar", "DARTS_V2", "DARTS_V1"))
    # a with each node's two edges swapped: the same cell
    swapped = Genotype(
        normal=[e for pair in a.nodes("normal") for e in reversed(pair)],
        normal_concat=a.normal_concat,
        reduce=a.reduce,
        reduce_concat=a.reduce_concat,
    )
    assert swapped != a and canonical_genotype(swapped) == canonical_genotype(a)
    searches = pd.DataFrame(
        [
            {
                "trial": "search-001",
                "setting": "k=1",
                "status": "finished",
                "valid_acc": 0.90,
                "valid_loss": 0.3,
                "genotype": a.to_text(),
            },
            {
                "trial": "search-002",
                "setting": "k=1",
                "status": "finished",
                "valid_acc": 0.80,
                "valid_loss": 0.2,
                "genotype": b.to_text(),
            },
            {
                "trial": "search-003",
                "setting": "k=4",
                "status": "finished",
                "valid_acc": 0.95,
                "valid_loss": 0.4,
                "genotype": swapped.to_text(),
            },
            {
                "trial": "search-004",
                "setting": "k=4",
                "status": "finished",
                "valid_acc": 0.70,
                "valid_loss": 0.5,
                "genotype": c.to_text(),
            },
            {
                "trial": "search-005",
                "setting": "k=4",
                "status": "diverged",
                "valid_acc": None,
                "valid_loss": None,
                "genotype": None,
            },
        ]
    )
    top2 = select_genotypes(searches, SelectSpec(top=2))
    # search-003 and search-001 found the same cell: it is retrained once, and the next best is search-002's
    assert list(top2["source"]) == ["search-003", "search-002"]
    assert list(top2["genotype_id"]) == ["g01", "g02"]
    assert top2.iloc[0]["found_by"] == "search-001;search-003"
    assert top2.iloc[0]["found_by_settings"] == "k=1;k=4"
    assert top2.iloc[1]["found_by"] == "search-002" and top2.iloc[1]["value"] == pytest.approx(0.80)
    by_loss = select_genotypes(searches, SelectSpec(top=1, metric="valid_loss"))
    assert list(by_loss["source"]) == ["search-002"]
    # per setting: both settings' best is the same cell, so one genotype (first chosen for k=1)
    per_setting = select_genotypes(searches, SelectSpec(top=1, per="setting"))
    assert list(per_setting["source"]) == ["search-001"]
    per_setting2 = select_genotypes(searches, SelectSpec(top=2, per="setting"))
    assert list(per_setting2["source"]) == ["search-001", "search-002", "search-004"]
    # nothing finished: an empty selection with the columns
    assert select_genotypes(searches.assign(status="diverged"), SelectSpec()).empty


def test_baselines_are_distinct_and_seeded():
    first = baseline_genotypes(BaselineSpec(count=3, seed=7), steps=4, avoid=set())
    again = baseline_genotypes(BaselineSpec(count=3, seed=7), steps=4, avoid=set())
    assert [g for _, g in first] == [g for _, g in again]
    assert [i for i, _ in first] == ["random01", "random02", "random03"]
    assert len({canonical_genotype(g) for _, g in first}) == 3


def test_retrain_trials_cross_genotypes_and_baselines_with_seeds():
    plan = StudyPlan.from_spec(parse_spec(spec_with()))
    a = KNOWN_GENOTYPES["PC_DARTS_cifar"]
    selection = pd.DataFrame(
        [{"genotype_id": "g01", "setting": "k=4 edge_norm=on", "source": "search-005", "genotype": a.to_text()}]
    )
    trials = plan.retrain_trials(selection)
    assert [t.key for t in trials] == [
        "retrain-g01-seed0",
        "retrain-g01-seed1",
        "retrain-random01-seed0",
        "retrain-random01-seed1",
    ]
    assert all(t.config["epochs"] == 1 and t.config["init_channels"] == 4 for t in trials)
    assert [t.config["seed"] for t in trials] == [0, 1, 0, 1]


def test_the_retraining_may_use_other_data_than_the_search():
    transfer = {"name": "cifar100", "image_size": 16, "train_subset": 500, "download": False}
    plan = StudyPlan.from_spec(parse_spec(spec_with(retrain__dataset=transfer)))
    config = plan.retrain_config(seed=1)
    assert (config.dataset, config.image_size, config.train_subset, config.download) == ("cifar100", 16, 500, False)
    assert plan.grid[0].config.dataset == "fashion_mnist_mini" and plan.grid[0].config.train_subset == 128
    # the search costs its genotype for the retraining's data; the name alone is enough too
    assert plan.search_trials()[0].retrain_config["dataset"] == "cifar100"
    assert StudyPlan.from_spec(parse_spec(spec_with(retrain__dataset="cifar10"))).retrain_config(0).dataset == "cifar10"


def test_published_anchors_are_retrained_with_the_same_protocol_and_seeds():
    plan = StudyPlan.from_spec(parse_spec(spec_with(baseline__known=["DARTS_V2", "PC_DARTS_cifar"])))
    found = random_genotype(11)
    selection = pd.DataFrame(
        [{"genotype_id": "g01", "setting": "k=4 edge_norm=on", "source": "search-005", "genotype": found.to_text()}]
    )
    trials = plan.retrain_trials(selection)
    assert [t.key for t in trials] == [
        *("retrain-g01-seed0", "retrain-g01-seed1"),
        *("retrain-DARTS_V2-seed0", "retrain-DARTS_V2-seed1"),
        *("retrain-PC_DARTS_cifar-seed0", "retrain-PC_DARTS_cifar-seed1"),
        *("retrain-random01-seed0", "retrain-random01-seed1"),
    ]
    anchor = trials[4]
    assert (anchor.setting, anchor.source, anchor.genotype_id) == (
        "published:PC_DARTS_cifar",
        "published",
        "PC_DARTS_cifar",
    )
    assert Genotype.from_dict(anchor.genotype) == KNOWN_GENOTYPES["PC_DARTS_cifar"]
    assert anchor.config == trials[0].config  # the same protocol as the found genotype, seed by seed
    assert "+ 2 published (DARTS_V2, PC_DARTS_cifar) + 1 random baselines" in plan.describe(Path("study"))


def _trials_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for i, (setting, acc) in enumerate([("k=1", 0.5), ("k=1", 0.7), ("k=4", 0.6), ("k=4", None)]):
        rows.append(
            {
                "stage": "search",
                "trial": f"s{i}",
                "setting": setting,
                "status": "finished" if acc else "diverged",
                "valid_acc": acc,
                "test_acc": None,
                "parameters": 1000 if acc else None,
                "genotype_id": None,
                "time_s": 3600.0,
                "cpus": 1,
                "gpus": 0.5,
                "seed": i,
                "epochs": 2,
                "error": None if acc else "search diverged in epoch 2",
            }
        )
    for gid, setting, accs in [("g01", "k=1", [0.8, 0.9]), ("random01", "random", [0.6, 0.4])]:
        for seed, acc in enumerate(accs):
            rows.append(
                {
                    "stage": "retrain",
                    "trial": f"r-{gid}-{seed}",
                    "setting": setting,
                    "status": "finished",
                    "valid_acc": None,
                    "test_acc": acc,
                    "parameters": 2000,
                    "genotype_id": gid,
                    "time_s": 1800.0,
                    "cpus": 1,
                    "gpus": 0.5,
                    "seed": seed,
                    "epochs": 2,
                    "error": None,
                }
            )
    trials = pd.DataFrame(rows)
    selection = pd.DataFrame(
        [
            {
                "genotype_id": "g01",
                "setting": "k=1",
                "source": "s1",
                "found_by": "s1",
                "found_by_settings": "k=1",
                "metric": "valid_acc",
                "value": 0.7,
                "genotype": KNOWN_GENOTYPES["DARTS_V2"].to_text(),
            }
        ]
    )
    return trials, selection


def test_summary_per_setting_with_random_row():
    trials, selection = _trials_table()
    summary = summarize(trials, selection, ["k=1", "k=4"]).set_index("setting")
    assert list(summary.index) == ["k=1", "k=4", "random"]
    k1, k4, rnd = summary.loc["k=1"], summary.loc["k=4"], summary.loc["random"]
    assert (k1.searches, k1.searches_failed, k1.retrains, k1.genotypes_retrained) == (2, 0, 2, 1)
    assert k1.search_valid_acc_mean == pytest.approx(0.6) and k1.search_valid_acc_std == pytest.approx(math.sqrt(0.02))
    assert k1.retrain_test_acc_mean == pytest.approx(0.85)
    assert k1.gpu_hours == pytest.approx(0.5 * 2 + 0.25 * 2) and k1.cpu_hours == pytest.approx(2 + 1)
    assert (k4.searches, k4.searches_failed, k4.retrains) == (2, 1, 0) and math.isnan(k4.search_valid_acc_std)
    assert rnd.retrain_test_acc_mean == pytest.approx(0.5) and rnd.searches == 0
    text = summary_markdown("tiny", summarize(trials, selection, ["k=1", "k=4"]), selection, trials)
    # percent; retrain: one genotype (n=1), its two seeds' spread in its own column
    assert "60.00 ± 14.14" in text and "(n=2)" in text and "| 85.00 (n=1)" in text and "| 7.07" in text
    assert "Trials that did not finish" in text and "diverged" in text


def test_dry_run_prints_every_trial_and_writes_nothing(tmp_path):
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(yaml.safe_dump(BASE, sort_keys=False))
    out = tmp_path / "study"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.run",
            str(spec_file),
            "--dry-run",
            "--out",
            str(out),
            "--set",
            "search.seed=[0, 1, 2]",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "stage search: 12 trials (4 settings x 3 seeds)" in proc.stdout
    assert proc.stdout.count("search-0") == 12
    assert "up to 2 selected genotypes + 1 random baselines, each with seeds [0, 1]: up to 6 trials" in proc.stdout
    assert not out.exists()


def test_dry_run_into_a_reader_that_stops_early_ends_quietly(tmp_path):
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(yaml.safe_dump(spec_with(search__seed=list(range(200))), sort_keys=False))
    command = [sys.executable, "-m", "orchestrator.run", str(spec_file), "--dry-run", "--out", str(tmp_path / "s")]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()  # as `| head` does once it has its lines
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 141 and b"Traceback" not in stderr, stderr.decode()[-2000:]


def test_dry_run_needs_neither_ray_nor_mlflow(tmp_path):
    """The plan is printed with Ray and MLflow unavailable to Python (and nothing imports pandas or torch)."""
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(yaml.safe_dump(BASE, sort_keys=False))
    code = (
        "import sys; sys.modules['ray'] = None; sys.modules['mlflow'] = None\n"
        "from orchestrator.run import main\n"
        f"code = main([{str(spec_file)!r}, '--dry-run', '--out', {str(tmp_path / 'study')!r}])\n"
        "print('heavy:', sorted(name for name in ('pandas', 'torch') if name in sys.modules))\n"
        "sys.exit(code)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "stage search: 8 trials (4 settings x 2 seeds)" in proc.stdout and proc.stdout.count("search-0") == 8
    assert "stage report:" in proc.stdout and "heavy: []" in proc.stdout
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--set", "search.k=[3]"], "search.k"),
        (["--set", "nonsense"], "--set"),
        (["--set", "search.epochs=0"], "search.epochs"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, args, words):
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(yaml.safe_dump(BASE, sort_keys=False))
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.run", str(spec_file), "--out", str(tmp_path / "study"), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and words in proc.stderr
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("name", ["quickstart", "ablation", "seeds", "imagenet"])
def test_shipped_specs_are_valid(name):
    spec, _ = load_spec(REPO / "experiments" / f"{name}.yaml")
    plan = StudyPlan.from_spec(spec)
    assert plan.search_trials() and plan.describe(Path("studies") / spec.name)


def test_resume_names_the_first_changed_key_and_data_is_checked_first(tmp_path):
    from orchestrator.preflight import check_data
    from orchestrator.study import first_difference

    spec = parse_spec(spec_with())
    assert first_difference(spec.model_dump(), spec.model_dump()) is None
    changed = parse_spec(spec_with(search__epochs=3))
    assert first_difference(spec.model_dump(), changed.model_dump()) == "search.epochs"
    check_data(spec)  # the shipped subset loads
    with pytest.raises(SpecError, match=r"^spec: dataset: .*data-root|^spec: dataset: .*root"):
        check_data(parse_spec(spec_with(dataset={"name": "imagefolder", "root": str(tmp_path / "none")})))


def test_a_grid_of_thousands_is_built_fast_and_its_keys_sort_in_grid_order():
    import time

    started = time.perf_counter()
    plan = StudyPlan.from_spec(parse_spec(spec_with(search__seed=list(range(1250)))))  # x 4 settings
    assert time.perf_counter() - started < 1  # linear: ~0.1 s here
    keys = [point.key for point in plan.grid]
    assert len(keys) == 5000 and keys[0] == "search-0001" and keys[-1] == "search-5000"
    assert sorted(keys) == keys  # padded to the grid's width, so search-1000 sorts after search-0999
    assert StudyPlan.from_spec(parse_spec(spec_with())).grid[0].key == "search-001"  # small grids keep 3 digits


def test_progress_estimates_the_time_left_from_this_sessions_pace():
    from types import SimpleNamespace

    from orchestrator.stages.progress import StageProgress

    progress = StageProgress("search", "valid_acc", "max")
    trials = [SimpleNamespace(status="TERMINATED")] + [SimpleNamespace(status="PENDING") for _ in range(5)]
    assert progress.time_left(trials, 0.0) is None  # the one ended before this session is left out
    trials[1].status = trials[2].status = "TERMINATED"
    assert progress.time_left(trials, 60.0) == pytest.approx(30.0 * 3)  # 2 ended in 60 s, 3 to go
    for trial in trials:
        trial.status = "TERMINATED"
    assert progress.time_left(trials, 90.0) is None


def test_search_protocol_sets_the_published_search_and_is_one_value():
    from pcdarts_core.config import SEARCH_PROTOCOLS

    spec = parse_spec(
        spec_with(
            dataset={"name": "imagefolder", "root": "/data/subset", "image_size": 224},
            search={"seed": [0], "protocol": "imagenet", "epochs": 40},
        )
    )
    config = StudyPlan.from_spec(spec).grid[0].config
    expected = {**SEARCH_PROTOCOLS["imagenet"], "epochs": 40, "data_root": "/data/subset"}
    assert {name: getattr(config, name) for name in expected} == expected  # the spec's own values win
    for protocol, words in (("mnist", "'mnist': use one of cifar, imagenet"), (["cifar", "imagenet"], "one value")):
        with pytest.raises(SpecError, match=f"search.protocol: .*{words}"):
            parse_spec(spec_with(search={"seed": [0], "protocol": protocol}))
