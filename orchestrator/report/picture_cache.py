"""The report's pictures drawn once: each picture's PNG in the figures folder is kept with a digest of what
it was drawn from (the drawing function, its arguments, the source of :mod:`~orchestrator.report.figures`
and matplotlib's version) in ``index.json`` there. A rebuilt report draws only the pictures whose digest
changed, reads the others back (only those the page embeds), and deletes the files of pictures it no longer
has. Many pictures to draw are drawn by several processes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import inspect
import json
import multiprocessing
import os
import pickle
from collections.abc import Callable
from functools import cache
from pathlib import Path

from pcdarts_core.checkpoint import atomic_write_bytes, atomic_write_text

from . import figures
from .pictures import Picture

INDEX = "index.json"
#: Fewer pictures than this to draw are drawn in this process (starting workers costs ~2 s each).
PARALLEL_FROM = 16
#: The index is saved after every this many pictures drawn (and at the end).
SAVE_EVERY = 50


@cache
def _drawing_code() -> bytes:
    """What every picture's look depends on: the drawing code and the matplotlib that runs it."""
    import matplotlib

    return inspect.getsource(figures).encode() + matplotlib.__version__.encode()


def digest(picture: Picture) -> str:
    """What the picture's bytes depend on, as a hex digest."""
    h = hashlib.sha256(_drawing_code())
    h.update(pickle.dumps((picture.name, picture.draw.__module__, picture.draw.__qualname__, picture.args), 5))
    return h.hexdigest()


def _draw(picture: Picture) -> bytes:
    return picture.draw(*picture.args)


@dataclasses.dataclass(frozen=True)
class Drawn:
    """The pictures with their bytes (``data``: only for those in the page), and how many were drawn anew."""

    pictures: dict[str, list[Picture]]
    drawn: int
    reused: int


def resolve_pictures(
    pictures: dict[str, list[Picture]], folder: Path, workers: int | None = None, say: Callable[[str], None] = print
) -> Drawn:
    """Draw what changed into ``folder`` (made if absent), read back what the page needs, remove stale files."""
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / INDEX
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        index = {}
    everything = [picture for group in pictures.values() for picture in group]
    digests = {picture.name: digest(picture) for picture in everything}
    stale = [p for p in everything if index.get(p.name) != digests[p.name] or not (folder / p.name).is_file()]
    if stale:
        say(f"  drawing {len(stale)} of {len(everything)} pictures")
    for done, (picture, data) in enumerate(zip(stale, _draw_all(stale, workers)), start=1):
        atomic_write_bytes(folder / picture.name, data)
        index[picture.name] = digests[picture.name]
        if done % SAVE_EVERY == 0:  # an interrupted build keeps most of what it drew
            atomic_write_text(index_path, json.dumps(index, indent=0, sort_keys=True) + "\n")
    names = set(digests)
    for old in folder.glob("*.png"):
        if old.name not in names:
            old.unlink()
    atomic_write_text(index_path, json.dumps(digests, indent=0, sort_keys=True) + "\n")
    resolved = {
        section: [dataclasses.replace(p, data=(folder / p.name).read_bytes()) if p.in_page else p for p in group]
        for section, group in pictures.items()
    }
    return Drawn(resolved, drawn=len(stale), reused=len(everything) - len(stale))


def _draw_all(pictures: list[Picture], workers: int | None):
    """The pictures' bytes in order, drawn here or, for many, by worker processes (spawned: this process may
    hold threads that a fork would copy mid-lock)."""
    workers = workers or min(4, os.cpu_count() or 1)
    if len(pictures) < PARALLEL_FROM or workers < 2:
        for picture in pictures:
            yield _draw(picture)
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(_draw, pictures, chunksize=4)
