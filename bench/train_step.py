"""Benchmark one retraining step of a genotype's network, per precision and memory format.

The network is the one ``python -m pcdarts_core.train`` trains (defaults: PC_DARTS_cifar in the
CIFAR network, C=36, 20 layers, auxiliary head, drop path 0.3, batch 96, 32x32x3 inputs, 10
classes), fed synthetic images so no dataset is needed. The step is the training loop's own
``train_step`` (forward with the auxiliary head, loss, backward, gradient clipping, SGD step).
For each (precision, memory format) it runs ``--warmup`` untimed steps, then ``--steps`` timed
steps (CUDA synchronised), and reports the median step time, images/s and, on a GPU, the peak
memory allocated. Prints a table and writes JSON; a measurement, so it always exits 0.

    python bench/train_step.py [--device auto] [--batch 96] [--steps 10] [--warmup 3]
                               [--precision fp32 bf16] [--channels-last off on]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from pcdarts_core import TrainConfig, build_network, load_genotype
from pcdarts_core.devices import resolve_device
from pcdarts_core.train import train_step

MiB = 2**20


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(args: argparse.Namespace, device: torch.device, precision: str, channels_last: bool) -> dict[str, Any]:
    config = TrainConfig(
        init_channels=args.init_channels, layers=args.layers, batch_size=args.batch, device=str(device)
    )
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = build_network(config, load_genotype(args.genotype), 10, 3).to(device, memory_format=memory_format).train()
    model.drop_path_prob = config.drop_path_prob
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device).contiguous(
        memory_format=memory_format
    )
    y = torch.randint(0, 10, (args.batch,), device=device)

    def step() -> None:
        autocast = (
            torch.autocast(device_type=device.type, dtype=torch.bfloat16)
            if precision == "bf16"
            else contextlib.nullcontext()
        )
        train_step(
            model,
            optimizer,
            x,
            y,
            auxiliary_weight=config.auxiliary_weight,
            label_smoothing=0.0,
            grad_clip=config.grad_clip,
            autocast=autocast,
        )

    for _ in range(args.warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / MiB if device.type == "cuda" else None
    return {
        "precision": precision,
        "channels_last": channels_last,
        "batch": args.batch,
        "step_median_s": median,
        "step_min_s": min(times),
        "images_per_s": args.batch / median,
        "peak_mib": peak,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--genotype", default="PC_DARTS_cifar")
    parser.add_argument("--init-channels", type=int, default=36)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--batch", type=int, default=96)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--channels-last", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--json", type=Path, default=Path("bench/results/train_step.json"))
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    print(
        f"{args.genotype}, C={args.init_channels}, {args.layers} layers, batch {args.batch}, "
        f"{args.image_size}x{args.image_size}, device {device}, {torch.get_num_threads()} CPU threads"
    )
    print(
        f"{'precision':>9} {'channels_last':>13} {'step median (s)':>15} {'step min (s)':>12} {'images/s':>9} "
        f"{'peak MiB':>9}"
    )
    for precision in args.precision:
        for layout in args.channels_last:
            row = measure(args, device, precision, layout == "on")
            rows.append(row)
            peak = f"{row['peak_mib']:.0f}" if row["peak_mib"] is not None else "-"
            print(
                f"{precision:>9} {layout:>13} {row['step_median_s']:>15.4f} {row['step_min_s']:>12.4f} "
                f"{row['images_per_s']:>9.1f} {peak:>9}"
            )
    facts = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.json.write_text(json.dumps({"machine": facts, "settings": settings, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
