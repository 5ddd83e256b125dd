"""A tiny study end to end on a local Ray (2 CPUs) with its sqlite MLflow store, interrupted four
ways and resumed each time: the driver SIGKILLed in the middle of the search stage, Ctrl-C later in
that stage, the driver SIGKILLed again in the middle of the retrain stage, and a final resume of the
finished study. Checks that a killed driver leaves no process behind, that finished trials are never
run again, the trials per stage, the reports, the selection rule and MLflow's parent/child runs (one
per trial, none left RUNNING, no epoch logged twice)."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fault_hooks import pause_hook_env
from study_helpers import RAY_AGENTS, driver, finish, finished, kill_driver, result_rows, trial_results, wait_for
from study_helpers import output as output_of

from orchestrator.stages.rows import TRIAL_COLUMNS

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


def _finished_results(folder: Path, stage: str) -> dict[str, list[dict]]:
    """The result rows of the trials of one stage that have finished."""
    return {key: rows for key, rows in trial_results(folder, stage).items() if finished(rows)}


def _not_run_again(before: dict[str, list[dict]], after: dict[str, list[dict]]) -> None:
    """A trial that had finished trained no epoch again: its rows are kept, and at most a trial whose end
    Tune had not yet saved when the driver died is restored from its final checkpoint and reports the same
    final values again (no training)."""
    for key, rows in before.items():
        final = rows[-1]
        assert after[key][: len(rows)] == rows, key
        for again in after[key][len(rows) :]:
            assert again["trial_status"] == "finished" and again["epoch"] == final["epoch"], (key, again)
            assert again["train_loss"] == final["train_loss"] and again["epoch_time_s"] == final["epoch_time_s"], (
                key,
                again,
            )


def _done(folder: Path, stage: str) -> set[str]:
    return {key for key, rows in trial_results(folder, stage).items() if finished(rows)}


def _rows(folder: Path) -> int:
    return sum(len(result_rows(p)) for p in folder.glob("tune/tiny-*/*/result.json"))


def _only_ray_agents(leaked: dict[int, str]) -> None:
    """Ray's GCS, raylet and workers die with a SIGKILLed driver (they watch their parent); only Ray's
    two node agents can outlive it for a while (they try to report the raylet's death to the gone GCS).
    kill_driver ended them by PID."""
    others = {pid: cmd for pid, cmd in leaked.items() if not cmd.startswith(RAY_AGENTS)}
    assert others == {}, f"processes outlived the killed driver: {others}"


def _mlflow(folder: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    return client, client.search_runs([experiment.experiment_id], max_results=100)


def test_study_killed_interrupted_and_resumed(tmp_path, ray_env):
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(yaml.safe_dump(TINY_STUDY, sort_keys=False))
    folder = tmp_path / "study"
    args = [str(spec_file), "--out", str(folder)]
    resume = [*args, "--resume"]

    # 1. the driver SIGKILLed once a search trial has finished (and Tune has gone on after it). Until the last run,
    # every epoch waits two seconds first: warm workers run the tiny trials so fast that the study would otherwise
    # end a stage before the test could stop it in the middle
    paced = {**ray_env, **pause_hook_env(2.0)}
    first = driver(args, paced, tmp_path, tmp_path / "run1.log")
    try:
        done = wait_for(lambda: _done(folder, "search"), first, 300, "finished search trial")
        rows = _rows(folder)
        wait_for(lambda: _rows(folder) > rows, first, 120, "report after the first finished search trial")
        finished_search = _finished_results(folder, "search")
    finally:
        leaked = kill_driver(first)
    _only_ray_agents(leaked)
    assert 1 <= len(finished_search) < 4 and set(done) <= set(finished_search)
    assert json.loads((folder / "study.json").read_text())["stages_done"] == []
    client, runs = _mlflow(folder)
    assert any(r.info.status == "RUNNING" for r in runs)  # a killed driver cannot close its runs

    # 2. resumed, then Ctrl-C in the middle of a trial: exit 130 with the resume command, runs closed
    second = driver(resume, paced, tmp_path, tmp_path / "run2.log")
    try:
        # as soon as its progress line shows a search running (a restored search may have one epoch left: waiting
        # for its next report could mean waiting for the end of the stage)
        running = re.compile(r"^search: \d+/4 done, [1-9]\d* running", re.M)
        wait_for(lambda: running.search(output_of(second)), second, 300, "a running search after resuming")
        second.send_signal(signal.SIGINT)
        code, output = finish(second, 180)
    finally:
        if second.poll() is None:
            kill_driver(second)
    assert code == 130, output
    assert "--resume" in output
    assert json.loads((folder / "study.json").read_text())["stages_done"] == []
    client, runs = _mlflow(folder)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]

    # 3. resumed, and the driver SIGKILLed again once a retrain trial has finished
    third = driver(resume, paced, tmp_path, tmp_path / "run3.log")
    try:
        wait_for(lambda: _done(folder, "retrain"), third, 400, "finished retrain trial")
        rows = _rows(folder)
        wait_for(lambda: _rows(folder) > rows, third, 120, "report after the first finished retrain trial")
        finished_retrain = _finished_results(folder, "retrain")
    finally:
        leaked = kill_driver(third)
    _only_ray_agents(leaked)
    assert json.loads((folder / "study.json").read_text())["stages_done"] == ["search", "select"]
    assert 1 <= len(finished_retrain) < 4

    # 4. resumed to the end
    fourth = driver(resume, ray_env, tmp_path, tmp_path / "run4.log")
    code, output = finish(fourth, 600)
    assert code == 0, output
    assert "stage search: done earlier" in output and "retrain: 4/4 done" in output
    # the last line says how to open the runs table, with the study's own experiment id
    state = json.loads((folder / "study.json").read_text())
    page = f"http://127.0.0.1:5000/#/experiments/{state['mlflow_experiment_id']}/runs?workflowType=machine_learning"
    assert output.splitlines()[-1] == f"MLflow runs: mlflow ui --backend-store-uri {state['mlflow_uri']}, then {page}"

    # trials finished before a kill were not run again
    _not_run_again(finished_search, trial_results(folder, "search"))
    _not_run_again(finished_retrain, trial_results(folder, "retrain"))
    # a trial resumed mid-way went on from its last epoch checkpoint: its epochs never go back
    for stage in ("search", "retrain"):
        for key, trial_rows in trial_results(folder, stage).items():
            epochs = [row["epoch"] for row in trial_rows if "epoch" in row]
            assert epochs == sorted(epochs) and epochs[-1] == 2, (key, epochs)

    # the reports: as many rows as an uninterrupted study
    trials = pd.read_csv(folder / "trials.csv")
    assert tuple(trials.columns) == TRIAL_COLUMNS
    assert trials["stage"].value_counts().to_dict() == {"search": 4, "retrain": 4}
    assert (trials["status"] == "finished").all()
    search = trials[trials["stage"] == "search"]
    assert (search["epochs"] == 2).all() and (search["valid_acc"] > 0).all()
    assert (
        (search["parameters"] > 0).all()
        and (search["multiply_adds"] > 0).all()
        and (search["peak_memory_bytes"] > 0).all()
    )
    # saved activations per image: the same for both seeds of a setting, about a third at K=4 (here K=2 and 4)
    saved = search.groupby("k")["activation_bytes_per_image"]
    assert (saved.nunique() == 1).all() and (saved.min() > 0).all(), saved.describe()
    assert saved.mean()[4] < saved.mean()[2]
    selection = pd.read_csv(folder / "selection.csv")
    best = search.sort_values(["valid_acc", "trial"], ascending=[False, True]).iloc[0]
    assert list(selection["source"]) == [best["trial"]]
    retrain = trials[trials["stage"] == "retrain"]
    assert sorted(retrain["trial"]) == [
        "retrain-g01-seed0",
        "retrain-g01-seed1",
        "retrain-random01-seed0",
        "retrain-random01-seed1",
    ]
    assert (retrain["test_acc"] > 0).all() and (retrain["epochs"] == 2).all()
    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary["setting"]) == ["k=2", "k=4", "random"]
    assert list(summary["searches"]) == [2, 2, 0] and summary["retrains"].sum() == 4
    assert "| setting" in (folder / "summary.md").read_text()

    # MLflow: one parent, one child per trial, none RUNNING, every epoch logged once
    client, runs = _mlflow(folder)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent_id = parents[0].info.run_id
    assert all(r.data.tags["mlflow.parentRunId"] == parent_id for r in children)
    keys = sorted(r.data.tags["pcdarts.trial"] for r in children)
    assert keys == sorted(trials["trial"]) and len(children) == 8  # exactly one run per trial
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

    # MLflow as its users see it: the runs table, named and described runs, the dataset, provenance, the networks
    from orchestrator.tracking.trained import evaluate_run, trial_run_id

    experiment = client.get_experiment(parents[0].info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    study_tags = parents[0].data.tags
    assert study_tags["mlflow.note.content"] and study_tags["pcdarts.torch"] and study_tags["pcdarts.ray"]
    assert {"pcdarts.version", "pcdarts.python", "pcdarts.cuda", "pcdarts.devices"} <= set(study_tags)
    for run in children:
        tags = run.data.tags
        what = tags.get("pcdarts.genotype_id") or tags["pcdarts.setting"]
        assert run.info.run_name == f"{tags['pcdarts.stage']} {what} seed={tags['pcdarts.seed']}"
        assert tags["pcdarts.trial"] in tags["mlflow.note.content"]
        assert [i.dataset.name for i in run.inputs.dataset_inputs] == ["fashion_mnist_mini"]
        if tags["pcdarts.stage"] == "retrain":
            network = {a.path for a in client.list_artifacts(run.info.run_id, "network")}
            assert {"network/weights.pt", "network/config.json", "network/genotype.json"} <= network
    uri, run_id = trial_run_id(folder, "retrain-g01-seed0")
    logged = client.get_run(run_id).data.metrics["test_acc"]
    assert evaluate_run(uri, run_id).test_acc == pytest.approx(logged, abs=1e-6)

    # 5. resuming a finished study redoes nothing and adds no runs
    fifth = driver(resume, ray_env, tmp_path, tmp_path / "run5.log")
    code, output = finish(fifth, 300)
    assert code == 0, output
    assert "stage search: done earlier" in output and "stage retrain: done earlier" in output
    assert len(_mlflow(folder)[1]) == len(runs)
