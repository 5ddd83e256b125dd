"""pcdarts_core: the PC-DARTS search core in plain PyTorch.

Knows nothing of Ray, MLflow or pandas; usable alone::

    from pcdarts_core import SearchConfig, run_search
    result = run_search(SearchConfig(dataset="fashion_mnist_mini", epochs=3, warmup_epochs=1))
    print(result.genotype)
"""

from .config import SearchConfig
from .data import DATASETS, DatasetBundle, load_dataset
from .errors import ConfigError, DataError, GenotypeError, UserInputError
from .genotype import Genotype, parse_genotype
from .known_genotypes import KNOWN_GENOTYPES
from .operations import PARAMETER_FREE, PRIMITIVES
from .searcher import EpochRecord, Search, SearchDiverged, SearchResult, run_search
from .supernet import SearchNetwork, channel_shuffle, edge_normalization, node_edge_slices

__all__ = [
    "DATASETS",
    "KNOWN_GENOTYPES",
    "PARAMETER_FREE",
    "PRIMITIVES",
    "ConfigError",
    "DataError",
    "DatasetBundle",
    "EpochRecord",
    "Genotype",
    "GenotypeError",
    "Search",
    "SearchConfig",
    "SearchDiverged",
    "SearchNetwork",
    "SearchResult",
    "UserInputError",
    "channel_shuffle",
    "edge_normalization",
    "load_dataset",
    "node_edge_slices",
    "parse_genotype",
    "run_search",
]
