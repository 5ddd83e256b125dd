"""pcdarts_core: the PC-DARTS search core and the retraining of its genotypes, in plain PyTorch.

Knows nothing of Ray, MLflow or pandas; usable alone::

    from pcdarts_core import SearchConfig, TrainConfig, run_search, run_training
    found = run_search(SearchConfig(dataset="fashion_mnist_mini", epochs=3, warmup_epochs=1))
    trained = run_training(TrainConfig(dataset="fashion_mnist_mini", epochs=2), found.genotype)
    print(found.genotype, trained.test_acc, trained.cost.parameters)
"""

from .config import SearchConfig
from .cost import NetworkCost, count_multiply_adds, count_parameters, network_cost
from .data import DATASETS, DatasetBundle, load_dataset
from .errors import ConfigError, DataError, Diverged, GenotypeError, UserInputError
from .genotype import GENOTYPE_OPS, Genotype, parse_genotype, random_genotype
from .known_genotypes import KNOWN_GENOTYPES, load_genotype
from .network import NetworkCIFAR, NetworkImageNet
from .operations import PARAMETER_FREE, PRIMITIVES
from .records import EpochRecord, TrainRecord
from .searcher import Search, SearchDiverged, SearchResult, run_search
from .supernet import SearchNetwork, channel_shuffle, edge_normalization, node_edge_slices
from .train_config import PROTOCOLS, TrainConfig
from .trainer import Training, TrainingDiverged, TrainResult, build_network, run_training

__all__ = [
    "DATASETS",
    "GENOTYPE_OPS",
    "KNOWN_GENOTYPES",
    "PARAMETER_FREE",
    "PRIMITIVES",
    "PROTOCOLS",
    "ConfigError",
    "DataError",
    "DatasetBundle",
    "Diverged",
    "EpochRecord",
    "Genotype",
    "GenotypeError",
    "NetworkCIFAR",
    "NetworkCost",
    "NetworkImageNet",
    "Search",
    "SearchConfig",
    "SearchDiverged",
    "SearchNetwork",
    "SearchResult",
    "TrainConfig",
    "TrainRecord",
    "TrainResult",
    "Training",
    "TrainingDiverged",
    "UserInputError",
    "build_network",
    "channel_shuffle",
    "count_multiply_adds",
    "count_parameters",
    "edge_normalization",
    "load_dataset",
    "load_genotype",
    "network_cost",
    "node_edge_slices",
    "parse_genotype",
    "random_genotype",
    "run_search",
    "run_training",
]
