"""Settings validation and the ``python -m pcdarts_core.search`` command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import TINY

from pcdarts_core import ConfigError, SearchConfig, UserInputError
from pcdarts_core.cli.search import main


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"k": 3}, "k=3: K must divide C=16; use one of 1, 2, 4, 8, 16"),
        ({"init_channels": 12, "k": 8}, "k=8: K must divide C=12"),
        ({"layers": 2}, "layers=2: the supernet needs at least 3 cells (two reduction cells and a normal one)"),
        ({"dataset": "mnist"}, "dataset='mnist': unknown dataset; use one of cifar10, cifar100"),
        ({"epochs": -1}, "epochs=-1: Input should be greater than or equal to 1"),
        ({"epochs": 10, "warmup_epochs": 10}, "warmup_epochs=10: the architecture would never be trained"),
        ({"lr": "fast"}, "lr='fast': Input should be a valid number"),
        ({"order": "third"}, "order='third': Input should be 'first' or 'second'"),
        ({"train_portion": 1.5}, "train_portion=1.5: Input should be less than 1"),
        ({"batchsize": 32}, "batchsize=32: unknown setting; known settings: dataset,"),
        ({"device": "gpu"}, "device='gpu': use 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ],
)
def test_bad_settings_name_the_field_and_the_fix(changes, message):
    with pytest.raises(ConfigError) as err:
        SearchConfig(**changes)
    assert message in str(err.value)


def test_defaults_are_the_pc_darts_cifar10_protocol():
    cfg = SearchConfig()
    assert (cfg.dataset, cfg.init_channels, cfg.layers, cfg.k, cfg.edge_norm) == ("cifar10", 16, 8, 4, True)
    assert (cfg.epochs, cfg.warmup_epochs, cfg.batch_size, cfg.train_portion) == (50, 15, 256, 0.5)
    assert (cfg.lr, cfg.lr_min, cfg.momentum, cfg.weight_decay, cfg.grad_clip) == (0.1, 0.0, 0.9, 3e-4, 5.0)
    assert (cfg.arch_lr, cfg.arch_beta1, cfg.arch_beta2, cfg.arch_weight_decay) == (6e-4, 0.5, 0.999, 1e-3)
    assert cfg.order == "first"


def _cli(*args: str) -> list[str]:
    flags = []
    for key, value in TINY.items():
        flags += [f"--{key.replace('_', '-')}", str(value)]
    return [*flags, *args]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--k", "3"], "k=3: K must divide C=4"),
        (["--dataset", "imagefolder", "--data-root", "/nonexistent/folder"], "/nonexistent/folder"),
        (["--dataset", "cifar10", "--data-root", "/nonexistent/cifar", "--no-download"], "cifar10"),
        (["--warmup-epochs", "5"], "warmup_epochs=5"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(args, message, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "pcdarts_core.search", *_cli("--out", str(out), *args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "many"], "--epochs: 'many' is not an integer"),
        (["--order", "third"], "argument --order: invalid choice: 'third'"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        ([], "the following arguments are required: --out"),
    ],
)
def test_cli_argparse_errors_exit_2(args, message, tmp_path, capsys):
    out = [] if not args else ["--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exit_info:
        main([*out, *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_runs_writes_outputs_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_cli("--out", str(out), "--epochs", "2", "--quiet")) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("Genotype(normal=[")
    assert {p.name for p in out.iterdir()} == {
        "checkpoint.pt",
        "config.json",
        "metrics.csv",
        "history.json",
        "genotype.json",
        "genotype.txt",
    }
    assert (out / "genotype.txt").read_text().strip() == printed
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,lr,arch_frozen,train_loss,train_acc,valid_loss,valid_acc") and len(rows) == 3
    assert json.loads((out / "config.json").read_text())["k"] == 4

    # Starting again in the same folder is refused; --resume with more epochs continues.
    with pytest.raises(UserInputError, match="already holds a search; pass --resume"):
        main(_cli("--out", str(out), "--epochs", "2"))
    with pytest.raises(UserInputError, match="k cannot change when resuming"):
        main(["--out", str(out), "--resume", "--k", "2"])
    # The original command again, with --resume and a longer schedule.
    assert main(_cli("--out", str(out), "--resume", "--epochs", "3", "--quiet")) == 0
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
    assert len(json.loads((out / "history.json").read_text())) == 3


def test_show_genotype_accepts_names_files_and_text_and_rejects_bad_ones(tmp_path, capsys):
    from pcdarts_core import KNOWN_GENOTYPES
    from pcdarts_core.cli import run_main
    from pcdarts_core.cli.show_genotype import main as show

    def exit_code(*args: str) -> int:
        with pytest.raises(SystemExit) as exit_info:
            run_main(show, list(args))
        return exit_info.value.code

    text = KNOWN_GENOTYPES["PC_DARTS_cifar"].to_text()
    (tmp_path / "g.json").write_text(KNOWN_GENOTYPES["PC_DARTS_cifar"].to_json())
    (tmp_path / "Genotype_best.txt").write_text(text)
    for source in ("PC_DARTS_cifar", text, str(tmp_path / "g.json"), str(tmp_path / "Genotype_best.txt")):
        assert exit_code(source) == 0
        assert capsys.readouterr().out.strip() == text
    assert exit_code("PC_DARTS_cifar", "--format", "summary") == 0
    assert "  node 5 <- avg_pool_3x3(0), dil_conv_3x3(1)" in capsys.readouterr().out.splitlines()
    bad_op = (
        "Genotype(normal=[('conv_9x9', 0), ('sep_conv_3x3', 1)], normal_concat=[2], "
        "reduce=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], reduce_concat=[2])"
    )
    for source, message in ((bad_op, "unknown operation 'conv_9x9'"), ("PC_DARTS_cifarr", "neither a known name")):
        assert exit_code(source) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    # The exit code of the real process.
    proc = subprocess.run(
        [sys.executable, "-m", "pcdarts_core.show_genotype", "PC_DARTS_cifarr"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "neither a known name" in proc.stderr
