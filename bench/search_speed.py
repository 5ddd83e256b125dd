"""Search speed and memory over a grid of (K, batch, precision, memory format, compile).

Each grid point is a real :class:`~pcdarts_core.search.Search` (its own loop: device-resident
data with batched augmentation, architecture and weight steps, on-device metric sums, the
validation pass) on synthetic CIFAR-shaped data, run for ``--epochs`` short epochs of ``--steps``
steps each; the last epoch is measured (the first ones warm up kernels, cuDNN's algorithm choices
and compiled graphs). Reported per point:

* images/s: training images per second of the last epoch (each step also runs as many
  validation images through the architecture step), synchronised with the device;
* peak memory: on CUDA the peak allocated during the last epoch; everywhere the bytes autograd
  saves for backward in one forward pass of a training batch (``saved MiB``), and that figure
  relative to K=1 at the same batch, precision and memory format;
* the speed-up over the reference mode (eager float32 NCHW, the published code's way) at the
  same K and batch, measured first (``--no-reference``: not measured unless asked for, no speed-up);
* the projected time of a full CIFAR-10 search: ``--search-epochs`` epochs of
  ``--full-train-images`` training images (every step with its architecture step, so the 15
  warm-up epochs are over-counted) plus the validation pass over ``--full-valid-images``.

It prints each point's row as it is measured, then the table and the issue-6 goals (PASS/FAIL where
measured: a full search at K=4, batch 256, C=16, 8 cells, 32x32 in at most 15 minutes; at least 3x
the reference images/s; saved activations at K=4 at most 0.33 of K=1). The JSON is rewritten after
every point, so a run killed mid-grid keeps the points measured so far (``complete``: false); on
SIGTERM (what ``timeout`` sends) it stops, prints the goals over those points and exits 143. A
measurement: otherwise it exits 0 whatever the figures.

    python bench/search_speed.py                      # CPU: small sizes; GPU: the full sizes
    python bench/search_speed.py --device cuda --ks 1 4 --batch 256 --precision fp32 bf16 \\
        --memory-format nchw channels_last --compile off on
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from _common import MiB, machine, sigterm_stops, write_json

from pcdarts_core import Search, SearchConfig
from pcdarts_core.activation_memory import saved_activation_bytes
from pcdarts_core.devices import resolve_device
from pcdarts_core.probe import measure_epochs, synthetic_bundle

GOALS = {"search_minutes": 15.0, "speedup": 3.0, "saved_ratio": 0.33}
FULL = {"C": 16, "layers": 8, "image_size": 32, "batch": 256}
#: Defaults per device kind: the full sizes on a GPU, small ones on the CPU (a CPU step takes seconds).
DEFAULTS = {
    "cuda": {**FULL, "batch": [256], "steps": 20, "epochs": 2, "compile": ["off"]},
    "cpu": {"C": 8, "layers": 5, "image_size": 16, "batch": [16], "steps": 2, "epochs": 2, "compile": ["off"]},
}
REFERENCE = ("fp32", "nchw", "off")
TIMING_FIELDS = (
    "steps",
    "images_per_s",
    "train_s",
    "eval_s",
    "eval_batches",
    "peak_allocated_bytes",
    "peak_reserved_bytes",
    "step_s",
    "eval_s_per_batch",
)


def grid(args: argparse.Namespace) -> list[tuple[int, int, str, str, str]]:
    """(K, batch, precision, memory format, compile) points, each (K, batch) led by the reference mode
    (unless ``--no-reference``: then only the modes asked for)."""
    points = []
    lead = [] if args.no_reference else [REFERENCE]
    for k, batch in itertools.product(args.ks, args.batch):
        modes = lead + [m for m in itertools.product(args.precision, args.memory_format, args.compile) if m not in lead]
        points += [(k, batch, *mode) for mode in modes]
    return points


def measure(args: argparse.Namespace, device: torch.device, point: tuple[int, int, str, str, str]) -> dict[str, Any]:
    k, batch, precision, memory_format, compile_ = point
    config = SearchConfig(
        init_channels=args.C,
        layers=args.layers,
        k=k,
        batch_size=batch,
        epochs=args.epochs,
        warmup_epochs=0,
        precision=precision,
        channels_last=memory_format == "channels_last",
        compile=compile_ == "on",
        device=str(device),
        seed=0,
    )
    data = synthetic_bundle(train_images=2 * batch * args.steps, image_size=args.image_size)
    start = time.perf_counter()
    search = Search(config, data=data)
    measured = None if args.memory_only else measure_epochs(search, epochs=args.epochs)
    wall = time.perf_counter() - start
    syncs = count_host_syncs(search) if args.sync_debug and device.type == "cuda" else None
    saved = None
    if compile_ == "off":  # a compiled graph saves its own tensors, out of the hooks' sight
        x = torch.randn(batch, 3, args.image_size, args.image_size, device=device)
        saved = saved_activation_bytes(search.model, x, search.logits)
    search.weight_optimizer.zero_grad(set_to_none=True)
    del search
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    timing: dict[str, Any] = dict.fromkeys(TIMING_FIELDS)
    search_s = None
    if measured is not None:
        full_steps = math.ceil(args.full_train_images / batch)
        full_eval = math.ceil(args.full_valid_images / batch)
        search_s = args.search_epochs * (full_steps * measured.step_s + full_eval * measured.eval_s_per_batch)
        timing = measured.to_dict()
    return {
        "k": k,
        "batch": batch,
        "precision": precision,
        "memory_format": memory_format,
        "compile": compile_,
        "reference": (precision, memory_format, compile_) == REFERENCE,
        **timing,
        "saved_activation_bytes": saved,
        "projected_search_s": search_s,
        "wall_s": wall,
        "host_syncs": syncs,
    }


def count_host_syncs(search: Search) -> dict[str, Any]:
    """Run one more training epoch with CUDA's synchronisation check on and count the synchronising
    calls by where they came from. The epoch's end reads its two totals (2 expected)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            search._train_epoch(arch_frozen=False, lr=search.config.lr, on_step=None)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    places: dict[str, int] = {}
    for w in caught:
        if "synchroniz" in str(w.message):
            place = f"{Path(w.filename).name}:{w.lineno}"
            places[place] = places.get(place, 0) + 1
    total = sum(places.values())
    steps = search.steps_per_epoch
    print(
        f"  host synchronisations in one epoch of {steps} steps: {total} ({(total - 2) / steps:.1f} per step beyond "
        "the "
        f"epoch's 2 reads); from {places}",
        flush=True,
    )
    return {"steps": steps, "total": total, "places": places}


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Speed-up over the reference at the same (K, batch); saved bytes over K=1 at the same mode and batch."""

    def key(r: dict[str, Any], *names: str) -> tuple:
        return tuple(r[n] for n in names)

    reference = {key(r, "k", "batch"): r for r in rows if r["reference"]}
    k1 = {key(r, "batch", "precision", "memory_format", "compile"): r for r in rows if r["k"] == 1}
    for r in rows:
        ref = reference.get(key(r, "k", "batch"))
        r["speedup"] = r["images_per_s"] / ref["images_per_s"] if ref and r["images_per_s"] else None
        base = k1.get(key(r, "batch", "precision", "memory_format", "compile"))
        ok = base is not None and base["saved_activation_bytes"] and r["saved_activation_bytes"] is not None
        r["saved_ratio"] = r["saved_activation_bytes"] / base["saved_activation_bytes"] if ok else None


def goals(rows: list[dict[str, Any]], args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The issue-6 goals at K=4: each with its value, limit, pass (None = not checked) and why."""
    full = device.type == "cuda" and all(getattr(args, n) == FULL[n] for n in ("C", "layers", "image_size"))
    k4 = [r for r in rows if r["k"] == 4 and (not full or r["batch"] == FULL["batch"])]
    out: dict[str, Any] = {}
    if not k4:
        return {name: {"pass": None, "why": "K=4 not measured"} for name in GOALS}
    timed = [r for r in k4 if r["images_per_s"]]
    if not timed:
        out = {
            name: {"value": None, "limit": GOALS[name], "pass": None, "why": "not timed (--memory-only)"}
            for name in ("search_minutes", "speedup")
        }
        timed = k4
    best = max(timed, key=lambda r: r["images_per_s"] or 0)
    mode = f"{best['precision']}/{best['memory_format']}/compile {best['compile']}, batch {best['batch']}"
    sized = "" if full else " (not the full sizes on a GPU: not checked against the goal)"
    if best["images_per_s"]:
        minutes = best["projected_search_s"] / 60
        out["search_minutes"] = {
            "value": minutes,
            "limit": GOALS["search_minutes"],
            "pass": minutes <= GOALS["search_minutes"] if full else None,
            "why": f"fastest K=4 mode, {mode}{sized}",
        }
        speedup = best["speedup"]
        out["speedup"] = {
            "value": speedup,
            "limit": GOALS["speedup"],
            "pass": (speedup >= GOALS["speedup"]) if full and speedup else None,
            "why": f"fastest K=4 mode over eager fp32 NCHW, {mode}{sized}",
        }
    ratios = [r["saved_ratio"] for r in k4 if r["saved_ratio"] is not None]
    worst = max(ratios) if ratios else None
    out["saved_ratio"] = {
        "value": worst,
        "limit": GOALS["saved_ratio"],
        "pass": worst <= GOALS["saved_ratio"] if worst is not None else None,
        "why": "largest K=4/K=1 ratio over the measured modes (same batch)"
        if worst is not None
        else "needs K=1 and K=4",
    }
    return out


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


