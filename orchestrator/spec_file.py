"""The study spec as given on the command line: a YAML file, read safely, and ``--set`` overrides on
top of it, validated by :func:`orchestrator.spec.parse_spec`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError
from .spec import StudySpec, parse_spec


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``--set a.b=value`` overrides; the value is read as YAML (``5``, ``true``, ``[1, 4]``)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        path, sep, text = item.partition("=")
        keys = path.strip().split(".")
        if not sep or not all(keys):
            raise SpecError("", f"{item!r}: write KEY.PATH=VALUE, e.g. --set search.epochs=5", source="--set")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise SpecError(
                path, f"{text!r} is not a YAML value ({' '.join(str(err).split())[:120]})", source="--set"
            ) from None
        node = raw
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise SpecError(path, f"{where} is a value, not a section: set {where}=VALUE instead", source="--set")
            node = child
        node[keys[-1]] = value
    return raw


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SpecError("", "no such file; give a study YAML, e.g. experiments/quickstart.yaml", source=str(path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SpecError("", f"not valid YAML: {' '.join(str(err).split())[:200]}", source=str(path)) from None
    if not isinstance(raw, dict):
        raise SpecError("", "the top level must be a mapping with name, dataset, search, ...", source=str(path))
    return raw


def load_spec(path: Path, overrides: list[str] | None = None) -> tuple[StudySpec, dict[str, Any]]:
    """The validated spec of a YAML file with ``--set`` overrides, and the raw dictionary it came from."""
    raw = apply_overrides(read_yaml(path), overrides or [])
    return parse_spec(raw, source=str(path)), raw
