"""The search stage: one PC-DARTS search per grid point, as one Tune experiment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.train.torch import get_device

from pcdarts_core import Genotype, Search, SearchConfig, TrainConfig, build_network, network_cost
from pcdarts_core.data import DatasetBundle, dataset_shape
from pcdarts_core.distributed import Ranks

from ..trial import Trial
from .context import StageContext
from .train_workers import Workers, run_on_workers, train_report, worker_checkpoint
from .trainable import report_epochs, restore, start
from .tune_stage import TuneStage


def search_trial(params: dict[str, Any]) -> None:
    """Tune trainable: one search. ``params["trial"]`` holds its key and SearchConfig; ``params["workers"]``,
    when present, the Ray Train workers that run it (:mod:`.train_workers`)."""
    trial = Trial.from_param(params)
    if "workers" in params:
        run_on_workers(search_worker, params, Workers(**params["workers"]), trial.key)
        return
    config = SearchConfig(**trial.config)
    data = start(params, config)
    search = restore(Search, data) or Search(config, data=data)
    report_epochs(search, _final(trial, data), trial.key)


def search_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train worker: its process's part of one search on several (``loop_config`` from
    :func:`~.train_workers.run_on_workers`), on the device Ray Train gave it."""
    params = loop_config["params"]
    trial = Trial.from_param(params)
    config = SearchConfig(**trial.config)
    if config.device == "auto":
        config = config.replace(device=str(get_device()))
    data = start(params, config)
    ranks = Ranks.current()
    checkpoint = worker_checkpoint(loop_config)
    if checkpoint is not None:
        search = restore(Search, data, checkpoint, ranks=ranks, device=config.device)
    else:
        search = Search(config, data=data, ranks=ranks)
    report_epochs(search, _final(trial, data), trial.key, report=train_report)


def _final(trial: Trial, data: DatasetBundle) -> Callable[[Search], dict[str, Any]]:
    """The values a search trial reports with its last epoch."""
    cost_config = TrainConfig(**trial.retrain_config)

    def final(run: Search) -> dict[str, Any]:
        genotype = run.genotype()
        return {
            "genotype": genotype.to_text(),
            **_genotype_cost(cost_config, genotype, data, run.config),
            # measured once, on the trial's device: the same for every seed of a setting
            "activation_bytes_per_image": run.activation_bytes_per_image(),
        }

    return final


def _genotype_cost(
    config: TrainConfig, genotype: Genotype, data: DatasetBundle, search: SearchConfig
) -> dict[str, int]:
    """Parameters and multiply-adds of the network the study retrains from ``genotype``: on the search's data,
    or on the retraining's own (``retrain.dataset``: its classes, channels and image size, read without its
    images)."""
    if (config.dataset, config.data_root, config.image_size) == (search.dataset, search.data_root, search.image_size):
        classes, channels, size = data.num_classes, data.in_channels, data.image_size
    else:
        classes, channels, size = dataset_shape(config.dataset, config.data_root, config.image_size)
    network = build_network(config, genotype, classes, channels)
    cost = network_cost(network, (channels, size, size))
    return {"parameters": cost.parameters, "multiply_adds": cost.multiply_adds}


def _trials(context: StageContext) -> list[Trial]:
    return context.plan.search_trials()


SEARCH = TuneStage(
    "search",
    _trials,
    search_trial,
    metric="valid_acc",
    mode="max",
    workers=lambda spec: spec.resources.workers_per_trial,
)
