"""Mini-batches from uint8 images: seeded order and batched augmentation on the training device.

:class:`Batches` draws the order and the augmentation; :class:`DeviceBatches` takes the images from
tensors on the device, :class:`~pcdarts_core.data.stream.FileBatches` from files decoded by loader workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from pcdarts_core.data.augment import cutout as _cutout
from pcdarts_core.data.augment import normalize, random_crop, random_hflip, random_resized_crop
from pcdarts_core.errors import ConfigError, DataError
from pcdarts_core.seeding import derived_seed

__all__ = ["Batches", "DeviceBatches", "split_indices"]


def _same_device(a: torch.device, b: torch.device) -> bool:
    """True when ``a`` and ``b`` name the same device (``cuda`` == ``cuda:<current>``)."""
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device()
    return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)


class Batches:
    """One pass of mini-batches over a set of images: what every way of holding the images shares.

    Each pass (``iter``) visits every sample once, in an order drawn from
    ``generator`` when ``shuffle``; the generator also drives augmentation, so
    equal seeds give equal batches. With ``augment``, ``augment_style`` "cifar" crops at a
    random offset after zero padding by ``padding``, "imagenet" takes a random-resized crop;
    both then flip, normalise and apply ``cutout``. All of it runs on ``device``, on whole
    batches; a subclass only supplies each batch's uint8 images there (:meth:`_fetch`), so the
    order and the random draws do not depend on where the images come from.

    ``shard=(rank, world_size)`` makes these the batches of one of several processes
    (:mod:`pcdarts_core.distributed`): every process draws the same order, splits each batch of
    ``batch_size`` into ``world_size`` equal consecutive shares and takes share ``rank``, then draws its
    own augmentation (from a seed derived from the pass's and its rank). A batch is split only as far
    as it divides evenly: the last batch of a pass leaves out its last ``len % world_size`` images (fewer
    than ``world_size``), and is left out when it has fewer images than processes.
    """

    def __init__(
        self,
        labels: torch.Tensor,
        *,
        device: torch.device,
        channels: int,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool,
        augment_style: str = "cifar",
        cutout: int = 0,
        padding: int = 4,
        shuffle: bool = True,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        _check_options(batch_size, cutout, padding, len(mean), len(std), channels)
        rank, world = shard
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"shard: rank {rank} of {world} processes; use 0 <= rank < world_size")
        if batch_size % world:
            raise ConfigError(
                "batch_size", batch_size, f"cannot be split over {world} processes; use a multiple of {world}"
            )
        if augment_style not in ("cifar", "imagenet"):
            raise ConfigError("augment", augment_style, "use 'cifar' (padded random crop) or 'imagenet' (resized crop)")
        self.device = device
        self.labels = labels.to(device=device, dtype=torch.long)
        self.batch_size = batch_size
        # Held on the device once: built from Python numbers per batch they would be a blocking copy each time.
        self.mean = torch.tensor([float(m) for m in mean], dtype=torch.float32, device=device)
        self.std = torch.tensor([float(s) for s in std], dtype=torch.float32, device=device)
        self.augment = augment
        self.augment_style = augment_style
        self.cutout = cutout
        self.padding = padding
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = _make_generator(generator, device)
        self.shard = shard
        # One order for all processes, then each its own augmentation draws.
        self.augment_generator = self.generator
        if world > 1:
            self.augment_generator = torch.Generator(device=self.generator.device)
            self.augment_generator.manual_seed(derived_seed(self.generator.initial_seed(), rank))

    def __len__(self) -> int:
        """Number of batches per pass."""
        n = self.labels.shape[0]
        if self.drop_last:
            return n // self.batch_size
        full, rest = divmod(n, self.batch_size)
        return full + (rest >= self.shard[1])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (float32 normalised images, int64 labels) for one pass (this process's shares of them)."""
        order = self._order()
        batches = [order[b * self.batch_size : (b + 1) * self.batch_size] for b in range(len(self))]
        rank, world = self.shard
        if world > 1:
            batches = [idx[: len(idx) - len(idx) % world].view(world, -1)[rank] for idx in batches]
        for idx, images in zip(batches, self._fetch(batches)):
            yield self._transform(images), self.labels[idx]

    def _fetch(self, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The uint8 images N×C×H×W of each batch of sample indices (on the device), on the device, in order."""
        raise NotImplementedError

    def _order(self) -> torch.Tensor:
        """Sample order for one pass, on the device."""
        n = self.labels.shape[0]
        if not self.shuffle:
            return torch.arange(n, device=self.device)
        gen = self.generator
        return torch.randperm(n, generator=gen, device=gen.device).to(self.device)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        """Augment (if enabled) and normalise one uint8 batch."""
        if not self.augment:
            return normalize(x, self.mean, self.std)
        if self.augment_style == "imagenet":
            x = random_resized_crop(x, self.augment_generator)
        else:
            x = random_crop(x, self.padding, self.augment_generator)
        x = random_hflip(x, self.augment_generator)
        x = normalize(x, self.mean, self.std)
        if self.cutout > 0:
            x = _cutout(x, self.cutout, self.augment_generator)
        return x


class DeviceBatches(Batches):
    """:class:`Batches` drawn from uint8 images N×C×H×W that already live on the training device."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, **options: Any) -> None:
        _check_tensors(images, labels)
        super().__init__(labels, device=images.device, channels=images.shape[1], **options)
        self.images = images

    def _fetch(self, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        for idx in batches:
            yield self.images[idx]


def _check_tensors(images: torch.Tensor, labels: torch.Tensor) -> None:
    """Images must be uint8 N×C×H×W with one label each."""
    if images.dim() != 4 or images.dtype != torch.uint8:
        raise DataError(
            f"images: expected a uint8 tensor N×C×H×W, got {images.dtype} with shape {tuple(images.shape)}: "
            "use DatasetBundle tensors"
        )
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"labels: shape {tuple(labels.shape)} does not match {images.shape[0]} images: pass one label per image"
        )
    if images.shape[0] == 0:
        raise DataError("images: the data set is empty: pass at least one sample")


def _check_options(batch_size: int, cutout: int, padding: int, n_mean: int, n_std: int, channels: int) -> None:
    """Reject impossible batch settings."""
    if batch_size < 1:
        raise ConfigError("batch_size", batch_size, "must be a positive integer")
    if cutout < 0:
        raise ConfigError("cutout", cutout, "must be >= 0 (0 disables cutout)")
    if padding < 0:
        raise ConfigError("padding", padding, "must be >= 0")
    if n_mean != channels or n_std != channels:
        raise DataError(
            f"mean/std: have {n_mean}/{n_std} values but the images have {channels} channels: "
            "use the DatasetBundle's mean and std"
        )


def _make_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator:
    """Check ``generator`` is on ``device``; default to one seeded with 0 there."""
    if generator is None:
        return torch.Generator(device=device).manual_seed(0)
    if not _same_device(generator.device, device):
        raise ValueError(
            f"generator is on {generator.device} but the batches are made on {device}: "
            f"create it with torch.Generator(device={str(device)!r})"
        )
    return generator


def split_indices(n: int, portion: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a seeded random permutation of ``range(n)`` into its first ``round(n * portion)`` and the rest."""
    if n < 0:
        raise ConfigError("n", n, "must be >= 0")
    if not 0.0 <= portion <= 1.0:
        raise ConfigError("portion", portion, "must be between 0 and 1 (e.g. 0.5 for a 50/50 split)")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    k = round(n * portion)
    return perm[:k], perm[k:]
