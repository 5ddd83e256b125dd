"""``python -m pcdarts_core.train``: runs :func:`pcdarts_core.cli.train.main`, the retraining's command line."""

from ..cli import run_main
from ..cli.train import main

if __name__ == "__main__":
    run_main(main)
