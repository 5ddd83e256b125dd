"""What the study's MLflow runs say about themselves: run names, descriptions, the dataset input and the
study run's provenance tags. Plain values: :mod:`~orchestrator.tracking.runs` writes them."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ..trial import PUBLISHED, RANDOM, Trial

#: MLflow 3's mark of a model-training experiment. MLflow 3.17's UI does not read it to choose its view (the
#: browser's "GenAI | Model training" switch does, or the address's ``workflowType``: see :func:`runs_page`).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: The query that opens an experiment's runs table in the UI's "Model training" view.
RUNS_VIEW = "runs?workflowType=machine_learning"
#: Where ``mlflow ui`` serves by default.
LOCAL_UI = "http://127.0.0.1:5000"
NOTE_TAG = "mlflow.note.content"
PROJECT = "pcdarts-study"


def runs_page(tracking_uri: str, experiment_id: str) -> str:
    """How to open the experiment's runs table: the address on a tracking server; for a local store (sqlite),
    the ``mlflow ui`` command to start first and the address it then serves."""
    address = f"#/experiments/{experiment_id}/{RUNS_VIEW}"
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/{address}"
    return f"mlflow ui --backend-store-uri {tracking_uri}, then {LOCAL_UI}/{address}"


def run_name(trial: Trial) -> str:
    """A child run's name: what the trial is (``search k=4 en=on seed=0``, ``retrain g01 seed=1``)."""
    if trial.genotype_id:
        return f"{trial.stage} {trial.genotype_id} seed={trial.seed}"
    setting = trial.setting.replace("edge_norm=", "en=")
    return f"{trial.stage} {setting} seed={trial.seed}"


def trial_note(trial: Trial) -> str:
    """A child run's description (``mlflow.note.content``)."""
    epochs = trial.config.get("epochs")
    if trial.genotype_id is None:
        return (
            f"PC-DARTS search of setting `{trial.setting}`, seed {trial.seed}, {epochs} epochs "
            f"(trial `{trial.key}`). Its genotype is in the artifacts."
        )
    if trial.source == RANDOM:
        found = "a random cell (baseline)"
    elif trial.source == PUBLISHED:
        found = "a published cell (anchor)"
    else:
        found = f"found by `{trial.source}` ({trial.setting})"
    if trial.stage == "screen":
        return (
            f"Screen of candidate `{trial.genotype_id}`, {found}: a short retraining, seed {trial.seed}, up to "
            f"{epochs} epochs, ranked on a split held out of the training set (trial `{trial.key}`)."
        )
    return (
        f"Retraining from scratch of genotype `{trial.genotype_id}`, {found}, seed {trial.seed}, {epochs} epochs "
        f"(trial `{trial.key}`). Its final weights and genotype are in the artifacts."
    )


def study_note(name: str) -> str:
    """The study run's description."""
    return (
        f"PC-DARTS study `{name}`: one child run per search and per retraining (tag `pcdarts.trial` = the trial); "
        "the report and its tables are in this run's artifacts."
    )


@dataclass(frozen=True)
class DatasetInput:
    """The data a trial used, as an MLflow dataset input: its name, a digest of what was used, its source."""

    name: str
    digest: str
    source: str
    profile: str

    @classmethod
    def of(cls, config: dict[str, Any]) -> DatasetInput:
        used = {key: config.get(key) for key in ("dataset", "image_size", "train_subset")}
        digest = hashlib.sha256(json.dumps(used, sort_keys=True).encode()).hexdigest()[:16]
        source = config.get("data_root") or f"{used['dataset']} (standard location)"
        return cls(name=str(used["dataset"]), digest=digest, source=str(source), profile=json.dumps(used))


def provenance_tags() -> dict[str, str]:
    """Where the study runs: the project's version and git commit, the Python, torch, Ray and CUDA versions, the
    devices. A value that cannot be found is left out."""
    tags = {"pcdarts.version": _project_version(), "pcdarts.python": platform.python_version()}
    commit = _git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    try:
        import torch

        tags["pcdarts.torch"] = torch.__version__
        tags["pcdarts.cuda"] = torch.version.cuda or "none"
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        names = [torch.cuda.get_device_name(i) for i in range(count)]
        tags["pcdarts.devices"] = ", ".join(names) or f"cpu ({platform.processor() or platform.machine()})"
    except ImportError:
        pass
    try:
        import ray

        tags["pcdarts.ray"] = ray.__version__
    except ImportError:
        pass
    return tags


def _project_version() -> str:
    try:
        return metadata.version(PROJECT)
    except metadata.PackageNotFoundError:
        return "unknown"


def _git_commit() -> str | None:
    """The commit of the checkout this package runs from, or None (an installed package, no git)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None
