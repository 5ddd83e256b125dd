"""A tiny study end to end on a local Ray (2 CPUs) with its sqlite MLflow store: interrupted with
Ctrl-C in the middle of the search stage, then resumed to the end. Checks the trials per stage,
the reports, the selection rule and MLflow's parent/child runs (one per trial, none left RUNNING,
no epoch logged twice)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orchestrator.stages import TRIAL_COLUMNS

pytestmark = pytest.mark.slow

TINY_STUDY = {
    "name": "tiny",
    "dataset": {"name": "fashion_mnist_mini", "image_size": 14, "train_subset": 128},
    "search": {
        "seed": [0, 1],
        "k": [2, 4],
        "edge_norm": True,
        "init_channels": 4,
        "layers": 3,
        "batch_size": 32,
        "epochs": 2,
        "warmup_epochs": 1,
    },
    "select": {"top": 1},
    "retrain": {"seeds": [0, 1], "init_channels": 4, "layers": 3, "batch_size": 32, "epochs": 2, "cutout": 0},
    "baseline": {"count": 1},
    "resources": {"cpus_per_trial": 1},
    "ray": {"num_cpus": 2},
}


@pytest.fixture
def ray_env():
    short = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": short, "PYTHONUNBUFFERED": "1"}
    yield env
    shutil.rmtree(short, ignore_errors=True)


def _study(args: list[str], env: dict, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.run", *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _finished_search_trials(folder: Path) -> int:
    count = 0
    for result in (folder / "tune").glob("tiny-*-search/*/result.json"):
        if '"trial_status": "finished"' in result.read_text():
            count += 1
    return count


def test_study_interrupted_then_resumed(tmp_path, ray_env):
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(yaml.safe_dump(TINY_STUDY, sort_keys=False))
    folder = tmp_path / "study"
    args = [str(spec_file), "--out", str(folder)]

    # 1. start, and press Ctrl-C once the first search trial has finished
    first = _study(args, ray_env, tmp_path)
    try:
        deadline = time.monotonic() + 300
        while _finished_search_trials(folder) == 0:
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, "no search trial finished in 5 minutes"
            time.sleep(0.5)
        first.send_signal(signal.SIGINT)
        output, _ = first.communicate(timeout=180)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 130, output
    assert "--resume" in output
    state = json.loads((folder / "study.json").read_text())
    assert state["stages_done"] == []
    finished_before = _finished_search_trials(folder)
    assert 1 <= finished_before < 4

    # 2. resume to the end
    second = _study([*args, "--resume"], ray_env, tmp_path)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    assert "search: 4/4 done" in output and "retrain: 4/4 done" in output

    # the reports
    trials = pd.read_csv(folder / "trials.csv")
    assert tuple(trials.columns) == TRIAL_COLUMNS
    assert trials["stage"].value_counts().to_dict() == {"search": 4, "retrain": 4}
    assert (trials["status"] == "finished").all()
    search = trials[trials["stage"] == "search"]
    assert (search["epochs"] == 2).all() and (search["valid_acc"] > 0).all()
    assert (search["parameters"] > 0).all() and (search["multiply_adds"] > 0).all() and (search["peak_memory_bytes"] > 0).all()
    selection = pd.read_csv(folder / "selection.csv")
    best = search.sort_values(["valid_acc", "trial"], ascending=[False, True]).iloc[0]
    assert list(selection["source"]) == [best["trial"]]
    retrain = trials[trials["stage"] == "retrain"]
    assert sorted(retrain["trial"]) == ["retrain-g01-seed0", "retrain-g01-seed1", "retrain-random01-seed0", "retrain-random01-seed1"]
    assert (retrain["test_acc"] > 0).all() and (retrain["epochs"] == 2).all()
    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary["setting"]) == ["k=2", "k=4", "random"]
    assert list(summary["searches"]) == [2, 2, 0] and summary["retrains"].sum() == 4
    assert "| setting" in (folder / "summary.md").read_text()

    # MLflow: one parent, one child per trial, none RUNNING, every epoch logged once
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent_id = parents[0].info.run_id
    assert all(r.data.tags["mlflow.parentRunId"] == parent_id for r in children)
    keys = sorted(r.data.tags["pcdarts.trial"] for r in children)
    assert keys == sorted(trials["trial"])  # exactly one run per trial
    assert all(r.info.status == "FINISHED" for r in children)
    for run in children:
        tags, params = run.data.tags, run.data.params
        assert {"pcdarts.stage", "pcdarts.setting", "pcdarts.seed"} <= set(tags)
        assert params["seed"] == tags["pcdarts.seed"] and params["epochs"] == "2"
        metric = "valid_acc" if tags["pcdarts.stage"] == "search" else "test_acc"
        history = client.get_metric_history(run.info.run_id, metric)
        assert sorted(m.step for m in history) == [1, 2], (tags["pcdarts.trial"], history)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"genotype.json", "genotype.txt"} <= artifacts
    parent_artifacts = {a.path for a in client.list_artifacts(parent_id)}
    assert {"trials.csv", "summary.csv", "summary.md", "spec.yaml"} <= parent_artifacts
    assert parents[0].data.params["search.k"] == "[2, 4]"

    # 3. resuming a finished study redoes nothing and adds no runs
    third = _study([*args, "--resume"], ray_env, tmp_path)
    output, _ = third.communicate(timeout=300)
    assert third.returncode == 0, output
    assert "stage search: done earlier" in output
    assert len(client.search_runs([experiment.experiment_id], max_results=100)) == len(runs)
