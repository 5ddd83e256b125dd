"""A seed study of N tiny searches on a local Ray: what the study machinery costs as N grows.

For each N a study of N searches (one setting, seeds 0..N-1, each search 2 small epochs on the
Fashion-MNIST subset shipped with the package), then the selection of one genotype and one short
retraining, runs as ``python -m orchestrator.run`` in a fresh folder on a local Ray with
``--slots`` CPUs (one per trial). Then the finished study is resumed once, which must redo nothing.

Measured, per N:

- ``wall_s``: the whole study, from the command's start to its exit;
- ``slot_occupancy``: of the search stage's slot-seconds (its wall time x the trials it can run at
  once), the share spent inside epochs (what the study itself reports in its cost section);
- ``overhead_per_trial_s``: (wall - the epochs' seconds / slots) / searches: what each search costs
  beyond its epochs;
- the driver process's CPU seconds, peak RSS and bytes written (``/proc/self/io`` ``write_bytes``,
  read at its exit; the trials' own writes are not the driver's) and bytes written per search;
- ``report_html_bytes`` and ``report_s`` (the report stage, from the study's own stage timings);
- ``resume_s``: ``--resume`` of the finished study, start to exit.

Writes ``bench/results/study_scale.json`` after each N (a killed run keeps what it measured).

    python bench/study_scale.py                          # N = 16, 64, 256; about 30 minutes on 2 cores
    python bench/study_scale.py --trials 8 --slots 2     # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _common import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "study_scale.json"

#: Run in the driver's place: the study's own command, and at its exit what the process used.
DRIVER = """
import atexit, json, os, resource, sys
def _usage(path=sys.argv.pop(1)):
    io = dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(path, "w") as out:
        json.dump({"cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_bytes": usage.ru_maxrss * 1024,
                   "write_bytes": int(io["write_bytes"]), "wchar": int(io["wchar"])}, out)
atexit.register(_usage)
from pcdarts_core.cli import run_main
from orchestrator.run import main
run_main(main)
"""


def study_spec(trials: int, slots: int, epochs: int) -> dict[str, Any]:
    """N searches of one setting (the seeds differ), one genotype retrained once, no random cells."""
    return {
        "name": f"scale-{trials}",
        "dataset": {"name": "fashion_mnist_mini", "image_size": 14, "train_subset": 128},
        "search": {
            "seed": list(range(trials)),
            "k": 4,
            "edge_norm": True,
            "init_channels": 4,
            "layers": 3,
            "batch_size": 32,
            "epochs": epochs,
            "warmup_epochs": 1,
            "arch_lr": 0.3,
            "arch_weight_decay": 0,
        },
        "select": {"top": 1},
        "retrain": {"seeds": [0], "init_channels": 4, "layers": 3, "batch_size": 32, "epochs": 1, "cutout": 0},
        "baseline": {"count": 0},
        "resources": {"cpus_per_trial": 1},
        "ray": {"num_cpus": slots},
    }


def run_driver(args: list[str], env: dict[str, str], usage: Path, log: Path) -> tuple[int, float, dict[str, Any]]:
    start = time.monotonic()
    with open(log, "a") as out:
        code = subprocess.call([sys.executable, "-c", DRIVER, str(usage), *args], env=env, stdout=out, stderr=out)
    wall = time.monotonic() - start
    return code, wall, json.loads(usage.read_text()) if usage.is_file() else {}


def measure(trials: int, slots: int, epochs: int, root: Path, env: dict[str, str]) -> dict[str, Any]:
    work = root / f"n{trials}"
    work.mkdir()
    spec_path, folder, log = work / "spec.yaml", work / "study", work / "driver.log"
    spec_path.write_text(yaml.safe_dump(study_spec(trials, slots, epochs), sort_keys=False))
    print(f"N={trials}: running the study ({slots} slots) ...", flush=True)
    code, wall, usage = run_driver([str(spec_path), "--out", str(folder)], env, work / "usage.json", log)
    if code != 0:
        raise SystemExit(f"N={trials}: the study failed with exit code {code}; its output: {log}")
    state = json.loads((folder / "study.json").read_text())
    stages = state.get("stage_times", {})
    search = stages.get("search", {})
    epoch_s = float(search.get("epoch_s", 0.0))
    report = folder / "report.html"
    figures = folder / "report_figures"
    result = {
        "trials": trials,
        "slots": slots,
        "epochs": epochs,
        "wall_s": round(wall, 1),
        "search_stage_s": search.get("wall_s"),
        "epoch_s": round(epoch_s, 1),
        "slot_occupancy": round(epoch_s / (search["wall_s"] * search["slots"]), 3) if search.get("slots") else None,
        "overhead_per_trial_s": round((wall - epoch_s / slots) / trials, 2),
        "worker_processes": search.get("worker_processes"),
        "driver_cpu_s": round(usage.get("cpu_s", float("nan")), 1),
        "driver_max_rss_mib": round(usage.get("max_rss_bytes", 0) / 2**20, 1),
        "driver_write_mb": round(usage.get("write_bytes", 0) / 1e6, 2),
        "driver_write_mb_per_trial": round(usage.get("write_bytes", 0) / 1e6 / trials, 3),
        "report_s": stages.get("report", {}).get("wall_s"),
        "report_html_bytes": report.stat().st_size if report.is_file() else None,
        "report_figures": len(list(figures.rglob("*.png"))) if figures.is_dir() else 0,
    }
    print(f"N={trials}: resuming the finished study ...", flush=True)
    code, resume_wall, resume_usage = run_driver(
        [str(spec_path), "--out", str(folder), "--resume"], env, work / "usage-resume.json", log
    )
    if code != 0:
        raise SystemExit(f"N={trials}: the resume failed with exit code {code}; its output: {log}")
    result.update(
        resume_s=round(resume_wall, 1),
        resume_driver_write_mb=round(resume_usage.get("write_bytes", 0) / 1e6, 2),
    )
    print(f"N={trials}: {json.dumps(result)}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[16, 64, 256], help="study sizes N")
    parser.add_argument("--slots", type=int, default=2, help="CPUs of the local Ray (trials at once)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each search")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON written")
    parser.add_argument("--keep", type=Path, help="keep the study folders under this folder (default: deleted)")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    ray_tmp = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # Ray's socket paths must stay short
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": ray_tmp,
        "PYTHONPATH": str(repo),
        "PYTHONUNBUFFERED": "1",
    }
    root = args.keep or Path(tempfile.mkdtemp(prefix="study-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "command": "python bench/study_scale.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu_count": os.cpu_count(),
        "results": [],
    }
    try:
        for n in args.trials:
            payload["results"].append(measure(n, args.slots, args.epochs, root, env))
            write_json(args.out, payload)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