TABLE_HEADER = (
    f"{'K':>2} {'batch':>5} {'prec':>4} {'format':>13} {'compile':>7} {'img/s':>9} {'step ms':>8} {'eval ms/b':>9} "
    f"{'peak MiB':>9} {'saved MiB':>9} {'saved/K1':>8} {'x ref':>6} {'search min':>10} {'wall s':>6}"
)


def table_row(r: dict[str, Any]) -> str:
    peak = r["peak_allocated_bytes"] / MiB if r["peak_allocated_bytes"] is not None else None
    saved = r["saved_activation_bytes"] / MiB if r["saved_activation_bytes"] is not None else None
    step_ms = r["step_s"] * 1e3 if r["step_s"] is not None else None
    eval_ms = r["eval_s_per_batch"] * 1e3 if r["eval_s_per_batch"] is not None else None
    minutes = r["projected_search_s"] / 60 if r["projected_search_s"] is not None else None
    return (
        f"{r['k']:>2} {r['batch']:>5} {r['precision']:>4} {r['memory_format']:>13} {r['compile']:>7} "
        f"{fmt(r['images_per_s'], '.1f'):>9} {fmt(step_ms, '.1f'):>8} {fmt(eval_ms, '.1f'):>9} {fmt(peak, '.0f'):>9} "
        f"{fmt(saved, '.1f'):>9} {fmt(r['saved_ratio'], '.3f'):>8} {fmt(r['speedup'], '.2f'):>6} "
        f"{fmt(minutes, '.1f'):>10} {r['wall_s']:>6.0f}"
    )


