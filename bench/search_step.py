"""Benchmark one PC-DARTS search step per partial-channel proportion K.

For each K the supernet is built on random 32x32x3 images (10 classes) and two
things are measured:

* step time: one full first-order search step, the loop's own ``search_step``
  (architecture step on a validation batch, then the weight step: forward,
  cross-entropy, backward, gradient clipping at 5, SGD step). The K values are
  timed in rounds (per round and K: one untimed step, then one timed step), so
  a change in machine load hits all of them alike; the median is reported.
  CUDA is synchronised around each timed step;
* saved activation bytes: the distinct storages autograd saves for backward
  during one forward pass on the training batch, parameters and buffers
  excluded; on a GPU also the peak memory a step adds above the resident models.

It prints a table and PASS/FAIL against the issue-2 targets (K=4 vs K=1: saved
bytes <= 0.33x, step time <= 0.45x) and writes the figures and machine facts to
JSON. It is a measurement, so it always exits 0.

    python bench/search_step.py [--ks 1 2 4 8] [--batch 32] [--repeats 5] [--warmup 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from _common import MiB, machine, sync

from pcdarts_core import SearchConfig, SearchNetwork
from pcdarts_core.activation_memory import saved_activation_bytes
from pcdarts_core.architect import Architect
from pcdarts_core.devices import resolve_device
from pcdarts_core.search import search_step

TARGETS = {"saved_ratio": 0.33, "time_ratio": 0.45}  # at K=4, relative to K=1


class Stepper:
    """One K's supernet, optimisers and fixed batches; ``step()`` is one search step."""

    def __init__(self, k: int, args: argparse.Namespace, device: torch.device) -> None:
        torch.manual_seed(0)
        self.k, self.batch, self.device = k, args.batch, device
        self.config = SearchConfig(
            init_channels=args.C,
            layers=args.layers,
            k=k,
            batch_size=args.batch,
            epochs=2,
            warmup_epochs=0,
            order="first",
        )
        self.model = SearchNetwork(C=args.C, num_classes=10, layers=args.layers, k=k).to(device).train()
        cfg = self.config
        self.optimizer = torch.optim.SGD(
            self.model.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        self.architect = Architect(self.model, cfg)
        self.x, self.x_valid = (torch.randn(args.batch, 3, 32, 32, device=device) for _ in range(2))
        self.y, self.y_valid = (torch.randint(0, 10, (args.batch,), device=device) for _ in range(2))
        self.times: list[float] = []
        self.peak_cuda_bytes: int | None = None

    def step(self) -> None:
        search_step(
            self.model,
            self.architect,
            self.optimizer,
            self.x,
            self.y,
            (self.x_valid, self.y_valid),
            self.config.lr,
            self.config.grad_clip,
        )

    def timed_step(self) -> None:
        on_cuda = self.device.type == "cuda"
        sync(self.device)
        if on_cuda:  # other K's models share the process: count only what this step adds
            torch.cuda.reset_peak_memory_stats(self.device)
            resident = torch.cuda.memory_allocated(self.device)
        start = time.perf_counter()
        self.step()
        sync(self.device)
        self.times.append(time.perf_counter() - start)
        if on_cuda:
            peak = int(torch.cuda.max_memory_allocated(self.device)) - resident
            self.peak_cuda_bytes = max(peak, self.peak_cuda_bytes or 0)

    def result(self) -> dict[str, Any]:
        self.optimizer.zero_grad(set_to_none=True)
        median = statistics.median(self.times)
        return {
            "k": self.k,
            "batch": self.batch,
            "step_times_s": self.times,
            "step_time_median_s": median,
            "step_time_min_s": min(self.times),
            "images_per_s": self.batch / median,
            "saved_activation_bytes": saved_activation_bytes(self.model, self.x),
            "peak_step_cuda_bytes": self.peak_cuda_bytes,  # above the resident models and optimiser state
        }


def measure(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """Time the K values in rounds; in each round every K runs one untimed step (so the
    allocator and caches hold that K's working set again, as in a real search, which runs one K
    per process) and then one timed step. A change in the machine's load during the run thus
    hits every K alike; the median over the rounds is reported."""
    steppers = [Stepper(k, args, device) for k in args.ks]
    for stepper in steppers:
        for _ in range(args.warmup):
            stepper.step()
    for round_ in range(1, args.repeats + 1):
        for stepper in steppers:
            stepper.step()
            stepper.timed_step()
        times = ", ".join(f"K={s.k}: {s.times[-1]:.3f}" for s in steppers)
        print(f"round {round_}/{args.repeats}: {times} s/step, load average {os.getloadavg()[0]:.2f}", flush=True)
    return [s.result() for s in steppers]


def add_ratios(rows: list[dict[str, Any]]) -> None:
    base = next((r for r in rows if r["k"] == 1), None)
    for r in rows:
        r["saved_ratio"] = r["saved_activation_bytes"] / base["saved_activation_bytes"] if base else None
        r["time_ratio"] = r["step_time_median_s"] / base["step_time_median_s"] if base else None


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """PASS/FAIL per target at K=4, or None unless K=1 and K=4 were both measured."""
    k4 = next((r for r in rows if r["k"] == 4), None)
    if k4 is None or k4["saved_ratio"] is None:
        return None
    return {name: {"value": k4[name], "limit": limit, "pass": k4[name] <= limit} for name, limit in TARGETS.items()}


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict[str, Any]], on_cuda: bool) -> None:
    head = (
        f"{'K':>3} {'batch':>5} {'median s':>8} {'min s':>8} {'img/s':>7} {'saved MiB':>10} "
        f"{'saved/K1':>9} {'time/K1':>8}"
    )
    print(head + (f" {'step peak MiB':>13}" if on_cuda else ""))
    for r in rows:
        line = (
            f"{r['k']:>3} {r['batch']:>5} {r['step_time_median_s']:>8.3f} {r['step_time_min_s']:>8.3f} "
            f"{r['images_per_s']:>7.1f} {r['saved_activation_bytes'] / MiB:>10.1f} "
            f"{fmt(r['saved_ratio'], '.3f'):>9} {fmt(r['time_ratio'], '.3f'):>8}"
        )
        print(line + (f" {r['peak_step_cuda_bytes'] / MiB:>13.1f}" if on_cuda else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (one step per K each)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per K first")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=Path("bench/results/search_step.json"))
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    device = resolve_device(args.device)
    facts = machine(device)
    print(
        f"{facts['device_name']} ({device}), torch {facts['torch_version']}, {facts['torch_threads']} threads, "
        f"load average {facts['load_avg_1min_at_start']:.2f}"
    )
    rows = measure(args, device)
    add_ratios(rows)
    print_table(rows, device.type == "cuda")

    result = verdict(rows)
    if result is None:
        print("targets: not checked (needs K=1 and K=4 in --ks)")
    else:
        for name, v in result.items():
            print(f"{'PASS' if v['pass'] else 'FAIL'} K=4 {name} = {v['value']:.3f} (target <= {v['limit']})")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    settings = {name: str(v) if isinstance(v, Path) else v for name, v in vars(args).items()}
    payload = {"machine": facts, "settings": settings, "results": rows, "targets": result}
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
