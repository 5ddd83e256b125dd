"""The DARTS search space by name, without torch: the candidate operations and the supernet shapes
that can be built.

``PRIMITIVES`` fixes the order of the operations; the columns of the architecture parameters α
follow it. Genotypes, settings and reports need only these names; :mod:`pcdarts_core.operations`
builds the operations and :mod:`pcdarts_core.supernet` the supernet.
"""

from __future__ import annotations

from .errors import ConfigError

PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

#: Operations without learnable weights (the DARTS failure mode collects these).
PARAMETER_FREE: frozenset[str] = frozenset({"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"})


def check_supernet_shape(*, C: int, k: int, layers: int, steps: int, multiplier: int) -> None:
    """Raise ConfigError for a supernet that cannot be built."""
    for name, value in (("C", C), ("k", k), ("layers", layers), ("steps", steps), ("multiplier", multiplier)):
        if value < 1:
            raise ConfigError(name, value, "must be a positive integer")
    if layers < 3:
        raise ConfigError(
            "layers",
            layers,
            "the supernet needs at least 3 cells (two reduction cells and a normal one); use layers >= 3",
        )
    if C % k:
        divisors = ", ".join(str(d) for d in range(1, C + 1) if C % d == 0)
        raise ConfigError("k", k, f"K must divide C={C}; use one of {divisors}")
    if multiplier > steps:
        raise ConfigError("multiplier", multiplier, f"a cell concatenates at most its {steps} nodes; use <= steps")
