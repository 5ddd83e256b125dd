"""``python -m pcdarts_core.show_genotype SOURCE``: runs :func:`pcdarts_core.cli.show_genotype.main`.

An entry point only: the command is in :mod:`pcdarts_core.cli.show_genotype`, the genotypes in
:mod:`pcdarts_core.genotype` and :mod:`pcdarts_core.known_genotypes`.
"""

from .cli import run_main
from .cli.show_genotype import main

if __name__ == "__main__":
    run_main(main)
