"""Command-line flags generated from a pydantic config: one ``--field-name`` per field."""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel


def add_config_arguments(parser: argparse.ArgumentParser, model: type[BaseModel], group_title: str) -> None:
    """One ``--field-name`` flag per config field. Flags left out are absent from the parsed
    namespace (default SUPPRESS), so a caller can tell what the user actually set."""
    group = parser.add_argument_group(group_title)
    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        annotation = _strip_optional(field.annotation)
        help_text = f"{field.description or ''} (default: {field.default!r})".strip()
        if annotation is bool:
            group.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        elif typing.get_origin(annotation) is Literal:
            choices = typing.get_args(annotation)
            group.add_argument(flag, dest=name, choices=choices, default=argparse.SUPPRESS, help=help_text)
        else:
            group.add_argument(
                flag,
                dest=name,
                type=_parser_for(name, annotation),
                default=argparse.SUPPRESS,
                help=help_text,
                metavar=name.upper(),
            )


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
