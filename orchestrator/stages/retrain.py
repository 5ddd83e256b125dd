"""The retrain stage: each selected genotype and each baseline (published and random cells), with every retrain
seed, as one Tune experiment. Its trainable also runs the screen's short retrainings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pcdarts_core import Genotype, TrainConfig, Training
from pcdarts_core.outputs import write_config, write_genotype

from ..study_files import SELECTION_FILE
from ..trial import Trial
from .context import StageContext
from .rows import FINAL_FILES, TRAINED_WEIGHTS
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

    report_epochs(training, final, trial.key, final_files=write_trained_network)


def write_trained_network(run: Training, folder: Path) -> None:
    """The trained network, into the final checkpoint's ``FINAL_FILES`` folder: its weights (a ``state_dict``,
    loadable with ``weights_only=True``), its settings (``config.json``) and its genotype."""
    out = folder / FINAL_FILES
    write_config(out, run.config)
    write_genotype(out, run.genotype())
    torch.save({name: value.detach().cpu() for name, value in run.model.state_dict().items()}, out / TRAINED_WEIGHTS)


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
