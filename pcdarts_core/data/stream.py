"""Batches of an image folder that is streamed, not held: decoded by DataLoader workers, augmented on the device.

A :class:`FileLoader` holds one part of a run's data (its :class:`~pcdarts_core.data.ImageFiles`) and
a ``torch.utils.data.DataLoader`` whose worker processes decode the files of whole batches, each as
the in-memory loader decodes them (:meth:`ImageFiles.read`), in an order given per pass. The workers
start with the first pass, persist across passes and stop at :meth:`FileLoader.close`.

:class:`FileBatches` is one pass over such a part: the order and the augmentation are those of
:class:`~pcdarts_core.data.batches.Batches` (drawn on the training device, in the main process, from
the pass's generator), so a streamed run sees exactly the batches of the same run held in memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch

from pcdarts_core.data.batches import Batches
from pcdarts_core.data.datasets import ImageFiles
from pcdarts_core.errors import DataError

__all__ = ["FileBatches", "FileLoader"]

#: Batches each worker decodes ahead.
PREFETCH_BATCHES = 2


class _Decoder(torch.utils.data.Dataset):
    """What a worker runs: the images of one batch of indices. A file that does not decode comes back as its
    DataError (raised in a worker, DataLoader would re-raise it with the worker's traceback in the message)."""

    def __init__(self, files: ImageFiles) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, batch: list[int]) -> torch.Tensor | DataError:
        try:
            return self.files.read(batch)
        except DataError as err:
            return err


class _GivenBatches(torch.utils.data.Sampler):
    """The batches of indices of the pass being read, set before each pass."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _as_is(item: Any) -> Any:
    """The collate function: a worker's result is already a whole batch."""
    return item


class FileLoader:
    """Decodes batches of ``files`` in ``workers`` processes (0: in this one), in the order each pass gives;
    into pinned memory with ``pin_memory`` (for a CUDA device)."""

    def __init__(self, files: ImageFiles, *, workers: int, pin_memory: bool = False) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.files = files
        self.workers = workers
        self.pin_memory = pin_memory
        self._batches = _GivenBatches()
        self._loader: torch.utils.data.DataLoader | None = None

    def __len__(self) -> int:
        return len(self.files)

    def read(self, batches: list[list[int]]) -> Iterator[torch.Tensor]:
        """The uint8 images N×3×S×S of each batch of indices into ``files``, in order. A new pass may start
        before the last one ended (the rest of that one is dropped)."""
        if self._loader is None:
            self._loader = torch.utils.data.DataLoader(
                _Decoder(self.files),
                batch_size=None,
                sampler=self._batches,
                collate_fn=_as_is,
                num_workers=self.workers,
                pin_memory=self.pin_memory,
                persistent_workers=self.workers > 0,
                prefetch_factor=PREFETCH_BATCHES if self.workers > 0 else None,
            )
        self._batches.batches = batches
        for images in self._loader:
            if isinstance(images, DataError):
                self.close()
                raise DataError(str(images)) from None
            yield images

    def close(self) -> None:
        """Stop the worker processes (they start again with the next pass)."""
        loader, self._loader = self._loader, None
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()  # what DataLoader's own clean-up calls; deleting the loader may not suffice


class FileBatches(Batches):
    """:class:`~pcdarts_core.data.batches.Batches` of the files a :class:`FileLoader` reads, brought to
    ``device``. ``labels`` are the files' labels."""

    def __init__(self, loader: FileLoader, labels: torch.Tensor, *, device: torch.device, **options: Any) -> None:
        if len(loader) == 0 or labels.shape != (len(loader),):
            raise DataError(
                f"files: {len(loader)} files with labels of shape {tuple(labels.shape)}: pass one label per file, "
                "and at least one file"
            )
        super().__init__(labels, device=device, channels=3, **options)
        self.loader = loader

    def _fetch(self, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        flat = torch.cat(batches).tolist() if batches else []  # one host read per pass
        ends = list(itertools.accumulate(len(idx) for idx in batches))
        for images in self.loader.read([flat[end - len(idx) : end] for idx, end in zip(batches, ends)]):
            yield images.to(self.device, non_blocking=True)
