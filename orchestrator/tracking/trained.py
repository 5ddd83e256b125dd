"""A retrained network of a study, rebuilt from its MLflow run and evaluated on the test set.

``python -m orchestrator.tracking.trained --run-id RUN --tracking-uri URI``, or
``python -m orchestrator.tracking.trained --study FOLDER --trial retrain-g01-seed0``: downloads the run's
``network/`` artifacts (weights, settings, genotype), builds the network, loads the weights and prints its
test accuracy, the value the run logged as ``test_acc``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pcdarts_core.errors import UserInputError

from ..stages.rows import TRAINED_WEIGHTS
from ..study_state import StudyState
from .runs import NETWORK_ARTIFACTS, StudyTracker


@dataclass(frozen=True)
class Evaluation:
    """The test loss and accuracy of a rebuilt network."""

    run_id: str
    test_loss: float
    test_acc: float


def trial_run_id(study_folder: Path, trial_key: str) -> tuple[str, str]:
    """The tracking URI and run id of a trial of a study (from the study's ``study.json``)."""
    state = StudyState.read(study_folder)
    tracker = StudyTracker(state.mlflow_uri, state.mlflow_experiment_id)
    run = tracker.find_trial_run(state.mlflow_run_id, trial_key)
    if run is None:
        raise UserInputError(f"{study_folder}: the study has no MLflow run of trial {trial_key!r}")
    return state.mlflow_uri, run.info.run_id


def evaluate_run(uri: str, run_id: str) -> Evaluation:
    """Rebuild the network a retrain run logged and evaluate it on its test set."""
    import torch
    from mlflow.tracking import MlflowClient

    from pcdarts_core import TrainConfig, Training, load_genotype

    with tempfile.TemporaryDirectory(prefix="pcdarts-network-") as folder:
        try:
            MlflowClient(uri).download_artifacts(run_id, NETWORK_ARTIFACTS, folder)
        except Exception as err:  # noqa: BLE001  MLflow raises several types for a missing artifact
            raise UserInputError(f"run {run_id}: no trained network in its artifacts ({err})") from None
        files = Path(folder) / NETWORK_ARTIFACTS
        config = TrainConfig.model_validate_json((files / "config.json").read_text())
        genotype = load_genotype(str(files / "genotype.json"))
        state = torch.load(files / TRAINED_WEIGHTS, map_location="cpu", weights_only=True)
    with Training(config, genotype) as training:  # its data as the run's settings say
        training.model.load_state_dict(state)
        loss, acc = training.evaluate_test()  # the test pass each retrain epoch ends with
    return Evaluation(run_id, float(loss), float(acc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.tracking.trained",
        description="Rebuild a study's retrained network from its MLflow run and evaluate it on the test set.",
    )
    parser.add_argument("--run-id", help="the retrain trial's MLflow run id (with --tracking-uri)")
    parser.add_argument("--tracking-uri", help="the MLflow tracking URI of --run-id")
    parser.add_argument("--study", type=Path, help="a study folder (with --trial)")
    parser.add_argument("--trial", help="a retrain trial's key, e.g. retrain-g01-seed0 (with --study)")
    args = parser.parse_args(argv)
    try:
        if args.study is not None and args.trial:
            uri, run_id = trial_run_id(args.study, args.trial)
        elif args.run_id and args.tracking_uri:
            uri, run_id = args.tracking_uri, args.run_id
        else:
            parser.error("give --run-id and --tracking-uri, or --study and --trial")
        result = evaluate_run(uri, run_id)
    except (UserInputError, OSError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"run {result.run_id}: test_acc {result.test_acc:.6f} (test_loss {result.test_loss:.6f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
