"""The discrete architecture a search produces: a normal and a reduction cell.

A cell has ``steps`` intermediate nodes; node ``i`` (0-based) has exactly two
incoming edges, each an ``(operation, input)`` pair where input 0 and 1 are the
two previous cells' outputs and input ``j >= 2`` is intermediate node ``j-2``.
The cell's output concatenates the nodes listed in ``*_concat``.

Two interchange forms are supported:

* JSON (``to_json`` / ``from_json``), the form our tools write.
* The text form printed by the DARTS and PC-DARTS code, e.g.
  ``Genotype(normal=[('sep_conv_3x3', 1), ...], normal_concat=range(2, 6), ...)``,
  so published genotypes can be pasted in. The text is parsed with ``ast`` and
  checked node by node; it is never evaluated.
"""

from __future__ import annotations

import ast
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import GenotypeError
from .search_space import PRIMITIVES

#: The operations a genotype may use: every primitive except ``none``.
GENOTYPE_OPS: tuple[str, ...] = tuple(p for p in PRIMITIVES if p != "none")

Edge = tuple[str, int]

_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


@dataclass(frozen=True)
class Genotype:
    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        # Accept lists (and ``range``) but store tuples so genotypes hash and compare by value.
        for cell in ("normal", "reduce"):
            edges = []
            for i, edge in enumerate(getattr(self, cell)):
                if not (isinstance(edge, (tuple, list)) and len(edge) == 2 and isinstance(edge[0], str)):
                    raise GenotypeError(f"genotype.{cell}[{i}]={edge!r}: each edge must be an ('op', input) pair")
                edges.append((edge[0], _as_int(f"{cell}[{i}] input", edge[1])))
            object.__setattr__(self, cell, tuple(edges))
        for concat in ("normal_concat", "reduce_concat"):
            object.__setattr__(self, concat, tuple(_as_int(concat, v) for v in getattr(self, concat)))
        self.validate()

    @property
    def steps(self) -> int:
        return len(self.normal) // 2

    def nodes(self, cell: str) -> list[tuple[Edge, Edge]]:
        """The edges of cell ``"normal"`` or ``"reduce"`` grouped by node: node ``i`` gets
        edges ``2i`` and ``2i + 1``."""
        if cell not in ("normal", "reduce"):
            raise ValueError(f"cell must be 'normal' or 'reduce', got {cell!r}")
        edges = getattr(self, cell)
        return [(edges[2 * i], edges[2 * i + 1]) for i in range(len(edges) // 2)]

    def validate(self) -> None:
        """Raise GenotypeError unless both cells are well formed."""
        for cell in ("normal", "reduce"):
            edges = getattr(self, cell)
            if not edges or len(edges) % 2:
                raise GenotypeError(f"genotype.{cell}: needs two (op, input) edges per node, got {len(edges)} edges")
            for i, (op, idx) in enumerate(edges):
                allowed = ", ".join(GENOTYPE_OPS)
                if op == "none":
                    raise GenotypeError(
                        f"genotype.{cell}[{i}]: 'none' is not allowed in a genotype (it drops the edge); use one of "
                        f"{allowed}"
                    )
                if op not in PRIMITIVES:
                    raise GenotypeError(f"genotype.{cell}[{i}]: unknown operation {op!r}; use one of {allowed}")
                node = i // 2
                if not 0 <= idx < node + 2:
                    raise GenotypeError(
                        f"genotype.{cell}[{i}] ({op!r}, {idx}): input {idx} out of range for node {node}; "
                        f"it may only read inputs 0..{node + 1}"
                    )
        if len(self.normal) != len(self.reduce):
            raise GenotypeError(
                f"genotype: normal has {len(self.normal)} edges but reduce has {len(self.reduce)}; "
                "both cells need the same number of nodes"
            )
        for concat in ("normal_concat", "reduce_concat"):
            values = getattr(self, concat)
            states = self.steps + 2
            # Only intermediate nodes: a reduction cell's inputs are still at the larger resolution.
            if not values or any(not 2 <= v < states for v in values) or len(set(values)) != len(values):
                raise GenotypeError(
                    f"genotype.{concat}={list(values)}: needs distinct intermediate node indices in 2..{states - 1}, "
                    f"e.g. range(2, {states})"
                )

    # --- JSON -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "normal": [[op, idx] for op, idx in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, idx] for op, idx in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Genotype:
        if not isinstance(data, dict):
            raise GenotypeError(f"genotype JSON: expected an object with keys {', '.join(_FIELDS)}")
        missing = [k for k in _FIELDS if k not in data]
        unknown = sorted(set(data) - set(_FIELDS))
        if missing or unknown:
            raise GenotypeError(
                f"genotype JSON: missing keys {missing}, unknown keys {unknown}; expected exactly {list(_FIELDS)}"
            )
        edges = {}
        for cell in ("normal", "reduce"):
            value = data[cell]
            if not isinstance(value, list) or not all(
                isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[0], str) for e in value
            ):
                raise GenotypeError(f"genotype JSON: {cell} must be a list of [op, input] pairs")
            edges[cell] = [(e[0], e[1]) for e in value]
        for concat in ("normal_concat", "reduce_concat"):
            if not isinstance(data[concat], list):
                raise GenotypeError(f"genotype JSON: {concat} must be a list of node indices")
        return cls(edges["normal"], data["normal_concat"], edges["reduce"], data["reduce_concat"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise GenotypeError(f"genotype JSON: not valid JSON ({err})") from None
        return cls.from_dict(data)

    # --- DARTS text form ----------------------------------------------------------
    def to_text(self) -> str:
        """The DARTS/PC-DARTS ``Genotype(...)`` form."""
        return (
            f"Genotype(normal={_edges_text(self.normal)}, normal_concat={_concat_text(self.normal_concat)}, "
            f"reduce={_edges_text(self.reduce)}, reduce_concat={_concat_text(self.reduce_concat)})"
        )

    def __str__(self) -> str:
        return self.to_text()

    @classmethod
    def from_text(cls, text: str) -> Genotype:
        """Parse the DARTS text form (positional or keyword fields, lists or ``range``)."""
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as err:
            raise GenotypeError(
                f"genotype text: not a Genotype(...) expression ({err.msg} at column {err.offset})"
            ) from None
        call = tree.body
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"):
            raise GenotypeError(
                "genotype text: expected Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)"
            )
        if len(call.args) > len(_FIELDS):
            raise GenotypeError(f"genotype text: Genotype takes at most {len(_FIELDS)} fields")
        values: dict[str, Any] = dict(zip(_FIELDS, call.args))
        for kw in call.keywords:
            if kw.arg not in _FIELDS:
                raise GenotypeError(f"genotype text: unknown field {kw.arg!r}; expected {', '.join(_FIELDS)}")
            if kw.arg in values:
                raise GenotypeError(f"genotype text: field {kw.arg!r} given twice")
            values[kw.arg] = kw.value
        missing = [f for f in _FIELDS if f not in values]
        if missing:
            raise GenotypeError(f"genotype text: missing field(s) {', '.join(missing)}")
        return cls(
            normal=_parse_edges("normal", values["normal"]),
            normal_concat=_parse_concat("normal_concat", values["normal_concat"]),
            reduce=_parse_edges("reduce", values["reduce"]),
            reduce_concat=_parse_concat("reduce_concat", values["reduce_concat"]),
        )


def _as_int(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GenotypeError(f"genotype.{where}: expected an integer, got {value!r}")
    return value


def _edges_text(edges: Sequence[Edge]) -> str:
    return "[" + ", ".join(f"({op!r}, {idx})" for op, idx in edges) + "]"


def _concat_text(values: Sequence[int]) -> str:
    if len(values) > 1 and list(values) == list(range(values[0], values[-1] + 1)):
        return f"range({values[0]}, {values[-1] + 1})"
    return "[" + ", ".join(str(v) for v in values) + "]"


def _literal(field: str, node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise GenotypeError(f"genotype text: {field} must contain only literals") from None


def _parse_edges(field: str, node: ast.AST) -> list[Edge]:
    value = _literal(field, node)
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], str) for e in value
    ):
        raise GenotypeError(f"genotype text: {field} must be a list of ('op', input) pairs")
    return [tuple(e) for e in value]  # type: ignore[misc]


def _parse_concat(field: str, node: ast.AST) -> list[int]:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        if node.keywords or not 1 <= len(node.args) <= 2:
            raise GenotypeError(f"genotype text: {field} must be range(start, stop) or a list of ints")
        bounds = [_literal(field, a) for a in node.args]
        if not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
            raise GenotypeError(f"genotype text: {field} range bounds must be integers")
        return list(range(*bounds))
    value = _literal(field, node)
    if not isinstance(value, (list, tuple)):
        raise GenotypeError(f"genotype text: {field} must be range(start, stop) or a list of ints")
    return list(value)


def parse_genotype(text: str) -> Genotype:
    """Parse either JSON or the DARTS text form, whichever ``text`` is."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return Genotype.from_json(stripped)
    return Genotype.from_text(stripped)


def random_genotype(rng: random.Random | int, steps: int = 4) -> Genotype:
    """A uniformly random valid genotype: in each cell, each node reads two distinct inputs
    (uniform among the cell inputs and earlier nodes) through operations drawn uniformly from
    :data:`GENOTYPE_OPS`; every node is concatenated into the output. This is the random-
    architecture baseline of the search space, to be trained with the same protocol.

    ``rng`` is a :class:`random.Random` (advanced by the draw) or an integer seed.
    """
    if isinstance(rng, bool) or not isinstance(rng, (random.Random, int)):
        raise TypeError(f"rng must be a random.Random or an int seed, got {type(rng).__name__}")
    if isinstance(rng, int):
        rng = random.Random(rng)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    cells = {}
    for cell in ("normal", "reduce"):
        edges: list[Edge] = []
        for node in range(steps):
            for source in sorted(rng.sample(range(node + 2), 2)):
                edges.append((rng.choice(GENOTYPE_OPS), source))
        cells[cell] = edges
    concat = list(range(2, steps + 2))
    return Genotype(cells["normal"], concat, cells["reduce"], concat)
