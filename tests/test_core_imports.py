"""How pcdarts_core imports: every exported name resolves on first use, the settings and genotypes
come without torch, and each ``python -m`` entry point runs its module once (no runpy warning)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pcdarts_core
import pcdarts_core.data

#: What ``python -m`` runs: the entry points users type and the command modules themselves.
ENTRY_MODULES = (
    "pcdarts_core.search.__main__",
    "pcdarts_core.train.__main__",
    "pcdarts_core.probe.__main__",
    "pcdarts_core.show_genotype",
    "pcdarts_core.cli.search",
    "pcdarts_core.cli.train",
    "pcdarts_core.cli.probe",
    "pcdarts_core.cli.show_genotype",
    "pcdarts_core.data.subset",
)


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


@pytest.mark.parametrize("package", [pcdarts_core, pcdarts_core.data], ids=lambda p: p.__name__)
def test_every_exported_name_resolves_and_is_listed(package):
    assert len(package.__all__) == len(set(package.__all__))
    for name in package.__all__:
        assert getattr(package, name) is not None
        assert name in dir(package)
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        package.nothing_here  # noqa: B018


def test_the_exports_of_the_package_are_those_it_always_had():
    assert sorted(pcdarts_core.__all__) == sorted(
        "DATASETS GENOTYPE_OPS KNOWN_GENOTYPES PARAMETER_FREE PRIMITIVES PROTOCOLS ConfigError DataError "
        "DatasetBundle Diverged EpochRecord Genotype GenotypeError NetworkCIFAR NetworkCost NetworkImageNet Search "
        "SearchConfig SearchDiverged SearchNetwork SearchResult TrainConfig TrainRecord TrainResult Training "
        "TrainingDiverged UserInputError build_network channel_shuffle count_multiply_adds count_parameters "
        "edge_normalization load_dataset load_genotype network_cost node_edge_slices parse_genotype random_genotype "
        "run_search run_training".split()
    )


def test_settings_genotypes_and_the_cli_plumbing_import_without_torch():
    loaded = _python(
        "import sys\n"
        "import pcdarts_core.config, pcdarts_core.cli\n"
        "from pcdarts_core import (PROTOCOLS, DATASETS, KNOWN_GENOTYPES, PRIMITIVES, ConfigError, EpochRecord,\n"
        "    SearchConfig, TrainConfig, parse_genotype, random_genotype)\n"
        "SearchConfig(k=2); TrainConfig.protocol('imagenet')\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    assert loaded == "[]"


def test_no_entry_module_is_imported_by_the_library_or_its_packages():
    """runpy warns (and the module runs twice) when ``python -m X`` finds X already imported by its package."""
    loaded = _python(
        "import sys\n"
        "import pcdarts_core, pcdarts_core.cli, pcdarts_core.search, pcdarts_core.train, pcdarts_core.probe\n"
        "from pcdarts_core import *\n"
        f"print([m for m in {ENTRY_MODULES!r} if m in sys.modules])\n"
    )
    assert loaded == "[]"


def test_the_command_runs_the_same_as_its_cli_module_without_a_runpy_warning():
    outputs = []
    for module in ("pcdarts_core.show_genotype", "pcdarts_core.cli.show_genotype"):
        done = subprocess.run(
            [sys.executable, "-W", "error::RuntimeWarning", "-m", module, "PC_DARTS_cifar", "--format", "summary"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr[-3000:]
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] and outputs[0].startswith("normal: 8 edges")
