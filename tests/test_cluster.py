"""A study on a real two-node Ray cluster (``ray.cluster_utils.Cluster``, one CPU per node), logging
over HTTP to a real ``mlflow server``, through four faults:

- the second node dies (its raylet and workers killed) while a search that has saved an epoch runs
  there: Ray Tune retries that search on the head node from its last epoch checkpoint (its epoch
  counter goes on from there, it does not start again from epoch 1);
- the worker process of a search on the head node is SIGKILLed: the same, in a new worker process;
- another search diverges (its weights made NaN before epoch 2 by the trainables' epoch hook, see
  ``fault_hooks.py``, and stopped by the core's own divergence check): it stops as "diverged",
  the study goes on and the report lists it;
- the MLflow server is stopped until the driver has handled a result, then started again: the live
  logger reports the failure, and every epoch still ends up logged once.

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
from fault_hooks import nan_hook_env
from mlflow_server import MlflowServer
from study_helpers import driver, finish, kill_driver, trial_results, wait_for

pytestmark = pytest.mark.slow

CLUSTER_STUDY = {
    "name": "duo",
    "dataset": {"name": "fashion_mnist_mini", "image_size": 14, "train_subset": 128},
    "search": {
        "seed": [0, 1, 2],
        "k": 2,
        "init_channels": 4,
        "layers": 3,
        "batch_size": 32,
        "epochs": 3,
        "warmup_epochs": 1,
    },
    "select": {"top": 1},
    "retrain": {"seeds": [0], "init_channels": 4, "layers": 3, "batch_size": 32, "epochs": 1, "cutout": 0},
    "resources": {"cpus_per_trial": 1, "max_failures": 2},
}
DIVERGING = "search-003"


@pytest.fixture
def cluster(monkeypatch):
    """Two Ray nodes on this machine, one CPU each; the workers they start run the NaN hook."""
    from ray.cluster_utils import Cluster

    short = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # Ray's socket paths must stay short
    monkeypatch.setenv("RAY_TMPDIR", short)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    for name, value in nan_hook_env(DIVERGING, epoch=2).items():
        monkeypatch.setenv(name, value)
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        nodes.second = nodes.add_node(num_cpus=1)  # type: ignore[attr-defined]
        nodes.wait_for_nodes()
        yield nodes
    finally:
        nodes.shutdown()
        shutil.rmtree(short, ignore_errors=True)


def _epoch_rows(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row.get("trial_status") in ("running", "finished") and "epoch" in row]


def _continued_runs(rows: list[dict]) -> list[tuple[str, list[int]]]:
    """A trial's epochs per worker process, in order, as (node id, epochs), checked to form one search
    that each retry continued from the last epoch the one before saved: the first process starts at
    epoch 1, every later one right after where the one before stopped, and the last ends at epoch 3.
    (Tune's result.json rows are written by the driver once it has the epoch's checkpoint.)"""
    runs: list[tuple[int, str, list[int]]] = []
    for row in _epoch_rows(rows):
        if not runs or runs[-1][0] != row["worker_pid"]:
            runs.append((row["worker_pid"], row["node_id"], []))
        runs[-1][2].append(row["epoch"])
    epochs = [e for _, _, e in runs]
    assert epochs and epochs[0][0] == 1 and epochs[-1][-1] == 3, epochs
    for before, after in zip(epochs, epochs[1:]):
        assert after == list(range(before[-1] + 1, before[-1] + 1 + len(after))), epochs
    return [(node, e) for _, node, e in runs]


@pytest.fixture
def server(tmp_path):
    """A real MLflow tracking server on 127.0.0.1 (sqlite store), stopped whatever the test's outcome."""
    server = MlflowServer(tmp_path / "mlflow").start()
    yield server
    server.stop()


