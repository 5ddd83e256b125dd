"""Faults outside the trials, each met with one clear line and nothing half-written: a tracking
server that is down (at the start, and at the end of a stage), a full disk (a real tmpfs filled to
the last byte) for the core's checkpoints, the core's CLI and a study, and the security rules (safe
YAML, genotype text parsed not evaluated, weights-only checkpoints, safe names, local servers)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
import types
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from mlflow_server import free_port

from orchestrator.errors import SpecError, StudyInterrupted
from orchestrator.run import main as study_main
from orchestrator.spec import parse_spec
from pcdarts_core import GenotypeError, Search, parse_genotype
from pcdarts_core.checkpoint import WriteError, load_checkpoint, save_checkpoint
from pcdarts_core.cli import run_main
from pcdarts_core.errors import UserInputError

REPO = Path(__file__).resolve().parents[1]
SPEC = {
    "name": "tiny",
    "dataset": {"name": "fashion_mnist_mini", "train_subset": 128},
    "search": {"seed": [0, 1], "k": 2, "init_channels": 4, "layers": 3, "epochs": 1, "warmup_epochs": 0},
    "retrain": {"seeds": [0], "init_channels": 4, "layers": 3, "epochs": 1},
}


def exit_code(main, argv: list[str]) -> int:
    """Run a CLI ``main`` as its ``python -m`` entry point does; its exit code."""
    with pytest.raises(SystemExit) as done:
        run_main(main, argv)
    return done.value.code


def one_line(err: str) -> str:
    """The one error line; ``warning:`` lines (a tiny search's architecture-budget warning) aside."""
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1, err
    return lines[0]


def write_spec(folder: Path, **sections) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **sections}, sort_keys=False))
    return path


# --- the tracking server ------------------------------------------------------------------


