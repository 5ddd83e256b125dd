"""Several searches packed on one device: aggregate images/s against one search alone.

Plain processes (``subprocess``; no Ray), each a real :class:`~pcdarts_core.search.Search` on
synthetic CIFAR-shaped data with the device's default speed options. First one search runs alone,
then ``--processes`` run together. Each process warms up for one epoch, reports ready, waits until
all are ready, then runs ``--epochs`` measured epochs of ``--steps`` steps (validation pass
included, as in a real search). Aggregate images/s = all training images of the measured epochs /
(last end - first start). On the CPU each process gets its share of the cores
(``OMP_NUM_THREADS`` and ``torch.set_num_threads``), else they thrash. Reports each process's peak
memory (CUDA: allocated and reserved; CPU: resident) and, on CUDA, the GPU share the study
orchestrator would give such a trial (``resources.gpus_per_trial: auto``). Goal (issue 6, on a
GPU): 4 packed K=4 searches reach at least 1.5x the images/s of one alone.

``--timeout`` is one deadline for the whole run (both groups, warm-ups included). Writes JSON after
each group, so a run that fails, runs out of time or gets SIGTERM (what ``timeout`` sends; it then
stops its processes and exits 143) keeps what it measured (``complete``: false). Exits 0 whatever
the figures, 1 if a process failed or the deadline passed.

    python bench/pack_searches.py                  # GPU: 4 x K=4 at batch 256, C=16, 8 cells
    python bench/pack_searches.py --processes 2 --batch 8 --C 4 --layers 3 --image-size 8 --steps 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import MiB, Stopped, machine, sigterm_stops, write_json

GOAL = 1.5
GPU_DEFAULTS = {"batch": 256, "C": 16, "layers": 8, "image_size": 32, "steps": 10}
CPU_DEFAULTS = {"batch": 16, "C": 8, "layers": 5, "image_size": 16, "steps": 2}


class OutOfTime(Exception):
    """The run's ``--timeout`` passed."""


def worker(args: argparse.Namespace) -> int:
    """One search process: build, warm up, say it is ready (file ``ready-INDEX``), wait for the go file,
    measure, write ``result-INDEX.json``; all in ``--status-dir``."""
    from pcdarts_core import Search, SearchConfig
    from pcdarts_core.devices import peak_memory_bytes
    from pcdarts_core.probe import synthetic_bundle

    parent = os.getppid()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = SearchConfig(
        init_channels=args.C,
        layers=args.layers,
        k=args.k,
        batch_size=args.batch,
        epochs=1 + args.epochs,
        warmup_epochs=0,
        device=args.device,
        seed=args.index,
    )
    search = Search(
        config,
        data=synthetic_bundle(train_images=2 * args.batch * args.steps, image_size=args.image_size, seed=args.index),
    )
    search.run_epoch()
    status = Path(args.status_dir)
    (status / f"ready-{args.index}").touch()
    go = status / "go"
    while not go.exists():
        if os.getppid() != parent:  # the benchmark was killed before it released us
            return 1
        time.sleep(0.01)
    start = time.time()
    records = [search.run_epoch() for _ in range(args.epochs)]
    end = time.time()
    cuda = search.device.type == "cuda"
    result = {
        "index": args.index,
        "start": start,
        "end": end,
        "train_images": sum(len(search.split["train"]) for _ in records),
        "train_images_per_s": [r.images_per_s for r in records],
        "peak_allocated_bytes": max(r.peak_memory_bytes for r in records) if cuda else None,
        "peak_reserved_bytes": int(torch.cuda.max_memory_reserved(search.device)) if cuda else None,
        "peak_resident_bytes": peak_memory_bytes(torch.device("cpu")),
        "total_memory_bytes": int(torch.cuda.get_device_properties(search.device).total_memory) if cuda else None,
        "threads": torch.get_num_threads(),
    }
    result_file = status / f"result-{args.index}.json"
    tmp = result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(result_file)
    return 0


def wait_for(
    procs: list[subprocess.Popen], done: Callable[[int], bool], what: str, deadline: float, logs: list[Path]
) -> None:
    """Wait until ``done(i)`` holds for every process ``i``; raise RuntimeError when one exits before
    that, :class:`OutOfTime` when ``deadline`` (``time.time()``) passes first."""
    while not all(done(i) for i in range(len(procs))):
        for i, p in enumerate(procs):
            if p.poll() is not None and not done(i):
                raise RuntimeError(f"search process {i} exited ({p.returncode}) before it was {what}: {tail(logs[i])}")
        if time.time() > deadline:
            late = sum(not done(i) for i in range(len(procs)))
            raise OutOfTime(f"{late} of {len(procs)} search processes not {what} by the deadline")
        time.sleep(0.02)


def tail(log: Path, chars: int = 2000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:].strip() or "(no output)"
    except OSError:
        return "(no output)"


