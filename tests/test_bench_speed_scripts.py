"""The issue-6 benchmark commands run end to end on the CPU at tiny sizes and write their JSON."""

from __future__ import annotations

import json
import subprocess
import sys
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
    done = run_script(["bench/search_speed.py", *TINY, "--ks", "1", "4", "--precision", "fp32", "bf16",
                       "--memory-format", "nchw", "--json", str(out)])
    result = json.loads(out.read_text())
    rows = result["results"]
    assert [(r["k"], r["precision"], r["reference"]) for r in rows] == [(1, "fp32", True), (1, "bf16", False), (4, "fp32", True), (4, "bf16", False)]
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
    done = run_script(["bench/pack_searches.py", *TINY, "--processes", "2", "--epochs", "1", "--timeout", "200", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["alone"]["processes"] == 1 and result["packed"]["processes"] == 2
    assert [p["index"] for p in result["packed"]["per_process"]] == [0, 1]
    assert all(p["threads"] == 1 and p["train_images"] == 8 and p["peak_resident_bytes"] > 0 for p in result["packed"]["per_process"])
    assert result["speedup"] == pytest.approx(result["packed"]["images_per_s"] / result["alone"]["images_per_s"])
    assert result["goal"]["pass"] is None and result["gpu_share"] is None  # CPU: reported, not judged
    assert "2 packed:" in done.stdout
