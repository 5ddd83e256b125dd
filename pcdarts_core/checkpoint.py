"""Atomic file writes and safe checkpoint loading.

Every file is written to a temporary name in the same folder, flushed to disk
and then renamed over the target, so a crash or a full disk leaves either the
old file or the new one, never a torn one. Checkpoints load with
``weights_only=True``: tensors and plain containers only, no pickled code.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import UserInputError


class WriteError(UserInputError):
    """A file could not be written (full disk, read-only or missing folder); the previous file is intact."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, synced, then renamed.
    A failed write (full disk, no permission) removes the temporary file, leaves any previous file
    as it was and raises :class:`WriteError` naming the path."""
    path = Path(path)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            kept = "the previous file is unchanged" if path.exists() else "nothing was written"
            raise WriteError(
                f"cannot write {path} ({err.strerror or err}); {kept}: free space there or choose a folder you can "
                "write to"
            ) from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Serialise ``state`` in memory first, then write it atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", data: bytes | None = None
) -> dict[str, Any]:
    """The state saved at ``path`` (or, given ``data``, the file's bytes, read elsewhere: ``path`` then only names
    it), loaded with ``weights_only=True``; a missing, truncated or foreign file is one line naming it."""
    path = Path(path)
    if data is None and not path.is_file():
        raise UserInputError(f"checkpoint {path}: no such file; give the checkpoint.pt a search wrote")
    try:
        source = path if data is None else io.BytesIO(data)
        state = torch.load(source, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        raise UserInputError(
            f"checkpoint {path}: cannot be loaded safely ({reason}); it is truncated or was not written by "
            "pcdarts_core: use an intact checkpoint or start a new search"
        ) from None
    if not isinstance(state, dict) or "format" not in state:
        raise UserInputError(f"checkpoint {path}: not a pcdarts_core checkpoint; give the checkpoint.pt a search wrote")
    return state