def test_two_node_study_survives_a_dead_node_a_killed_worker_a_diverged_trial_and_an_mlflow_restart(
    tmp_path, cluster, server
):
    study = None
    try:
        spec = {**CLUSTER_STUDY, "tracking": {"uri": server.uri}, "ray": {"address": cluster.address}}
        spec_file = tmp_path / "duo.yaml"
        spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        folder = tmp_path / "study"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        study = driver([str(spec_file), "--out", str(folder)], env, tmp_path, tmp_path / "driver.log")

        second = cluster.second.node_id
        searches = lambda: {key: _epoch_rows(rows) for key, rows in trial_results(folder, "search").items()}  # noqa: E731

        def running(where):
            """(key, last row) of a search, not the diverging one, that has saved an epoch and runs on a node
            ``where`` accepts."""
            for key, rows in searches().items():
                if key != DIVERGING and rows and rows[-1]["trial_status"] == "running" and where(rows[-1]["node_id"]):
                    return key, rows[-1]
            return None

        # 1. the second node dies (raylet and workers killed) while a search that has saved an epoch runs there;
        # the first two searches start together, one on each node, so one of them is there
        moved, _ = wait_for(
            lambda: running(lambda node: node == second), study, 300, "a saved epoch on the second node"
        )
        cluster.remove_node(cluster.second, allow_graceful=False)

        # 2. SIGKILL the worker process of a search running on the head node (its PID, nothing else)
        killed, row = wait_for(
            lambda: running(lambda node: node != second), study, 300, "a saved epoch on the head node"
        )
        os.kill(row["worker_pid"], signal.SIGKILL)

        # 3. the tracking server goes away until the driver has processed another result, then comes back
        # on the same port with the same store
        server.stop()
        seen = sum(len(rows) for rows in searches().values())
        wait_for(
            lambda: sum(len(rows) for rows in searches().values()) > seen, study, 300, "a result while MLflow is down"
        )
        server.start()

        code, output = finish(study, 600)
        assert code == 0, output
    finally:
        if study is not None and study.poll() is None:
            kill_driver(study)

    # the killed trial was retried by another worker process from its last epoch checkpoint
    assert len(_continued_runs(trial_results(folder, "search")[killed])) >= 2
    # trials ran on both nodes
    rows = [row for stage in ("search", "retrain") for trial in trial_results(folder, stage).values() for row in trial]
    assert len({row["node_id"] for row in rows if "node_id" in row}) == 2
    # the search on the node that died went on from its last saved epoch on the head node
    runs = _continued_runs(trial_results(folder, "search")[moved])
    assert len(runs) >= 2 and runs[0][0] == second and all(node == cluster.head_node.node_id for node, _ in runs[1:]), (
        runs
    )

    # the diverged trial stopped early, the others finished, and the report lists it
    trials = pd.read_csv(folder / "trials.csv").set_index("trial")
    assert trials.loc[DIVERGING, "status"] == "diverged" and trials.loc[DIVERGING, "epochs"] == 1
    assert "diverged in epoch 2" in trials.loc[DIVERGING, "error"]
    assert (trials.drop(DIVERGING)["status"] == "finished").all() and len(trials) == 4
    assert (trials.loc[["search-001", "search-002"], "epochs"] == 3).all()
    assert "warning: MLflow logging failed" in output  # the outage really hit the live logger
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
    assert (
        len(parents) == 1 and parents[0].info.status == "FINISHED" and parents[0].info.run_id == state["mlflow_run_id"]
    )
    assert sorted(children) == sorted(trials.index) and len(runs) == 5
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children.values())
    for key, run in children.items():
        epochs = sorted(m.step for m in client.get_metric_history(run.info.run_id, "epoch"))
        if key == DIVERGING:
            assert run.info.status == "FAILED" and run.data.tags["pcdarts.status"] == "diverged" and epochs == [1]
        else:
            assert run.info.status == "FINISHED" and epochs == list(range(1, int(trials.loc[key, "epochs"]) + 1)), (
                key,
                epochs,
            )

    # the MLflow UI: the experiment's runs page lists the study's run; expanded, its nested trial runs
    runs_shown = list(children.values())
    try:
        with DevToolsPage(chromium_or_skip()) as page:
            page.goto(f"{server.uri}/#/experiments/{experiment_id}/runs")
            expander = "document.querySelector('button[data-component-id*=runnamecellrenderer]')"
            page.wait_for(f"{expander} !== null", timeout=60, what="the study's run with an expander")
            page.evaluate(f"{expander}.click()")
            page.wait_for(
                # the trial runs are named for what they are (e.g. "search k=2 en=on seed=0"), not by key
                " && ".join(f"document.body.innerText.includes({json.dumps(r.info.run_name)})" for r in runs_shown),
                timeout=30,
                what="the nested trial runs",
            )
            dom = page.html()
            page.screenshot(artifact_path("mlflow-experiment.png"))
        shown = "|".join(re.escape(r.info.run_name) for r in runs_shown)
        names = re.findall(rf">(duo|{shown})</", dom)
        table = names[len(names) - 1 - names[::-1].index("duo") :]  # the runs table: the last "duo" on the page
        assert set(table[1:]) == {r.info.run_name for r in runs_shown}, names  # the study's run, then its trial runs
    finally:
        server.stop()
