"""The core's command lines, one module per command, and what every command shares: :func:`run_main`
(bad input is one line on stderr and exit code :data:`EXIT_BAD_INPUT`), also used by the orchestrator.

* :mod:`pcdarts_core.cli.search`: one search (``python -m pcdarts_core.search``);
* :mod:`pcdarts_core.cli.train`: one retraining of a genotype (``python -m pcdarts_core.train``);
* :mod:`pcdarts_core.cli.show_genotype`: check and print a genotype (``python -m pcdarts_core.show_genotype``);
* :mod:`pcdarts_core.cli.probe`: the peak GPU memory of one trial, as JSON (``python -m pcdarts_core.probe``);
* :mod:`pcdarts_core.data.subset`: a per-class sample of an image folder for the ImageNet search
  (``python -m pcdarts_core.data.subset``), a data tool kept with the data.

Each command also runs as ``python -m pcdarts_core.cli.<command>``. The short forms follow one rule: a
module named for a thing holds that thing. The packages :mod:`pcdarts_core.search`,
:mod:`pcdarts_core.train` and :mod:`pcdarts_core.probe` hold the library (``Search``, ``Training``,
the memory probe), and their ``__main__`` only runs the command from here (as ``python -m venv``
does); ``show_genotype`` has no library half, so :mod:`pcdarts_core.show_genotype` is only the entry
point. This package imports neither its commands nor torch, so each command module runs once.
:mod:`~pcdarts_core.cli.config_flags` makes the flags of a config; :mod:`~pcdarts_core.cli.epoch_runs`
holds the output folder, resume and progress bar of the commands that run epochs.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable

from ..errors import UserInputError

EXIT_BAD_INPUT = 2


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Run a CLI ``main``; bad input becomes one line on stderr and exit code 2, and a warning one line
    ``warning: ...`` (without Python's file and source line). Output piped into a reader that stops early
    (``| head``) ends the command quietly, as other command-line tools do."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line
            code = main(argv)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:
        # the reader closed stdout: nothing more can be said there, and Python must not fail flushing it at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 141  # 128 + SIGPIPE, what the shell reports for a command a pipe stopped
    sys.exit(code)


def _one_line(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    print(f"warning: {message}", file=sys.stderr)
