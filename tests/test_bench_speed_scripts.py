"""The issue-6 benchmark commands run end to end on the CPU at tiny sizes and write their JSON, and
keep what they measured when they run out of time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["--device", "cpu", "--C", "4", "--layers", "3", "--image-size", "8", "--batch", "8", "--steps", "1"]

pytestmark = pytest.mark.slow


def run_script(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_search_speed_grid_leads_with_the_reference_and_checks_the_memory_goal(tmp_path):
    out = tmp_path / "speed.json"
    done = run_script(
        [
            "bench/search_speed.py",
            *TINY,
            "--ks",
            "1",
            "4",
            "--precision",
            "fp32",
            "bf16",
            "--memory-format",
            "nchw",
            "--json",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    rows = result["results"]
    assert [(r["k"], r["precision"], r["reference"]) for r in rows] == [
        (1, "fp32", True),
        (1, "bf16", False),
        (4, "fp32", True),
        (4, "bf16", False),
    ]
    for r in rows:
        assert r["images_per_s"] > 0 and r["step_s"] > 0 and r["projected_search_s"] > 0
        assert r["peak_allocated_bytes"] is None  # CPU: no allocator peak, the saved bytes instead
    saved = {(r["k"], r["precision"]): r["saved_activation_bytes"] for r in rows}
    assert saved[1, "bf16"] < 0.6 * saved[1, "fp32"]  # bf16 autocast saves about half the bytes
    k4 = [r for r in rows if r["k"] == 4]
    assert all(r["saved_ratio"] <= 0.33 for r in k4) and k4[0]["speedup"] == 1.0
    goals = result["goals"]
    assert goals["saved_ratio"]["pass"] is True
    assert goals["search_minutes"]["pass"] is None and goals["speedup"]["pass"] is None  # not the GPU sizes
    assert "PASS saved_ratio" in done.stdout and "x ref" in done.stdout


def test_packing_runs_plain_processes_and_writes_its_json(tmp_path):
    out = tmp_path / "pack.json"
    done = run_script(
        ["bench/pack_searches.py", *TINY, "--processes", "2", "--epochs", "1", "--timeout", "200", "--json", str(out)]
    )
    result = json.loads(out.read_text())
    assert result["alone"]["processes"] == 1 and result["packed"]["processes"] == 2
    assert [p["index"] for p in result["packed"]["per_process"]] == [0, 1]
    assert all(
        p["threads"] == 1 and p["train_images"] == 8 and p["peak_resident_bytes"] > 0
        for p in result["packed"]["per_process"]
    )
    assert result["speedup"] == pytest.approx(result["packed"]["images_per_s"] / result["alone"]["images_per_s"])
    assert result["goal"]["pass"] is None and result["gpu_share"] is None  # CPU: reported, not judged
    assert "2 packed:" in done.stdout


def test_search_speed_stopped_mid_grid_keeps_the_points_measured(tmp_path):
    """SIGTERM, what ``timeout`` sends at a part's limit: the JSON already holds every finished point
    (it is rewritten after each), and the script still prints the goals over them before it exits."""
    out = tmp_path / "speed.json"
    cmd = [
        sys.executable,
        "bench/search_speed.py",
        *TINY,
        "--ks",
        "4",
        "1",
        "--precision",
        "bf16",
        "--memory-format",
        "nchw",
        "channels_last",
        "--no-reference",
        "--json",
        str(out),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while not out.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert out.exists(), "no JSON after the first point"
        before = json.loads(out.read_text())  # what a SIGKILL would leave
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert before["complete"] is False and before["points"] == 4 and before["measured"] == len(before["results"]) >= 1
    result = json.loads(out.read_text())
    rows = result["results"]
    assert result["complete"] is False and 1 <= len(rows) < 4 and result["measured"] == len(rows)
    assert "SIGTERM" in result["stopped"] and rows[: len(before["results"])] == before["results"]
    # --no-reference: only the modes asked for, K=4 first; no reference, so no speed-up
    assert [(r["k"], r["memory_format"]) for r in rows] == [(4, "nchw"), (4, "channels_last"), (1, "nchw")][: len(rows)]
    assert not any(r["reference"] for r in rows) and all(r["speedup"] is None and r["images_per_s"] > 0 for r in rows)
    assert result["goals"]["speedup"]["pass"] is None
    assert "stopped (SIGTERM after" in stdout and "---- speedup" in stdout
    assert " 4     8 bf16          nchw" in stdout  # the first row, printed as soon as it was measured


def test_packing_deadline_covers_the_warm_up_and_keeps_a_json(tmp_path):
    """``--timeout`` is one deadline for the whole run, the wait for the warm-up included: processes
    whose warm-up epoch takes minutes are ended at it, and the JSON says what happened."""
    out = tmp_path / "pack.json"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    slow_warm_up = [
        "--device",
        "cpu",
        "--C",
        "8",
        "--layers",
        "5",
        "--image-size",
        "16",
        "--batch",
        "64",
        "--steps",
        "40",
    ]
    started = time.time()
    done = subprocess.run(
        [
            sys.executable,
            "bench/pack_searches.py",
            *slow_warm_up,
            "--processes",
            "2",
            "--timeout",
            "5",
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    took = time.time() - started
    assert done.returncode == 1, done.stderr[-3000:]
    assert took < 45  # the deadline (5 s) plus start-up, not the warm-up epoch (minutes at these sizes)
    assert "out of time" in done.stderr and "not ready" in done.stderr
    result = json.loads(out.read_text())
    assert result["complete"] is False and result["alone"] is None and result["packed"] is None
    assert result["error"].startswith("out of time") and result["goal"]["pass"] is None
    assert "---- packing: not measured" in done.stdout
    assert list(scratch.iterdir()) == []  # the status folder is gone ...
    leftovers = [pid for pid in os.listdir("/proc") if pid.isdigit() and str(scratch) in _cmdline(pid)]
    assert leftovers == []  # ... and so are the search processes


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
