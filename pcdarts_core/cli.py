"""Shared command-line plumbing: flags generated from a pydantic config, exit code 2 on bad input."""

from __future__ import annotations

import argparse
import sys
import types
import typing
from typing import Any, Callable, Literal

from pydantic import BaseModel

from .errors import UserInputError

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
