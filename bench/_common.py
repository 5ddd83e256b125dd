"""What the benchmark scripts share: device synchronisation, machine facts,
JSON written so that a killed run keeps what it measured.

The scripts run as ``python bench/NAME.py`` from the repository root, so this module is imported
as ``_common`` (the script's folder is on ``sys.path``). The repository root is not on it: they
import ``pcdarts_core`` from the installed package (``pip install -e .``) or from ``PYTHONPATH``
(``bench/gpu_check.sh`` puts the root there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import platform
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

MiB = 2**20


class Stopped(Exception):
    """SIGTERM arrived (what ``timeout`` sends): stop measuring and keep what was measured."""


@dataclasses.dataclass
class StopRequest:
    """Set by :func:`sigterm_stops`'s handler: the signal's name once one arrived."""

    signal: str | None = None

    def check(self) -> None:
        """Raise :class:`Stopped` if a signal arrived (in case its exception was swallowed, say in a
        ``__del__`` it interrupted)."""
        if self.signal:
            raise Stopped(self.signal)


@contextlib.contextmanager
def sigterm_stops() -> Iterator[StopRequest]:
    """Within the block SIGTERM raises :class:`Stopped` in the main thread instead of ending the process
    on the spot, so the script can write what it has before it exits."""
    request = StopRequest()

    def stop(signum: int, frame: object) -> None:
        request.signal = signal.Signals(signum).name
        raise Stopped(request.signal)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield request
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` whole or not at all (a temporary file renamed over it), so a run
    killed mid-write leaves the previous version rather than half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(device: torch.device) -> dict[str, Any]:
    """Facts about where a benchmark ran, for its JSON."""
    facts = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_1min_at_start": os.getloadavg()[0],
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts.update(
            gpu_memory_bytes=int(props.total_memory),
            cuda_version=torch.version.cuda,
            cudnn_version=torch.backends.cudnn.version(),
        )
    return facts
