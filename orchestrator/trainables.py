"""The Ray Tune trainables: one search trial, one retraining trial.

Each runs the core's epoch loop and reports after every epoch with a checkpoint of the
complete run state, so that a retried or restored trial continues from its last epoch
(Ray Tune's own restore: ``tune.get_checkpoint()``). A diverged run is not an error of
the study: it reports ``trial_status="diverged"`` and ends, so the study goes on and the
report lists it. Trials write nothing to MLflow: the driver does (see ``tracking``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from pcdarts_core import (
    Diverged,
    Genotype,
    Search,
    SearchConfig,
    TrainConfig,
    Training,
    build_network,
    load_dataset,
    network_cost,
)
from pcdarts_core.outputs import CHECKPOINT
from pcdarts_core.data import DatasetBundle
from pcdarts_core.runner import EpochRunner

FINISHED, DIVERGED = "finished", "diverged"
#: Test-only: ``TRIAL_KEY:EPOCH``, the trial whose weights become NaN before that epoch (see the module docstring).
TEST_NAN_ENV = "PCDARTS_TEST_NAN_AT"


def search_trial(params: dict[str, Any]) -> None:
    """Tune trainable: one search. ``params["trial"]`` holds its key and SearchConfig."""
    trial = params["trial"]
    config = SearchConfig(**trial["config"])
    data = _start(params, config)
    search = _restore(Search, data) or Search(config, data=data)

    def final(run: Search) -> dict[str, Any]:
        genotype = run.genotype()
        return {"genotype": genotype.to_text(), **_genotype_cost(TrainConfig(**trial["retrain_config"]), genotype, data)}

    _report_epochs(search, final, trial["key"])


def retrain_trial(params: dict[str, Any]) -> None:
    """Tune trainable: one retraining of a genotype. ``params["trial"]`` holds its TrainConfig and genotype."""
    trial = params["trial"]
    config = TrainConfig(**trial["config"])
    data = _start(params, config)
    genotype = Genotype.from_dict(trial["genotype"])
    training = _restore(Training, data) or Training(config, genotype, data=data)

    def final(run: Training) -> dict[str, Any]:
        return {"genotype": run.genotype().to_text(), "parameters": run.cost.parameters, "multiply_adds": run.cost.multiply_adds}

    _report_epochs(training, final, trial["key"])


def _start(params: dict[str, Any], config: SearchConfig | TrainConfig) -> DatasetBundle:
    torch.set_num_threads(max(1, int(params.get("threads", 1))))
    return load_dataset(config.dataset, config.data_root, download=config.download, image_size=config.image_size)


def _restore(kind: type[EpochRunner], data: DatasetBundle) -> Any:
    """The run saved in this trial's latest checkpoint (after a retry or a restored study), or None."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return kind.resume(Path(folder) / CHECKPOINT, data=data)


def _report_epochs(run: Any, final: Any, key: str) -> None:
    """Run the remaining epochs, reporting each with a checkpoint; the last report carries the final values."""
    where = _where()
    nan_at = _test_nan_epoch(key)
    reported = False
    try:
        while not run.done:
            if nan_at == run.epoch + 1:
                _poison(run)
            record = run.run_epoch()
            metrics = {**_scalars(record), **where, "trial_status": FINISHED if run.done else "running"}
            if run.done:
                metrics.update(final(run))
            with tempfile.TemporaryDirectory(prefix="pcdarts-ckpt-") as folder:
                run.save(Path(folder) / CHECKPOINT)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            reported = True
    except Diverged as err:
        tune.report({"epoch": run.epoch, **where, "trial_status": DIVERGED, "error": str(err)})
        return
    if not reported and run.history:  # restored after its last epoch was saved: report the final values again
        tune.report({**_scalars(run.history[-1]), **where, "trial_status": FINISHED, **final(run)})


def _where() -> dict[str, Any]:
    """The Ray node and the worker process running this trial."""
    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(), "worker_pid": os.getpid()}


def _test_nan_epoch(key: str) -> int | None:
    """The epoch before which this trial's weights are poisoned (test-only setting), or None."""
    target, _, epoch = os.environ.get(TEST_NAN_ENV, "").rpartition(":")
    return int(epoch) if target == key and epoch.isdigit() else None


@torch.no_grad()
def _poison(run: Any) -> None:
    """Test-only: every weight NaN, so the epoch's loss is NaN and the core's divergence check stops the run."""
    for parameter in run.model.parameters():
        parameter.fill_(float("nan"))


def _scalars(record: Any) -> dict[str, Any]:
    return {name: value for name, value in record.scalars().items() if value is not None}


def _genotype_cost(config: TrainConfig, genotype: Genotype, data: DatasetBundle) -> dict[str, int]:
    """Parameters and multiply-adds of the network the study retrains from ``genotype``."""
    network = build_network(config, genotype, data.num_classes, data.in_channels)
    cost = network_cost(network, (data.in_channels, data.image_size, data.image_size))
    return {"parameters": cost.parameters, "multiply_adds": cost.multiply_adds}
