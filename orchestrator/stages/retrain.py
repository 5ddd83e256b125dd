"""The retrain stage: each selected genotype and each random baseline, with every retrain seed, as one
Tune experiment."""

from __future__ import annotations

from typing import Any

from pcdarts_core import Genotype, TrainConfig, Training

from ..study_files import SELECTION_FILE
from ..trial import Trial
from .context import StageContext
from .trainable import report_epochs, restore, start
from .tune_stage import TuneStage


def retrain_trial(params: dict[str, Any]) -> None:
    """Tune trainable: one retraining of a genotype. ``params["trial"]`` holds its TrainConfig and genotype."""
    trial = Trial.from_param(params)
    config = TrainConfig(**trial.config)
    data = start(params, config)
    genotype = Genotype.from_dict(trial.genotype)
    training = restore(Training, data) or Training(config, genotype, data=data)

    def final(run: Training) -> dict[str, Any]:
        return {
            "genotype": run.genotype().to_text(),
            "parameters": run.cost.parameters,
            "multiply_adds": run.cost.multiply_adds,
        }

    report_epochs(training, final, trial.key)


def _trials(context: StageContext) -> list[Trial]:
    # imported here, on the driver: each Ray worker imports this module for its trainable, and the report
    # package would cost it seconds
    from ..report import read_table

    return context.plan.retrain_trials(read_table(context.folder / SELECTION_FILE))


RETRAIN = TuneStage(
    "retrain",
    _trials,
    retrain_trial,
    metric="test_acc",
    mode="max",
    nothing_to_run="nothing to retrain (no search finished, no baseline asked for)",
)
