"""Reader for MNIST-style IDX files (plain or gzip-compressed).

An IDX file starts with a 4-byte magic number ``00 00 TT DD`` (``TT`` is the
element type, ``DD`` the number of dimensions), then ``DD`` big-endian uint32
sizes, then the data. Only unsigned-byte data (type ``0x08``) is supported,
which is what MNIST and Fashion-MNIST use: images have magic 2051 (3 dims),
labels magic 2049 (1 dim).
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from pcdarts_core.errors import DataError

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "read_idx", "read_idx_images", "read_idx_labels"]

_UBYTE = 0x08
IMAGES_MAGIC = 0x00000803  # 2051: ubyte, 3 dims (N, H, W)
LABELS_MAGIC = 0x00000801  # 2049: ubyte, 1 dim (N,)
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """Return the (decompressed) contents of ``path``."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if raw[:2] == _GZIP_MAGIC:
            return gzip.decompress(raw)
        return raw
    except FileNotFoundError:
        raise DataError(f"{path}: IDX file not found: check the path") from None
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read IDX file ({err}): re-download or re-extract it") from None


def _parse_header(path: Path, raw: bytes) -> tuple[tuple[int, ...], int]:
    """Validate the header; return (shape, data offset)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number): re-download or re-extract it")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != _UBYTE:
        raise DataError(
            f"{path}: IDX element type 0x{dtype_code:02x} is not supported (only unsigned bytes, 0x08): "
            "use an MNIST-style uint8 file"
        )
    offset = 4 + 4 * ndim
    if ndim == 0 or len(raw) < offset:
        raise DataError(f"{path}: truncated IDX header: re-download or re-extract it")
    shape = struct.unpack(f">{ndim}I", raw[4:offset])
    return tuple(int(s) for s in shape), offset


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an unsigned-byte IDX file (plain or .gz) into a uint8 array of its declared shape."""
    path = Path(path)
    raw = _read_bytes(path)
    shape, offset = _parse_header(path, raw)
    expected = int(np.prod(shape, dtype=np.int64))
    got = len(raw) - offset
    if got != expected:
        raise DataError(
            f"{path}: IDX header declares shape {shape} ({expected} bytes) but the file holds {got}: "
            "re-download or re-extract it"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape).copy()


def _read_with_magic(path: str | os.PathLike, magic: int, what: str) -> np.ndarray:
    """Read ``path`` and check that its magic number is ``magic``."""
    path = Path(path)
    arr = read_idx(path)
    got = (_UBYTE << 8) | arr.ndim
    if got != magic:
        raise DataError(f"{path}: magic number {got} is not {magic} ({what}): pass the {what} file here")
    return arr


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX image file (magic 2051) -> uint8 array N×H×W."""
    return _read_with_magic(path, IMAGES_MAGIC, "images")


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX label file (magic 2049) -> uint8 array N."""
    return _read_with_magic(path, LABELS_MAGIC, "labels")
