"""The study's MLflow runs as a user sees them, through the MLflow client on a sqlite store: the experiment
kind, run names and descriptions, dataset inputs, provenance tags, and a retrained network kept with its
run and rebuilt from it."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

from orchestrator.trial import Trial, TrialStatus

pytest.importorskip("mlflow")

TINY_TRAIN = dict(
    dataset="fashion_mnist_mini",
    init_channels=8,
    layers=4,
    batch_size=64,
    epochs=1,
    cutout=0,
    auxiliary=False,
    train_subset=256,
    device="cpu",
)


def _trial(key: str, stage: str, setting: str, seed: int, **fields) -> Trial:
    config = {"dataset": "fashion_mnist_mini", "image_size": None, "train_subset": 256, "epochs": 2}
    return Trial(key=key, stage=stage, setting=setting, seed=seed, config=config, cpus=1, gpus=0, **fields)


SEARCH = _trial("search-003", "search", "k=4 edge_norm=on", 0)
RETRAIN = _trial("retrain-g01-seed1", "retrain", "k=4 edge_norm=on", 1, genotype_id="g01", source="search-003")
RANDOM = _trial("retrain-random01-seed0", "retrain", "random", 0, genotype_id="random01", source="random")


@pytest.fixture
def tracker(tmp_path):
    from orchestrator.tracking import StudyTracker

    return StudyTracker.connect(f"sqlite:///{tmp_path / 'mlflow.db'}", "tiny", tmp_path / "mlartifacts")


def test_experiment_opens_on_runs_and_existing_experiments_get_the_kind(tmp_path):
    from mlflow.tracking import MlflowClient

    from orchestrator.tracking import StudyTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = StudyTracker.connect(uri, "new", tmp_path / "a")
    client = MlflowClient(uri)
    assert client.get_experiment(tracker.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    old = client.create_experiment("old", artifact_location=(tmp_path / "b").as_uri())
    assert "mlflow.experimentKind" not in client.get_experiment(old).tags
    assert StudyTracker.connect(uri, "old", tmp_path / "b").experiment_id == old
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"


def test_runs_are_named_described_and_carry_their_dataset(tracker):
    parent = tracker.study_run("sid-1", "tiny", {"name": "tiny"})
    ids = {trial.key: tracker.trial_run(parent, trial) for trial in (SEARCH, RETRAIN, RANDOM)}
    client = tracker.client
    names = {key: client.get_run(run_id).info.run_name for key, run_id in ids.items()}
    assert names == {
        "search-003": "search k=4 en=on seed=0",
        "retrain-g01-seed1": "retrain g01 seed=1",
        "retrain-random01-seed0": "retrain random01 seed=0",
    }
    study = client.get_run(parent)
    assert "tiny" in study.data.tags["mlflow.note.content"]
    digests = set()
    for key, run_id in ids.items():
        run = client.get_run(run_id)
        assert run.data.tags["pcdarts.trial"] == key  # how runs are found again
        assert key in run.data.tags["mlflow.note.content"]
        (used,) = run.inputs.dataset_inputs
        assert used.dataset.name == "fashion_mnist_mini" and used.dataset.digest
        assert "train_subset" in used.dataset.profile
        digests.add(used.dataset.digest)
    assert len(digests) == 1  # the same data, the same digest
    # found again by its tags: the same run, its dataset input not logged twice
    assert tracker.trial_run(parent, SEARCH) == ids["search-003"]
    assert len(client.get_run(ids["search-003"]).inputs.dataset_inputs) == 1
    assert tracker.study_run("sid-1", "tiny", {"name": "tiny"}) == parent


def test_study_run_has_provenance_tags(tracker):
    import platform

    import ray

    tags = tracker.client.get_run(tracker.study_run("sid-2", "tiny", {})).data.tags
    assert tags["pcdarts.python"] == platform.python_version()
    assert tags["pcdarts.torch"] == torch.__version__ and tags["pcdarts.ray"] == ray.__version__
    assert tags["pcdarts.cuda"] == (torch.version.cuda or "none")
    assert tags["pcdarts.devices"] and tags["pcdarts.version"]
    if (Path(__file__).resolve().parents[1] / ".git").exists():
        assert len(tags["mlflow.source.git.commit"]) == 40


class _Checkpoint:
    """What the driver gets from Ray Tune for a trial's last checkpoint."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @contextlib.contextmanager
    def as_directory(self):
        yield str(self.folder)


def test_retrained_network_is_kept_and_rebuilt_with_its_test_accuracy(tracker, tmp_path):
    from orchestrator.stages.retrain import write_trained_network
    from orchestrator.tracking.trained import evaluate_run
    from pcdarts_core import KNOWN_GENOTYPES, TrainConfig, Training

    training = Training(TrainConfig(**TINY_TRAIN), KNOWN_GENOTYPES["PC_DARTS_cifar"])
    record = training.run_epoch()
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    write_trained_network(training, folder)
    parent = tracker.study_run("sid-3", "tiny", {})
    run_id = tracker.trial_run(parent, RETRAIN)
    final = {"genotype": training.genotype().to_text(), "parameters": training.cost.parameters}
    tracker.finish_trial(run_id, TrialStatus.FINISHED, final, _Checkpoint(folder))
    listed = {f.path for f in tracker.client.list_artifacts(run_id, "network")}
    assert {"network/weights.pt", "network/config.json", "network/genotype.json"} <= listed
    local = Path(tracker.client.download_artifacts(run_id, "network/weights.pt", str(tmp_path)))
    state = torch.load(local, weights_only=True)
    assert state.keys() == training.model.state_dict().keys()
    rebuilt = evaluate_run(tracker.uri, run_id)
    assert rebuilt.test_acc == pytest.approx(record.test_acc, abs=1e-6)
    assert rebuilt.test_loss == pytest.approx(record.test_loss, rel=1e-5)


def test_runs_page_address_for_a_server_and_for_a_local_store():
    from orchestrator.tracking.describe import runs_page

    assert (
        runs_page("http://10.0.0.5:5000/", "7")
        == "http://10.0.0.5:5000/#/experiments/7/runs?workflowType=machine_learning"
    )
    local = runs_page("sqlite:////data/study/mlflow.db", "1")
    assert local == (
        "mlflow ui --backend-store-uri sqlite:////data/study/mlflow.db, "
        "then http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning"
    )
