"""``python -m pcdarts_core.search``: runs :func:`pcdarts_core.cli.search.main`, the search's command line."""

from ..cli import run_main
from ..cli.search import main

if __name__ == "__main__":
    run_main(main)