def print_goals(result: dict[str, Any]) -> None:
    for name, g in result.items():
        verdict = {True: "PASS", False: "FAIL", None: "----"}[g["pass"]]
        value = fmt(g.get("value"), ".3f")
        print(
            f"{verdict} {name} = {value} (goal {'<=' if name != 'speedup' else '>='} {g.get('limit', GOALS[name])}): "
            f"{g['why']}",
            flush=True,
        )


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, torch.device]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--batch", type=int, nargs="+", help="default: 256 on a GPU, 16 on the CPU")
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument(
        "--memory-format", nargs="+", choices=["nchw", "channels_last"], default=["nchw", "channels_last"]
    )
    parser.add_argument(
        "--compile", nargs="+", choices=["off", "on"], help="default: off (on a CPU compiling takes minutes)"
    )
    parser.add_argument("--C", type=int, help="default: 16 on a GPU, 8 on the CPU")
    parser.add_argument("--layers", type=int, help="default: 8 on a GPU, 5 on the CPU")
    parser.add_argument("--image-size", type=int, help="default: 32 on a GPU, 16 on the CPU")
    parser.add_argument("--steps", type=int, help="steps per epoch (default: 20 on a GPU, 2 on the CPU)")
    parser.add_argument("--epochs", type=int, help="epochs per point, the last one measured (default 2)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's)")
    parser.add_argument("--search-epochs", type=int, default=50)
    parser.add_argument("--full-train-images", type=int, default=25_000)
    parser.add_argument("--full-valid-images", type=int, default=25_000)
    parser.add_argument("--sync-debug", action="store_true", help="CUDA: count host synchronisations in one more epoch")
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="do not lead each (K, batch) with the eager fp32 NCHW reference (no speed-ups then)",
    )
    parser.add_argument(
        "--memory-only", action="store_true", help="only the saved-activation bytes, no timing (fast on a CPU)"
    )
    parser.add_argument("--json", type=Path, default=Path("bench/results/search_speed.json"))
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    for name, value in DEFAULTS["cuda" if device.type == "cuda" else "cpu"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.epochs < 2 or args.steps < 1:
        parser.error("--epochs must be at least 2 (the first warms up) and --steps at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    return args, device


def main(argv: list[str] | None = None) -> int:
    args, device = parse_args(argv)
    facts = machine(device)
    points = grid(args)
    print(
        f"{facts['device_name']} ({device}), torch {facts['torch_version']}, {facts['torch_threads']} threads; "
        f"C={args.C}, {args.layers} cells, {args.image_size}x{args.image_size}, "
        f"{'saved bytes only' if args.memory_only else f'{args.steps} steps x {args.epochs} epochs per point'}, "
        f"{len(points)} points",
        flush=True,
    )
    settings = {n: str(v) if isinstance(v, Path) else v for n, v in vars(args).items()}
    rows: list[dict[str, Any]] = []
    stopped, code = None, 0

    def save() -> dict[str, Any]:
        """Ratios and goals over the rows so far, written to the JSON (after every point)."""
        add_ratios(rows)
        result = goals(rows, args, device)
        write_json(
            args.json,
            {
                "machine": facts,
                "settings": settings,
                "points": len(points),
                "measured": len(rows),
                "complete": len(rows) == len(points),
                "stopped": stopped,
                "results": rows,
                "goals": result,
            },
        )
        return result

    print(TABLE_HEADER, flush=True)
    with sigterm_stops() as stop:
        try:
            for point in points:
                rows.append(measure(args, device, point))
                save()
                print(table_row(rows[-1]), flush=True)  # ratios as known so far; the table below has them all
                stop.check()
        except KeyboardInterrupt:
            stopped, code = f"interrupted after {len(rows)} of {len(points)} points", 128 + signal.SIGINT
        except Exception:
            if stop.signal is None:
                raise
            # Stopped itself, or what a library made of it (torch.compile wraps it in its own error)
            stopped, code = f"{stop.signal} after {len(rows)} of {len(points)} points", 128 + signal.SIGTERM
    if stopped:
        print(f"stopped ({stopped}); the goals below are over the points measured", flush=True)
    result = save()
    if rows:
        print("all points measured:" if stopped is None else "the points measured:")
        print(TABLE_HEADER)
        for r in rows:
            print(table_row(r))
    print_goals(result)
    print(f"wrote {args.json}", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
