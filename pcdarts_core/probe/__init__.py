"""Short measured runs: the speed and the peak memory of a search or retraining configuration.

:func:`measure_epochs` runs a few short epochs of a :class:`~pcdarts_core.search.Search` or
:class:`~pcdarts_core.train.Training` (the loops themselves, with their speed options) and reads the
last, warmed-up one: training images per second, evaluation time and peak memory. The benchmarks use
it on synthetic data (:func:`synthetic_bundle`); :func:`probe_peak_memory` uses it to measure what a
trial of a study will hold on its GPU, and :func:`gpu_share` turns that into the fraction of a GPU the
trial asks its scheduler for. ``python -m pcdarts_core.probe`` runs the probe in a fresh process (so
that the caller holds no CUDA context) and prints JSON: its command line is :mod:`pcdarts_core.cli.probe`,
which this package's ``__main__`` runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..config import SearchConfig, TrainConfig
from ..data import DatasetBundle, ImageTensors
from ..genotype import Genotype
from ..runner import run_dataset
from ..search import Search
from ..train import Training

__all__ = ["Measurement", "gpu_share", "measure_epochs", "probe_peak_memory", "synthetic_bundle"]

MiB = 2**20
#: Memory a CUDA process holds outside PyTorch's allocator (context, kernels, library handles).
CUDA_PROCESS_OVERHEAD_BYTES = 512 * MiB


def synthetic_bundle(
    *,
    train_images: int,
    image_size: int = 32,
    in_channels: int = 3,
    num_classes: int = 10,
    test_images: int = 0,
    seed: int = 0,
) -> DatasetBundle:
    """Random uint8 images of a dataset's shape (CIFAR-10 by default) with balanced labels: for
    measuring speed and memory, which depend on shapes only."""
    gen = torch.Generator().manual_seed(seed)

    def split(n: int) -> ImageTensors:
        images = torch.randint(0, 256, (n, in_channels, image_size, image_size), generator=gen, dtype=torch.uint8)
        return ImageTensors(images, torch.arange(n) % num_classes)

    return DatasetBundle(
        name="synthetic",
        train=split(train_images),
        test=split(test_images) if test_images else None,
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=(0.5,) * in_channels,
        std=(0.25,) * in_channels,
    )


@dataclass(frozen=True)
class Measurement:
    """The last epoch of a short run. ``train_s`` and ``eval_s`` end with a host read of the epoch's
    sums, so they are synchronised with the device."""

    steps: int
    batch: int
    images_per_s: float
    train_s: float
    eval_s: float
    eval_batches: int
    peak_allocated_bytes: int | None  # CUDA only: peak of the last epoch
    peak_reserved_bytes: int | None  # CUDA only: what the caching allocator held at most

    @property
    def step_s(self) -> float:
        return self.train_s / self.steps

    @property
    def eval_s_per_batch(self) -> float:
        return self.eval_s / self.eval_batches if self.eval_batches else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "step_s": self.step_s, "eval_s_per_batch": self.eval_s_per_batch}


def measure_epochs(run: Search | Training, epochs: int = 2) -> Measurement:
    """Run ``epochs`` epochs (at least 2: the first warms up kernels, cuDNN's choices and any compiled
    graph) and measure the last one."""
    if epochs < 2:
        raise ValueError("measure_epochs: give at least 2 epochs (the first one warms up)")
    if run.epoch + epochs > run.config.epochs:
        raise ValueError(f"measure_epochs: the run has only {run.config.epochs - run.epoch} epochs left")
    records = [run.run_epoch() for _ in range(epochs)]
    last = records[-1]
    steps = run.steps_per_epoch
    batch = run.config.batch_size
    seen = min(steps * batch, len(run.split["train"]))
    train_s = seen / last.images_per_s
    on_cuda = run.device.type == "cuda"
    eval_part = "valid" if isinstance(run, Search) else "test"
    eval_batches = math.ceil(len(run._parts[eval_part][1]) / batch)
    if isinstance(run, Training) and "valid" in run._parts:
        eval_batches += math.ceil(len(run._parts["valid"][1]) / batch)
    return Measurement(
        steps=steps,
        batch=batch,
        images_per_s=last.images_per_s,
        train_s=train_s,
        eval_s=max(0.0, last.epoch_time_s - train_s),
        eval_batches=eval_batches,
        peak_allocated_bytes=int(torch.cuda.max_memory_allocated(run.device)) if on_cuda else None,
        peak_reserved_bytes=int(torch.cuda.max_memory_reserved(run.device)) if on_cuda else None,
    )


def gpu_share(
    peak_bytes: int, total_bytes: int, margin: float = 0.25, overhead_bytes: int = CUDA_PROCESS_OVERHEAD_BYTES
) -> float:
    """The fraction of one GPU a trial should ask for: its measured peak plus ``margin`` of it, plus
    what every CUDA process holds outside the allocator, rounded up to 1/n of the GPU (n the most
    such trials that fit), as a number of 1e-4 units (Ray's resolution), at most 1."""
    if peak_bytes < 0 or total_bytes <= 0 or margin < 0 or overhead_bytes < 0:
        raise ValueError(
            f"gpu_share: bad sizes (peak {peak_bytes}, total {total_bytes}, margin {margin}, overhead {overhead_bytes})"
        )
    need = peak_bytes * (1 + margin) + overhead_bytes
    fits = int(total_bytes // need) if need > 0 else 10_000
    if fits <= 1:
        return 1.0
    return math.floor(10_000 / min(fits, 10_000)) / 10_000


def probe_peak_memory(
    config: SearchConfig | TrainConfig, genotype: Genotype | None = None, steps: int = 3, device: str = "cuda"
) -> dict[str, Any]:
    """What one trial of ``config`` (a search, or with ``genotype`` a retraining) holds on its GPU:
    two short epochs of ``steps`` batches on the trial's own data and settings (the architecture
    step on from the start; no compilation, whose graphs hold less), plus the part of the training
    set the probe left off the device (none when the data is streamed: then only batches are on the
    device). ``peak_bytes`` is what the caching allocator reserved at most plus that part.
    ``device="cpu"`` runs the same probe without the CUDA figures (for tests)."""
    on_cuda = device.startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        raise RuntimeError("probe_peak_memory: no CUDA device here")
    data = run_dataset(config)
    batch = config.batch_size
    if isinstance(config, SearchConfig):
        search_config = config.replace(
            epochs=2,
            warmup_epochs=0,
            lr_warmup_epochs=0,
            compile=False,
            device=device,
            train_subset=min(len(data.train), 2 * batch * steps),
        )
        run: Search | Training = Search(search_config, data=data)
    else:
        if genotype is None:
            raise ValueError("probe_peak_memory: a retraining probe needs the genotype")
        train_config = config.replace(
            epochs=2, warmup_epochs=0, device=device, train_subset=min(len(data.train), batch * steps)
        )
        run = Training(train_config, genotype, data=data)
    with run:
        measured = measure_epochs(run, epochs=2)
    image_bytes = data.in_channels * data.image_size**2 + 8  # uint8 pixels and an int64 label
    used = sum(len(idx) for idx in run.split.values())
    # A search with data_split="folders" holds its architecture half from the test split (val/).
    valid_folder = data.test if isinstance(config, SearchConfig) and config.data_split == "folders" else None
    available = len(data.train) + (len(valid_folder) if valid_folder is not None else 0)
    wanted = available if config.train_subset is None else min(config.train_subset, available)
    left_off = max(0, wanted - used) * image_bytes if config.data_loading == "memory" else 0
    return {
        "peak_reserved_bytes": measured.peak_reserved_bytes,
        "peak_allocated_bytes": measured.peak_allocated_bytes,
        "data_left_off_bytes": left_off,
        "peak_bytes": int(measured.peak_reserved_bytes or 0) + left_off,
        "total_bytes": int(torch.cuda.get_device_properties(run.device).total_memory) if on_cuda else None,
        "device_name": torch.cuda.get_device_name(run.device) if on_cuda else str(run.device),
        "images_per_s": measured.images_per_s,
    }