def run_group(args: argparse.Namespace, n: int, threads: int, deadline: float) -> dict[str, Any]:
    """Start ``n`` worker processes, release them together once all are warm, and collect their results,
    all before ``deadline`` (``time.time()``); the processes are ended whatever happens."""
    with tempfile.TemporaryDirectory(prefix="pcdarts-pack-") as name:
        folder = Path(name)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        base = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            "--status-dir",
            str(folder),
            "--threads",
            str(threads),
        ]
        sizes = [
            "--device",
            args.device,
            "--k",
            str(args.k),
            "--batch",
            str(args.batch),
            "--C",
            str(args.C),
            "--layers",
            str(args.layers),
            "--image-size",
            str(args.image_size),
            "--steps",
            str(args.steps),
            "--epochs",
            str(args.epochs),
        ]
        logs = [folder / f"worker-{i}.log" for i in range(n)]
        procs: list[subprocess.Popen] = []
        try:
            for i, log in enumerate(logs):
                with log.open("w") as out:  # the child keeps its own copy of the descriptor
                    procs.append(
                        subprocess.Popen(
                            [*base, *sizes, "--index", str(i)], stdout=out, stderr=subprocess.STDOUT, env=env
                        )
                    )
            wait_for(procs, lambda i: (folder / f"ready-{i}").exists(), "ready (warm-up epoch done)", deadline, logs)
            (folder / "go").touch()
            wait_for(procs, lambda i: procs[i].poll() is not None, "finished", deadline, logs)
            results = []
            for i, p in enumerate(procs):
                result = folder / f"result-{i}.json"
                if p.returncode != 0 or not result.exists():
                    raise RuntimeError(f"search process {i} failed (exit {p.returncode}): {tail(logs[i])}")
                results.append(json.loads(result.read_text()))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait()
    images = sum(r["train_images"] for r in results)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {
        "processes": n,
        "threads_per_process": threads,
        "images_per_s": images / wall,
        "wall_s": wall,
        "per_process": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--C", type=int)
    parser.add_argument("--layers", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--steps", type=int, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="measured epochs per process (after one warm-up epoch)")
    parser.add_argument("--threads", type=int, help="CPU threads per process (default: the cores shared out)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds the whole run may take (both groups)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/pack_searches.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--status-dir", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    deadline = time.time() + args.timeout
    from pcdarts_core.devices import resolve_device
    from pcdarts_core.probe import gpu_share

    device = resolve_device(args.device)
    args.device = str(device)
    for name, value in (GPU_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    facts = machine(device)
    cores = os.cpu_count() or 1
    alone_threads = args.threads or cores
    packed_threads = args.threads or max(1, cores // args.processes)
    full = (
        device.type == "cuda"
        and args.k == 4
        and args.processes == 4
        and all(getattr(args, n) == GPU_DEFAULTS[n] for n in ("batch", "C", "layers", "image_size"))
    )
    settings = {
        n: str(v) if isinstance(v, Path) else v
        for n, v in vars(args).items()
        if n not in ("worker", "status_dir", "index")
    }
    payload: dict[str, Any] = {
        "machine": facts,
        "settings": settings,
        "complete": False,
        "error": None,
        "alone": None,
        "packed": None,
        "speedup": None,
        "gpu_share": None,
        "goal": {"limit": GOAL, "pass": None},
    }
    print(
        f"{facts['device_name']} ({device}): K={args.k}, batch {args.batch}, C={args.C}, {args.layers} cells, "
        f"{args.image_size}x{args.image_size}, {args.steps} steps x {args.epochs} measured epochs per process; "
        f"at most {args.timeout:g} s in all",
        flush=True,
    )
    code = 0
    try:
        with sigterm_stops() as stop:
            payload["alone"] = run_group(args, 1, alone_threads, deadline)
            write_json(args.json, payload)
            print(f"  alone: {payload['alone']['images_per_s']:.1f} img/s ({alone_threads} threads)", flush=True)
            stop.check()
            payload["packed"] = run_group(args, args.processes, packed_threads, deadline)
    except (RuntimeError, OutOfTime, Stopped) as err:
        if isinstance(err, OutOfTime):
            payload["error"] = f"out of time: {err} (--timeout {args.timeout:g} s for the whole run)"
        elif isinstance(err, Stopped):
            payload["error"] = f"stopped by {err}"
        else:
            payload["error"] = str(err)
        code = 128 + signal.SIGTERM if isinstance(err, Stopped) else 1
        print(f"error: {payload['error']}", file=sys.stderr, flush=True)
        print(
            "---- packing: not measured "
            f"({'the alone group measured, not the packed one' if payload['alone'] else 'nothing measured'}; "
            f"{'stopped' if code != 1 else 'see the error above'})",
            flush=True,
        )
        write_json(args.json, payload)
        print(f"wrote {args.json}")
        return code
    alone, packed = payload["alone"], payload["packed"]
    ratio = packed["images_per_s"] / alone["images_per_s"]
    print(
        f"  {args.processes} packed: {packed['images_per_s']:.1f} img/s in all ({packed_threads} threads each): "
        f"{ratio:.2f}x one alone"
    )
    for r in packed["per_process"]:
        peak = (
            f"peak {r['peak_allocated_bytes'] / MiB:.0f} MiB allocated, {r['peak_reserved_bytes'] / MiB:.0f} MiB "
            "reserved"
            if r["peak_allocated_bytes"] is not None
            else f"peak resident {r['peak_resident_bytes'] / MiB:.0f} MiB"
        )
        print(
            f"    process {r['index']}: {', '.join(f'{v:.1f}' for v in r['train_images_per_s'])} img/s per epoch; "
            f"{peak}"
        )
    share = None
    if device.type == "cuda":
        worst = max(r["peak_reserved_bytes"] for r in packed["per_process"])
        share = gpu_share(worst, packed["per_process"][0]["total_memory_bytes"])
        print(f"  GPU share the orchestrator would give such a trial (gpus_per_trial: auto): {share:g}")
    verdict = (ratio >= GOAL) if full else None
    print(
        f"{ {True: 'PASS', False: 'FAIL', None: '----'}[verdict] } packing: {ratio:.2f}x (goal >= {GOAL} for 4 x K=4 "
        "at the "
        f"full sizes on a GPU{'' if full else '; not checked here'})"
    )
    payload.update(complete=True, speedup=ratio, gpu_share=share, goal={"limit": GOAL, "pass": verdict})
    write_json(args.json, payload)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
