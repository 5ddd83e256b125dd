"""Benchmark the streamed data pipeline (``data_loading="stream"``): images per second, decoded by 0, 1, 2, ...
loader workers and augmented on the device, and how many workers a GPU needs.

It writes a folder of random JPEG images (``--classes`` x ``--per-class`` images of ``--width`` x
``--height``, smooth noise at quality 90, so they decode about as photos do) into a temporary folder,
or reads an existing image folder (``--folder``, e.g. an ImageNet subset from
``python -m pcdarts_core.data.subset``), and lists it as a streamed folder at ``--image-size``
(``load_dataset(..., loading="stream")``; its mean/std sample is decoded then, untimed). Then, per
worker count, it reads the images as a search does (:class:`~pcdarts_core.data.FileBatches` over a
:class:`~pcdarts_core.data.FileLoader`: decoded by the workers, resized and centre-cropped, then on
``--device`` the random-resized crop, flip and normalisation of ``augment="imagenet"``): one untimed
pass that starts the workers, then ``--passes`` timed passes, each in a new order, synchronised with the
device at the end. Reported per worker count: images/s, images/s per worker, and the time to the
first batch of a fresh loader (worker start-up plus one batch). From the per-worker rate at the most
workers measured (the most contended), it prints the workers a GPU consuming ``--gpu-images-per-s``
needs. The JSON is rewritten after every worker count; on SIGTERM it stops, keeps what it measured and
exits 143. A measurement: otherwise it exits 0 whatever the figures.

    python bench/data_pipeline.py                                 # 64 classes x 40 JPEGs of 500x375, at 224
    python bench/data_pipeline.py --folder ~/imagenet-search/train --workers 0 4 8 16 --gpu-images-per-s 3000
    python bench/data_pipeline.py --classes 4 --per-class 8 --width 120 --height 90 --image-size 64 \\
        --batch 8 --workers 0 1 2 --device cpu                   # a smoke run of seconds
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import machine, sigterm_stops, sync, write_json
from PIL import Image

from pcdarts_core.data import FileBatches, FileLoader, load_dataset
from pcdarts_core.devices import resolve_device


def default_workers() -> list[int]:
    """0, 1, 2, then powers of two up to the CPU count, and the CPU count itself."""
    cpus = os.cpu_count() or 1
    return sorted({0, 1, 2, *(2**k for k in range(2, 10) if 2**k <= cpus), cpus})


def write_images(root: Path, classes: int, per_class: int, width: int, height: int, seed: int = 0) -> int:
    """``classes`` x ``per_class`` random JPEGs under ``root/<class>/``; their total bytes."""
    rng = np.random.default_rng(seed)
    total = 0
    for c in range(classes):
        (root / f"class{c:03d}").mkdir(parents=True)
        for i in range(per_class):
            coarse = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
            image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
            pixels = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3))
            path = root / f"class{c:03d}" / f"im{i:05d}.jpg"
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)
            total += path.stat().st_size
    return total


def measure(files, workers: int, args: argparse.Namespace, device: torch.device, mean, std) -> dict[str, Any]:
    """One worker count: a fresh loader, one untimed pass, then the timed passes."""
    loader = FileLoader(files, workers=workers, pin_memory=device.type == "cuda")
    labels = files.labels

    def one_pass(seed: int) -> tuple[int, float]:
        """(images, seconds to the first batch) of one pass in the order of ``seed``."""
        generator = torch.Generator(device=device).manual_seed(seed)
        batches = FileBatches(
            loader,
            labels,
            device=device,
            batch_size=args.batch,
            mean=mean,
            std=std,
            augment=True,
            augment_style="imagenet",
            generator=generator,
        )
        start, first, images = time.perf_counter(), None, 0
        for x, _ in batches:
            images += x.shape[0]
            if first is None:
                sync(device)
                first = time.perf_counter() - start
        sync(device)
        return images, first or 0.0

    try:
        _, first_batch_s = one_pass(0)  # starts the workers
        start = time.perf_counter()
        images = sum(one_pass(seed)[0] for seed in range(1, args.passes + 1))
        seconds = time.perf_counter() - start
    finally:
        loader.close()
    rate = images / seconds
    return {
        "workers": workers,
        "images": images,
        "seconds": seconds,
        "images_per_s": rate,
        "images_per_s_per_worker": rate / workers if workers else None,
        "first_batch_s": first_batch_s,
    }


def workers_needed(rows: list[dict[str, Any]], gpu_rate: float) -> dict[str, Any] | None:
    """The workers a GPU taking ``gpu_rate`` images/s needs, at the per-worker rate of the most workers measured."""
    with_workers = [r for r in rows if r["workers"] > 0]
    if not with_workers:
        return None
    basis = max(with_workers, key=lambda r: r["workers"])
    per_worker = basis["images_per_s_per_worker"]
    return {
        "gpu_images_per_s": gpu_rate,
        "per_worker_images_per_s": per_worker,
        "measured_at_workers": basis["workers"],
        "workers": math.ceil(gpu_rate / per_worker),
    }


def print_row(r: dict[str, Any]) -> None:
    per = "-" if r["images_per_s_per_worker"] is None else f"{r['images_per_s_per_worker']:.1f}"
    print(f"{r['workers']:>7} {r['images_per_s']:>9.1f} {per:>12} {r['first_batch_s']:>15.2f}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, help="an existing image folder (class sub-folders) instead of JPEGs")
    parser.add_argument("--classes", type=int, default=64)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", help="worker counts (default: 0, 1, 2, 4, ... CPUs)")
    parser.add_argument("--passes", type=int, default=1, help="timed passes per worker count")
    parser.add_argument("--gpu-images-per-s", type=float, default=3000.0, help="what the GPU consumes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=Path("bench/results/data_pipeline.json"))
    args = parser.parse_args(argv)
    args.workers = args.workers or default_workers()
    if min(args.workers) < 0 or args.passes < 1 or args.batch < 1 or args.gpu_images_per_s <= 0:
        parser.error("--workers must be >= 0, --passes and --batch >= 1, --gpu-images-per-s > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    facts = machine(device)
    settings = {n: str(v) if isinstance(v, Path) else v for n, v in vars(args).items()}
    rows: list[dict[str, Any]] = []
    stopped, code = None, 0
    with tempfile.TemporaryDirectory(prefix="pcdarts-data-bench-") as tmp:
        folder = args.folder
        folder_bytes = None
        if folder is None:
            folder = Path(tmp) / "train"
            start = time.perf_counter()
            folder_bytes = write_images(folder, args.classes, args.per_class, args.width, args.height)
            print(f"wrote {args.classes * args.per_class} JPEGs in {time.perf_counter() - start:.1f} s", flush=True)
        start = time.perf_counter()
        data = load_dataset("imagefolder", folder, image_size=args.image_size, loading="stream")
        listing_s = time.perf_counter() - start
        print(
            f"{facts['device_name']} ({device}), {facts['cpu_count']} CPUs, torch {facts['torch_version']}; "
            f"{len(data.train)} images at {args.image_size}x{args.image_size}, batch {args.batch}; "
            f"listed (and the mean/std sample decoded) in {listing_s:.1f} s",
            flush=True,
        )

        def save() -> dict[str, Any] | None:
            need = workers_needed(rows, args.gpu_images_per_s)
            write_json(
                args.json,
                {
                    "machine": facts,
                    "settings": settings,
                    "images": len(data.train),
                    "folder_bytes": folder_bytes,
                    "listing_s": listing_s,
                    "complete": len(rows) == len(args.workers),
                    "stopped": stopped,
                    "results": rows,
                    "workers_needed": need,
                },
            )
            return need

        print(f"{'workers':>7} {'images/s':>9} {'per worker':>12} {'first batch s':>15}", flush=True)
        with sigterm_stops() as stop:
            try:
                for workers in args.workers:
                    rows.append(measure(data.train, workers, args, device, data.mean, data.std))
                    save()
                    print_row(rows[-1])
                    stop.check()
            except KeyboardInterrupt:
                stopped, code = f"interrupted after {len(rows)} worker counts", 128 + signal.SIGINT
            except Exception:
                if stop.signal is None:
                    raise
                stopped, code = f"{stop.signal} after {len(rows)} worker counts", 128 + signal.SIGTERM
        need = save()
    if stopped:
        print(f"stopped ({stopped})", flush=True)
    if need is None:
        print("workers needed: not estimated (no worker count above 0 measured)")
    else:
        print(
            f"a GPU taking {need['gpu_images_per_s']:.0f} images/s needs {need['workers']} loader workers "
            f"(at {need['per_worker_images_per_s']:.1f} images/s per worker, measured with "
            f"{need['measured_at_workers']}; this machine has {facts['cpu_count']} CPUs)"
        )
    print(f"wrote {args.json}", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
