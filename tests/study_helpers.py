"""What the study tests share: the environment of a driver, starting one as a subprocess, waiting
for Tune's result files, and finding (and ending, by PID) the processes a killed driver leaves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


#: The tests follow a running study through Ray Tune's result files in its storage, which Tune copies there
#: from the driver when it snapshots the experiment (every 10 s or more in a study): they ask for a
#: snapshot every half second, unless a test's environment says otherwise.
SNAPSHOT_EVERY_S = "0.5"


def driver(args: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    """``python -m orchestrator.run ARGS``, stdout and stderr into ``log`` (a file, not a pipe: processes
    a killed driver leaves behind would hold a pipe open). ``process.log`` is that file."""
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.run", *args],
            env={
                "TUNE_GLOBAL_CHECKPOINT_S": SNAPSHOT_EVERY_S,
                **env,
                "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
            },
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )
    process.log = log  # type: ignore[attr-defined]
    return process


def run_study(spec: dict, env: dict, where: Path, timeout_s: float = 600) -> tuple[subprocess.Popen, int, str]:
    """Write ``spec`` to ``where/spec.yaml`` and run its study into ``where/study`` to the end: (the driver, its exit
    code, its output)."""
    import yaml

    path = where / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    process = driver([str(path), "--out", str(where / "study")], env, where, where / "driver.log")
    code, out = finish(process, timeout_s)
    return process, code, out


def output(process: subprocess.Popen) -> str:
    return process.log.read_text(errors="replace")  # type: ignore[attr-defined]


def finish(process: subprocess.Popen, timeout_s: float) -> tuple[int, str]:
    """Wait for the driver to end; (exit code, its output). Killed (and failed) if it takes longer."""
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_driver(process)
        raise AssertionError(f"the driver did not end within {timeout_s} s: {output(process)[-3000:]}") from None
    return process.returncode, output(process)


def result_rows(path: Path) -> list[dict]:
    """The rows of one Tune ``result.json`` (a torn last line, being written, is skipped)."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return rows


def trial_results(folder: Path, stage: str) -> dict[str, list[dict]]:
    """Each trial's result rows of one stage, by trial key (the trial folders are named by key)."""
    return {path.parent.name: result_rows(path) for path in sorted(folder.glob(f"tune/*-{stage}/*/result.json"))}


def finished(rows: list[dict]) -> bool:
    return any(row.get("trial_status") == "finished" for row in rows)


def wait_for(condition: Callable[[], object], process: subprocess.Popen | None, timeout_s: float, what: str) -> object:
    """Poll ``condition`` until it is truthy; fails if ``process`` ends first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(
                f"the driver ended (exit {process.returncode}) before {what}: {output(process)[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s} s")
        time.sleep(0.2)


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    """The processes of ``pids`` still running (zombies count as ended)."""
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


#: Ray's node agents: after their raylet dies they try to report it to the GCS, which is gone too, and
#: linger for a while; nothing waits for them, they are ended by PID.
RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError:
        return ""


def kill_driver(process: subprocess.Popen, grace_s: float = 30.0) -> dict[int, str]:
    """SIGKILL the driver and wait up to ``grace_s`` seconds for every process it had started (but Ray's
    agents) to end by itself; returns those that outlived it (PID: command line), after ending them
    by PID, so that nothing leaks from the test."""
    below = descendants(process.pid)
    process.kill()
    process.wait()
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(not _command(pid).startswith(RAY_AGENTS) for pid in alive(below)):
        time.sleep(0.2)
    survivors = {}
    for pid in alive(below):
        survivors[pid] = _command(pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return survivors
