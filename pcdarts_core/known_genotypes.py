"""Published genotypes, as printed in the DARTS (Liu et al., 2019) and PC-DARTS (Xu et al., 2020) code,
and ``load_genotype``, which takes a genotype by name, from a file, or as text."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from .errors import GenotypeError
from .genotype import Genotype, parse_genotype

_PUBLISHED_TEXT = {
    "DARTS_V1": (
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
        "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, "
        "5], "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, "
        "5])"
    ),
    "DARTS_V2": (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, "
        "5], "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, "
        "5])"
    ),
    "PC_DARTS_cifar": (
        "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), "
        "('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, "
        "6), "
        "reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), "
        "('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, "
        "6))"
    ),
    "PC_DARTS_image": (
        "Genotype(normal=[('skip_connect', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('skip_connect', 1), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('dil_conv_5x5', 4)], normal_concat=range(2, "
        "6), "
        "reduce=[('sep_conv_3x3', 0), ('skip_connect', 1), ('dil_conv_5x5', 2), ('max_pool_3x3', 1), "
        "('sep_conv_3x3', 2), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 3)], reduce_concat=range(2, "
        "6))"
    ),
}

#: The published text of each known genotype, exactly as the authors' code prints it.
PUBLISHED_TEXT = MappingProxyType(_PUBLISHED_TEXT)

#: Known genotypes by name (read-only).
KNOWN_GENOTYPES: MappingProxyType[str, Genotype] = MappingProxyType(
    {name: Genotype.from_text(text) for name, text in _PUBLISHED_TEXT.items()}
)


def load_genotype(source: str) -> Genotype:
    """A genotype from a known name (``KNOWN_GENOTYPES``), a file (JSON or text form) or the text itself."""
    if source in KNOWN_GENOTYPES:
        return KNOWN_GENOTYPES[source]
    stripped = source.strip()
    if _is_file(source):
        path = Path(source).expanduser()
        try:
            stripped = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise GenotypeError(f"genotype file {path}: cannot be read ({err})") from None
    elif not stripped.startswith(("{", "Genotype")):
        raise GenotypeError(
            f"genotype {source!r}: neither a known name ({', '.join(KNOWN_GENOTYPES)}), "
            "nor a file, nor Genotype(...) text or JSON; give one of those"
        )
    return parse_genotype(stripped)


def _is_file(source: str) -> bool:
    try:
        return Path(source).expanduser().is_file()
    except (OSError, ValueError):  # genotype text is no valid path: too long, NUL bytes, ...
        return False
