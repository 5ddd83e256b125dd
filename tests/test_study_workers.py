"""A study whose searches run on several processes (``resources.workers_per_trial``): Ray Train workers inside
each Tune trial, one of them killed twice and resumed each time (by Ray Train, then, its retries spent, by Tune),
the epochs reported, logged and checkpointed as of any other trial, and the search exactly the one ``torchrun``
runs on as many processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.errors import SpecError
from orchestrator.ray_cluster import check_resources
from orchestrator.spec import parse_spec

HERE = Path(__file__).parent

WORKERS_STUDY = {
    "name": "pair",
    "dataset": {"name": "fashion_mnist_mini", "image_size": 14, "train_subset": 128},
    "search": {"seed": 0, "k": 2, "init_channels": 4, "layers": 3, "batch_size": 32, "epochs": 3, "warmup_epochs": 1},
    "select": {"top": 1},
    "retrain": {"seeds": [0], "init_channels": 4, "layers": 3, "batch_size": 32, "epochs": 1, "cutout": 0},
    "baseline": {"count": 0},
    "resources": {"cpus_per_trial": 1, "workers_per_trial": 2, "max_failures": 1},
    "ray": {"num_cpus": 2},
}


def test_workers_need_whole_gpus_a_batch_they_can_share_and_a_cluster_that_holds_them():
    for gpus in ("auto", 0.5):
        with pytest.raises(SpecError, match="each worker of a search needs GPUs of its own"):
            parse_spec({**WORKERS_STUDY, "resources": {"workers_per_trial": 2, "gpus_per_trial": gpus}})
    with pytest.raises(SpecError, match="search.batch_size: batch_size 30 cannot be split over workers_per_trial 4"):
        parse_spec(
            {
                **WORKERS_STUDY,
                "search": {**WORKERS_STUDY["search"], "batch_size": 30},
                "resources": {"workers_per_trial": 4},
            }
        )
    spec = parse_spec(WORKERS_STUDY)
    check_resources(spec, {"CPU": 2.0})
    with pytest.raises(SpecError, match=r"resources.workers_per_trial: 2 workers x 1 CPUs \(cpus_per_trial\) need 2"):
        check_resources(spec, {"CPU": 1.5})


@pytest.mark.slow
def test_a_search_on_two_workers_survives_killed_workers_and_equals_torchrun(tmp_path, ray_env):
    from fault_hooks import kill_worker_env
    from mlflow.tracking import MlflowClient
    from study_helpers import descendants, run_study, trial_results

    from orchestrator.plan import StudyPlan
    from pcdarts_core import Genotype
    from pcdarts_core.checkpoint import load_checkpoint

    env = {**ray_env, **kill_worker_env(rank=1, epochs=[2, 3], marker=tmp_path / "killed")}
    process, code, out = run_study(WORKERS_STUDY, env, tmp_path, timeout_s=900)
    folder = tmp_path / "study"
    assert code == 0, out[-3000:]
    assert not descendants(process.pid)
    assert (tmp_path / "killed-2").exists() and (tmp_path / "killed-3").exists()  # the second worker died twice

    searches = pd.read_csv(folder / "search.csv").set_index("trial")
    row = searches.loc["search-001"]
    assert row["status"] == "finished" and row["epochs"] == 3 and row["cpus"] == 2  # two workers of one CPU
    # epoch 1 from the first worker group; epoch 2 from the one Ray Train started after the first kill, from epoch
    # 1's checkpoint; epoch 3, after the second kill spent Ray Train's one retry, from the trial Tune retried with
    # its checkpoint of epoch 2: each epoch reported once, each by other processes
    rows = trial_results(folder, "search")["search-001"]
    epochs = [r for r in rows if r.get("trial_status") in ("running", "finished")]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert len({r["worker_pid"] for r in epochs}) == 3
    assert not any((folder / "tune" / "train").iterdir())  # Ray Train's way stations are gone

    # logged by the driver as any trial: one nested MLflow run, every epoch once
    state = json.loads((folder / "study.json").read_text())
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([state["mlflow_experiment_id"]], filter_string="tags.`pcdarts.trial` = 'search-001'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "epoch")) == [1, 2, 3]

    # the same search, straight through on two torchrun processes: the same numbers, bit for bit
    config = StudyPlan.from_spec(parse_spec(WORKERS_STUDY)).grid[0].config.replace(device="cpu")
    (tmp_path / "config.json").write_text(config.model_dump_json())
    (tmp_path / "torchrun").mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += [str(HERE / "distributed_search.py"), str(tmp_path / "config.json"), str(tmp_path / "torchrun"), "3"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    history = load_checkpoint(tmp_path / "torchrun" / "checkpoint.pt")["history"]
    assert [r["valid_acc"] for r in epochs] == [r["valid_acc"] for r in history]
    assert [r["train_loss"] for r in epochs] == [r["train_loss"] for r in history]
    assert row["genotype"] == Genotype.from_dict(history[-1]["genotype"]).to_text()
