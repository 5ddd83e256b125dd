"""A study on a real two-node Ray cluster (``ray.cluster_utils.Cluster``, one CPU per node), logging
over HTTP to a real ``mlflow server``, through three faults at once:

- a search trial's worker process is SIGKILLed after an epoch: Ray Tune retries the trial from its
  last epoch checkpoint (its epoch counter goes on, it does not start again from epoch 1);
- another search trial diverges (its loss made NaN before epoch 2 through the test-only
  ``PCDARTS_TEST_NAN_AT`` setting and the core's own divergence check): it stops as "diverged",
  the study goes on and the report lists it;
- the MLflow server is stopped and started again mid-study: every epoch still ends up logged once.

Trials run on both nodes. At the end the MLflow UI, in headless Chromium, shows the study's
parent run with its nested trial runs (screenshot in test-artifacts/mlflow-experiment.png).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile

import pandas as pd
import pytest
import yaml

from chromium import DevToolsPage, artifact_path, chromium_or_skip
from mlflow_server import MlflowServer
from study_helpers import driver, finish, kill_driver, trial_results, wait_for

pytestmark = pytest.mark.slow

CLUSTER_STUDY = {
    "name": "duo",
    "dataset": {"name": "fashion_mnist_mini", "image_size": 14, "train_subset": 128},
    "search": {"seed": [0, 1, 2], "k": 2, "init_channels": 4, "layers": 3, "batch_size": 32, "epochs": 3, "warmup_epochs": 1},
    "select": {"top": 1},
    "retrain": {"seeds": [0], "init_channels": 4, "layers": 3, "batch_size": 32, "epochs": 1, "cutout": 0},
    "resources": {"cpus_per_trial": 1, "max_failures": 2},
}
KILLED, DIVERGING = "search-001", "search-003"


@pytest.fixture
def cluster(monkeypatch):
    """Two Ray nodes on this machine, one CPU each; the workers they start see the test-only NaN setting."""
    from ray.cluster_utils import Cluster

    short = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # Ray's socket paths must stay short
    monkeypatch.setenv("RAY_TMPDIR", short)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("PCDARTS_TEST_NAN_AT", f"{DIVERGING}:2")
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        nodes.add_node(num_cpus=1)
        nodes.wait_for_nodes()
        yield nodes
    finally:
        nodes.shutdown()
        shutil.rmtree(short, ignore_errors=True)


def _epoch_rows(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row.get("trial_status") in ("running", "finished") and "epoch" in row]


def test_two_node_study_survives_a_killed_worker_a_diverged_trial_and_an_mlflow_restart(tmp_path, cluster):
    server = MlflowServer(tmp_path / "mlflow").start()
    study, code = None, None
    try:
        spec = {**CLUSTER_STUDY, "tracking": {"uri": server.uri}, "ray": {"address": cluster.address}}
        spec_file = tmp_path / "duo.yaml"
        spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        folder = tmp_path / "study"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        study = driver([str(spec_file), "--out", str(folder)], env, tmp_path, tmp_path / "driver.log")

        # 1. SIGKILL the worker process running KILLED once it has reported an epoch (its PID, nothing else)
        def first_epoch():
            rows = _epoch_rows(trial_results(folder, "search").get(KILLED, []))
            return rows if rows and rows[-1]["trial_status"] == "running" else None

        before = wait_for(first_epoch, study, 300, f"first epoch of {KILLED}")
        os.kill(before[-1]["worker_pid"], signal.SIGKILL)

        # 2. the tracking server goes away and comes back on the same port, same store
        server.stop()
        server.start()

        code, output = finish(study, 600)
        assert code == 0, output
    finally:
        if study is not None and study.poll() is None:
            kill_driver(study)
        if code != 0:
            server.stop()

    # the killed trial was retried by another worker process from its last epoch checkpoint
    killed = _epoch_rows(trial_results(folder, "search")[KILLED])
    pids = list(dict.fromkeys(row["worker_pid"] for row in killed))
    assert len(pids) == 2, killed
    first = [row["epoch"] for row in killed if row["worker_pid"] == pids[0]]
    second = [row["epoch"] for row in killed if row["worker_pid"] == pids[1]]
    assert first[0] == 1 and second[0] == first[-1] + 1 and second[-1] == 3, (first, second)
    # trials ran on both nodes
    rows = [row for stage in ("search", "retrain") for trial in trial_results(folder, stage).values() for row in trial]
    assert len({row["node_id"] for row in rows if "node_id" in row}) == 2

    # the diverged trial stopped early, the others finished, and the report lists it
    trials = pd.read_csv(folder / "trials.csv").set_index("trial")
    assert trials.loc[DIVERGING, "status"] == "diverged" and trials.loc[DIVERGING, "epochs"] == 1
    assert "diverged in epoch 2" in trials.loc[DIVERGING, "error"]
    assert (trials.drop(DIVERGING)["status"] == "finished").all() and len(trials) == 4
    assert (trials.loc[["search-001", "search-002"], "epochs"] == 3).all()
    summary = (folder / "summary.md").read_text()
    assert "Trials that did not finish" in summary and DIVERGING in summary and "diverged" in summary

    # MLflow over HTTP: one run per trial under the study's run, none RUNNING, every epoch logged once
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server.uri)
    state = json.loads((folder / "study.json").read_text())
    experiment_id = state["mlflow_experiment_id"]
    runs = client.search_runs([experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags["pcdarts.trial"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and parents[0].info.run_id == state["mlflow_run_id"]
    assert sorted(children) == sorted(trials.index) and len(runs) == 5
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children.values())
    for key, run in children.items():
        epochs = sorted(m.step for m in client.get_metric_history(run.info.run_id, "epoch"))
        if key == DIVERGING:
            assert run.info.status == "FAILED" and run.data.tags["pcdarts.status"] == "diverged" and epochs == [1]
        else:
            assert run.info.status == "FINISHED" and epochs == list(range(1, int(trials.loc[key, "epochs"]) + 1)), (key, epochs)

    # the MLflow UI: the experiment's runs page lists the study's run; expanded, its nested trial runs
    try:
        with DevToolsPage(chromium_or_skip()) as page:
            page.goto(f"{server.uri}/#/experiments/{experiment_id}/runs")
            expander = "document.querySelector('button[data-component-id*=runnamecellrenderer]')"
            page.wait_for(f"{expander} !== null", timeout=60, what="the study's run with an expander")
            page.evaluate(f"{expander}.click()")
            page.wait_for(" && ".join(f"document.body.innerText.includes('{key}')" for key in children), timeout=30,
                          what="the nested trial runs")
            dom = page.html()
            page.screenshot(artifact_path("mlflow-experiment.png"))
        names = re.findall(r">(duo|search-\d{3}|retrain-[\w-]+)</", dom)
        table = names[len(names) - 1 - names[::-1].index("duo"):]  # the runs table: the last "duo" on the page
        assert set(table[1:]) == set(children), names  # the study's run, then its trial runs
    finally:
        server.stop()
