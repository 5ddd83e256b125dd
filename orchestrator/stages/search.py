"""The search stage: one PC-DARTS search per grid point, as one Tune experiment."""

from __future__ import annotations

from typing import Any

from pcdarts_core import Genotype, Search, SearchConfig, TrainConfig, build_network, network_cost
from pcdarts_core.data import DatasetBundle, dataset_shape

from ..trial import Trial
from .context import StageContext
from .trainable import report_epochs, restore, start
from .tune_stage import TuneStage


def search_trial(params: dict[str, Any]) -> None:
    """Tune trainable: one search. ``params["trial"]`` holds its key and SearchConfig."""
    trial = Trial.from_param(params)
    config = SearchConfig(**trial.config)
    data = start(params, config)
    search = restore(Search, data) or Search(config, data=data)
    cost_config = TrainConfig(**trial.retrain_config)

    def final(run: Search) -> dict[str, Any]:
        genotype = run.genotype()
        return {
            "genotype": genotype.to_text(),
            **_genotype_cost(cost_config, genotype, data, config),
            # measured once, on the trial's device: the same for every seed of a setting
            "activation_bytes_per_image": run.activation_bytes_per_image(),
        }

    report_epochs(search, final, trial.key)


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


SEARCH = TuneStage("search", _trials, search_trial, metric="valid_acc", mode="max")
