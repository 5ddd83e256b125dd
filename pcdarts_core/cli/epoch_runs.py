"""What the commands that run epochs into an output folder share (search and train): ``--out``,
``--resume`` and ``--quiet``, starting or resuming the run there, and the progress bar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from ..errors import Diverged, UserInputError
from ..outputs import CHECKPOINT
from ..runner import EpochRunner

R = TypeVar("R")


def add_run_arguments(parser: argparse.ArgumentParser, kind: str, resumable: Iterable[str]) -> None:
    """``--out``, ``--resume`` and ``--quiet``, shared by the commands that run epochs into a folder."""
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--resume",
        action="store_true",
        help=f"continue the {kind} saved in --out/{CHECKPOINT}; settings may be repeated, and only "
        + ", ".join("--" + name.replace("_", "-") for name in sorted(resumable))
        + " may change",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar, only the final result")


def open_run(out: Path, resume: bool, kind: str, resume_from: Callable[[Path], R], start: Callable[[], R]) -> R:
    """Resume the run saved in ``out`` or start a new one there, refusing to mix the two up."""
    checkpoint = out / CHECKPOINT
    if resume:
        if not checkpoint.is_file():
            raise UserInputError(f"--resume: {checkpoint} does not exist; run without --resume to start a {kind} there")
        return resume_from(checkpoint)
    if checkpoint.exists():
        raise UserInputError(
            f"--out {out}: already holds a {kind}; pass --resume to continue it or choose another --out"
        )
    return start()


def run_epochs(
    run: EpochRunner,
    out: Path,
    *,
    quiet: bool,
    desc: str,
    intro: str,
    save: Callable[[], None],
    postfix: Callable[[Any], dict[str, str]],
    describe: Callable[[Any], str],
    main: bool = True,
) -> int:
    """Run the remaining epochs of ``run`` (a Search or a Training) with a progress bar, calling
    ``save()`` after each and printing ``describe(record)``. Returns the exit code: 0 when done,
    1 when the run diverged, 130 when interrupted; the last good epoch is saved in every case.
    Only the ``main`` one of several processes prints (its bar unless ``quiet``, and how the run ended)."""
    steps = run.steps_per_epoch
    bar = tqdm(
        total=run.config.epochs * steps,
        initial=run.epoch * steps,
        disable=quiet or not main,
        unit="step",
        desc=desc,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    quiet = quiet or not main
    if not quiet:
        bar.write(intro)
    try:
        for record in run.epochs(on_step=lambda step, total: bar.update(1)):
            save()
            bar.set_postfix(postfix(record))
            if not quiet:
                bar.write(describe(record))
    except Diverged as err:
        bar.close()
        saved = (
            f"the last good epoch ({run.epoch}) is saved in {out / CHECKPOINT}"
            if run.epoch
            else "no epoch finished, nothing was saved"
        )
        if main:
            print(f"error: {err}; {saved}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.close()
        if main:
            print(f"interrupted after epoch {run.epoch}; continue with --resume --out {out}", file=sys.stderr)
        return 130
    bar.close()
    return 0
