"""Shared command-line plumbing: flags generated from a pydantic config, exit code 2 on bad input,
and the output folder, resume and progress bar of the commands that run epochs."""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, TypeVar

from pydantic import BaseModel
from tqdm import tqdm

from .checkpoint import atomic_write_text
from .errors import Diverged, UserInputError
from .outputs import CHECKPOINT

R = TypeVar("R")

EXIT_BAD_INPUT = 2


def add_config_arguments(parser: argparse.ArgumentParser, model: type[BaseModel], group_title: str) -> None:
    """One ``--field-name`` flag per config field. Flags left out are absent from the parsed
    namespace (default SUPPRESS), so a caller can tell what the user actually set."""
    group = parser.add_argument_group(group_title)
    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        annotation = _strip_optional(field.annotation)
        help_text = f"{field.description or ''} (default: {field.default!r})".strip()
        if annotation is bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        elif typing.get_origin(annotation) is Literal:
            choices = typing.get_args(annotation)
            group.add_argument(flag, dest=name, choices=choices, default=argparse.SUPPRESS, help=help_text)
        else:
            group.add_argument(flag, dest=name, type=_parser_for(name, annotation), default=argparse.SUPPRESS, help=help_text, metavar=name.upper())


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _parser_for(name: str, annotation: Any) -> Callable[[str], Any]:
    if annotation in (int, float):
        def parse(text: str) -> Any:
            try:
                return annotation(text)
            except ValueError:
                kind = "an integer" if annotation is int else "a number"
                raise argparse.ArgumentTypeError(f"--{name.replace('_', '-')}: {text!r} is not {kind}") from None
        return parse
    return str


def config_overrides(namespace: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The config fields the user set on the command line."""
    return {name: value for name, value in vars(namespace).items() if name in model.model_fields}


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Run a CLI ``main``; bad input becomes one line on stderr and exit code 2."""
    try:
        code = main(argv)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


# --- runs with an output folder (search and train) ---------------------------------

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
        raise UserInputError(f"--out {out}: already holds a {kind}; pass --resume to continue it or choose another --out")
    return start()


def run_epochs(
    run: Any,
    out: Path,
    *,
    quiet: bool,
    desc: str,
    intro: str,
    save: Callable[[], None],
    postfix: Callable[[Any], dict[str, str]],
    describe: Callable[[Any], str],
) -> int:
    """Run the remaining epochs of ``run`` (a Search or a Training) with a progress bar, calling
    ``save()`` after each and printing ``describe(record)``. Returns the exit code: 0 when done,
    1 when the run diverged, 130 when interrupted; the last good epoch is saved in every case."""
    steps = run.steps_per_epoch
    bar = tqdm(
        total=run.config.epochs * steps,
        initial=run.epoch * steps,
        disable=quiet,
        unit="step",
        desc=desc,
        file=sys.stderr,
        dynamic_ncols=True,
    )
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
        saved = f"the last good epoch ({run.epoch}) is saved in {out / CHECKPOINT}" if run.epoch else "no epoch finished, nothing was saved"
        print(f"error: {err}; {saved}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted after epoch {run.epoch}; continue with --resume --out {out}", file=sys.stderr)
        return 130
    bar.close()
    return 0