def test_mlflow_server_down_at_start_is_one_line_before_anything(tmp_path, capsys):
    port = free_port()  # nothing listens there
    spec = write_spec(tmp_path, tracking={"uri": f"http://127.0.0.1:{port}"})
    out = tmp_path / "study"
    assert exit_code(study_main, [str(spec), "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"tracking.uri='http://127.0.0.1:{port}'" in line and "no MLflow server answers" in line
    assert "start it" in line and "fix tracking.uri" in line
    assert not out.exists()  # no trial started, nothing written


def _result(key: str, epochs: int) -> types.SimpleNamespace:
    """What catch_up reads of a Ray Tune result: config, last metrics, error and the epoch history."""
    from orchestrator.trial import Trial

    history = pd.DataFrame([{"epoch": e, "train_loss": 1.0 / e, "epoch_time_s": 0.1} for e in range(1, epochs + 1)])
    trial = Trial(key=key, stage="search", setting="default", seed=0, config={"epochs": epochs}, cpus=1.0, gpus=0.0)
    return types.SimpleNamespace(
        config={"trial": trial.to_param()},
        metrics={"epoch": epochs, "trial_status": "finished"},
        error=None,
        metrics_dataframe=history,
    )


def test_catch_up_names_the_trials_it_could_not_log(monkeypatch):
    """A tracking server gone at the end of a stage: after its wait, the study stops (resumable) and names
    the trials whose runs MLflow does not hold. (With the server back, the cluster test shows the catch-up.)"""
    from orchestrator.tracking import StudyTracker, catch_up

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = f"http://127.0.0.1:{free_port()}"
    tracker = StudyTracker(uri, experiment_id="1")
    said = []
    with pytest.raises(StudyInterrupted) as stopped:
        catch_up(tracker, "parent", [_result("search-001", 2), _result("search-002", 3)], say=said.append, wait_s=0)
    message = str(stopped.value)
    assert f"MLflow at {uri} did not take the runs of 2 trials (search-001, search-002)" in message
    assert "logged when the study is resumed" in message and "\n" not in message


# --- a full disk ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A real 4 MiB tmpfs (root and mount(8) needed; skipped otherwise), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def fill(disk: Path) -> None:
    """Write to ``disk`` until it holds not one more byte."""
    with open(disk / "filler", "wb", buffering=0) as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0")
    with pytest.raises(OSError) as full:
        (disk / "probe").write_bytes(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    (disk / "probe").unlink()


def test_full_disk_keeps_the_previous_checkpoint(small_disk, tiny_config, mini_data):
    path = small_disk / "checkpoint.pt"
    search = Search(tiny_config, data=mini_data)
    search.save(path)
    before = path.read_bytes()
    fill(small_disk)
    with pytest.raises(WriteError) as refused:
        search.save(path)
    message = one_line(str(refused.value))
    assert str(path) in message and "No space left on device" in message and "previous file is unchanged" in message
    assert path.read_bytes() == before and sorted(p.name for p in small_disk.iterdir()) == ["checkpoint.pt", "filler"]
    resumed = Search.resume(path, data=mini_data)  # the previous checkpoint still loads
    assert resumed.epoch == 0 and resumed.config == search.config


def test_full_disk_core_cli_and_study_exit_2_with_one_line(small_disk, tmp_path, capsys):
    from pcdarts_core.cli.search import main as search_main

    fill(small_disk)
    out = small_disk / "search"
    code = exit_code(
        search_main,
        [
            "--out",
            str(out),
            "--dataset",
            "fashion_mnist_mini",
            "--train-subset",
            "64",
            "--init-channels",
            "4",
            "--layers",
            "3",
            "--epochs",
            "1",
            "--warmup-epochs",
            "0",
            "--quiet",
        ],
    )
    line = one_line(capsys.readouterr().err)
    assert code == 2 and str(out / "config.json") in line and "No space left on device" in line
    assert not list(out.glob("*")) and not list(out.glob(".*"))  # no file, no temporary file

    study = small_disk / "study"
    assert exit_code(study_main, [str(write_spec(tmp_path)), "--out", str(study)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"--out {study}: cannot write there (No space left on device)" in line and "choose another --out" in line
    assert not study.exists()


def test_out_under_a_regular_file_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = blocker / "studies" / "tiny"
    assert exit_code(study_main, [str(write_spec(tmp_path)), "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"--out {out}: {blocker} is a file, not a folder; choose another --out" in line
    assert blocker.read_text() == "not a folder"


# --- security -------------------------------------------------------------------------------


def test_yaml_is_loaded_safely(tmp_path, capsys):
    marker = tmp_path / "executed"
    spec = tmp_path / "evil.yaml"
    spec.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    assert exit_code(study_main, [str(spec), "--dry-run"]) == 2
    assert "not valid YAML" in one_line(capsys.readouterr().err)
    assert not marker.exists()


def test_genotype_text_is_parsed_never_evaluated(tmp_path):
    marker = tmp_path / "executed"
    for text in (
        f"__import__('os').system('touch {marker}')",
        f"Genotype(normal=[(__import__('os').system('touch {marker}'), 0)], normal_concat=[2], "
        "reduce=[], reduce_concat=[2])",
    ):
        with pytest.raises(GenotypeError):
            parse_genotype(text)
    assert not marker.exists()


class Payload:
    def __reduce__(self):
        return (os.system, ("true",))


def test_checkpoints_load_weights_only(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "payload": Payload()}, path)  # a pickle that would run code when loaded fully
    with pytest.raises(UserInputError, match="cannot be loaded safely"):
        load_checkpoint(path)
    save_checkpoint({"format": 1, "weights": torch.ones(3)}, path)
    assert torch.equal(load_checkpoint(path)["weights"], torch.ones(3))


@pytest.mark.parametrize("name", ["../evil", "a/b", "/etc", "..", ".hidden", "a\\b", "a b", "x" * 65, ""])
def test_names_used_in_paths_are_refused(name):
    with pytest.raises(SpecError) as refused:
        parse_spec({**SPEC, "name": name})
    assert str(refused.value).startswith("spec: name:")


def test_servers_the_project_starts_listen_on_localhost_only():
    """The study's local Ray starts no dashboard; tests' MLflow servers bind 127.0.0.1; the cluster
    guide's commands keep Ray's dashboard on 127.0.0.1."""
    ray_cluster = (REPO / "orchestrator" / "ray_cluster.py").read_text()
    assert '"include_dashboard": False' in ray_cluster
    assert re.search(r'"--host",\s*"127\.0\.0\.1"', (REPO / "tests" / "mlflow_server.py").read_text())
    guide = (REPO / "docs" / "cluster.md").read_text()
    assert "--dashboard-host 127.0.0.1" in guide and "mlflow server --host 127.0.0.1" in guide
    for source in [*REPO.glob("orchestrator/**/*.py"), *REPO.glob("pcdarts_core/**/*.py")]:
        text = source.read_text()
        assert "yaml.load(" not in text and "yaml.unsafe_load" not in text, source
        assert "torch.load(" not in text or "weights_only=True" in text, source
