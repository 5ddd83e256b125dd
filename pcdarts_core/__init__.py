"""pcdarts_core: the PC-DARTS search core and the retraining of its genotypes, in plain PyTorch.

Knows nothing of Ray, MLflow or pandas; usable alone::

    from pcdarts_core import SearchConfig, TrainConfig, run_search, run_training
    found = run_search(SearchConfig(dataset="fashion_mnist_mini", epochs=3, warmup_epochs=1))
    trained = run_training(TrainConfig(dataset="fashion_mnist_mini", epochs=2), found.genotype)
    print(found.genotype, trained.test_acc, trained.cost.parameters)

Each name below is imported from its module on first use (:mod:`pcdarts_core.lazy_exports`), so the
settings, the genotypes and the errors come without torch. The command lines are in
:mod:`pcdarts_core.cli`; ``python -m pcdarts_core.search`` (``.train``, ``.show_genotype``,
``.probe``) runs them.
"""

from .lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".config": ("PROTOCOLS", "SearchConfig", "TrainConfig"),
        ".cost": ("NetworkCost", "count_multiply_adds", "count_parameters", "network_cost"),
        ".data": ("DATASETS", "DatasetBundle", "load_dataset"),
        ".errors": ("ConfigError", "DataError", "Diverged", "GenotypeError", "UserInputError"),
        ".genotype": ("GENOTYPE_OPS", "Genotype", "parse_genotype", "random_genotype"),
        ".known_genotypes": ("KNOWN_GENOTYPES", "load_genotype"),
        ".network": ("NetworkCIFAR", "NetworkImageNet"),
        ".records": ("EpochRecord", "TrainRecord"),
        ".search": ("Search", "SearchDiverged", "SearchResult", "run_search"),
        ".search_space": ("PARAMETER_FREE", "PRIMITIVES"),
        ".supernet": ("SearchNetwork", "channel_shuffle", "edge_normalization", "node_edge_slices"),
        ".train": ("Training", "TrainingDiverged", "TrainResult", "build_network", "run_training"),
    },
)
