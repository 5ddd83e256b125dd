"""The architecture-step budget: the one-line warning when α cannot move, and the quickstart's
arch_lr moving α within a few steps."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import yaml

from pcdarts_core import Search, SearchConfig
from pcdarts_core.arch_budget import PAPER_ARCH_STEPS, ArchitectureBudgetWarning, architecture_steps, budget_warning

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"


def quickstart_search() -> dict:
    spec = yaml.safe_load(QUICKSTART.read_text())["search"]
    return {key: value for key, value in spec.items() if not isinstance(value, list)}


def test_the_papers_search_makes_3430_architecture_steps_and_is_not_warned() -> None:
    paper = SearchConfig()  # the paper's CIFAR-10 protocol
    assert PAPER_ARCH_STEPS == 3430
    assert architecture_steps(paper, 50_000) == 3430
    assert budget_warning(paper, 50_000) is None


def test_a_short_search_at_the_papers_arch_lr_is_warned_in_one_line() -> None:
    short = SearchConfig(dataset="fashion_mnist_mini", train_subset=800, batch_size=32, epochs=4, warmup_epochs=1)
    assert architecture_steps(short, 2000) == 3 * 13
    message = budget_warning(short, 2000)
    assert message is not None and "\n" not in message
    assert "39 architecture steps x arch_lr 0.0006 = 0.023" in message and "raise arch_lr" in message


def test_the_quickstart_search_is_not_warned() -> None:
    config = SearchConfig(dataset="fashion_mnist_mini", **quickstart_search())
    assert budget_warning(config, 2000) is None


def test_search_warns_and_the_cli_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pcdarts_core.cli import run_main
    from pcdarts_core.cli.search import main

    argv = ["--dataset", "fashion_mnist_mini", "--train-subset", "128", "--epochs", "2", "--warmup-epochs", "1"]
    argv += ["--init-channels", "4", "--layers", "3", "--batch-size", "32", "--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as done:
        run_main(main, argv)
    assert done.value.code == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "architecture steps" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: 2 architecture steps x arch_lr 0.0006")


def normalised_entropy(rows: list[list[float]]) -> float:
    return sum(-sum(p * math.log(p) for p in row if p > 0) / math.log(len(row)) for row in rows) / len(rows)


@pytest.mark.slow  # ~12 s: a three-epoch search
def test_eight_architecture_steps_at_the_quickstarts_arch_lr_move_alpha() -> None:
    """The quickstart's rule on a smaller search: 4 steps per epoch, 2 unfrozen epochs."""
    settings = quickstart_search() | {"train_subset": 256, "epochs": 3, "warmup_epochs": 1, "k": 4, "edge_norm": True}
    config = SearchConfig(dataset="fashion_mnist_mini", image_size=14, seed=0, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ArchitectureBudgetWarning)
        search = Search(config)
    assert architecture_steps(config, 2000) == 8
    records = list(search.epochs())
    assert normalised_entropy(records[0].alphas_normal) == pytest.approx(1.0, abs=1e-4)  # frozen epoch
    assert normalised_entropy(records[-1].alphas_normal) < 0.95


def test_a_study_is_warned_once_per_setting_before_it_starts(tmp_path: Path) -> None:
    from orchestrator.preflight import architecture_budget_warnings
    from orchestrator.spec_file import load_spec

    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["search"]["arch_lr"] = 0.0006
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec, _ = load_spec(path)
    lines = architecture_budget_warnings(spec, 2000)
    assert len(lines) == 1 and lines[0].startswith("every search: 39 architecture steps")  # 8 searches, one line
    spec, _ = load_spec(path, ["search.arch_lr=[0.0006, 0.2]"])
    (line,) = architecture_budget_warnings(spec, 2000)
    assert line.startswith("searches ") and "arch_lr=0.0006" in line and "arch_lr=0.2" not in line
    assert "edge_norm=on" in line and "edge_norm=True" not in line  # the settings as every study output names them
    spec, _ = load_spec(QUICKSTART)
    assert architecture_budget_warnings(spec, 2000) == []


@pytest.mark.parametrize(("subset", "portion"), [(None, 0.5), (800, 0.5), (257, 0.5), (999, 0.3), (5000, 0.5)])
def test_the_counted_weight_half_is_the_split_the_search_makes(subset: int | None, portion: float) -> None:
    from pcdarts_core.arch_budget import weight_images
    from pcdarts_core.runner import split_training_set

    config = SearchConfig(train_subset=subset, train_portion=portion)
    train_idx, _ = split_training_set(2000, portion, 0, subset)
    assert weight_images(config, 2000) == len(train_idx)
