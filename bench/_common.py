"""What the benchmark scripts share: device synchronisation, saved-activation bytes, machine facts.

The scripts run as ``python bench/NAME.py`` from the repository root, so this module is imported
as ``_common`` (the script's folder is on ``sys.path``).
"""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

MiB = 2**20


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def saved_activation_bytes(model: nn.Module, x: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> int:
    """Bytes of the distinct storages autograd saves in one forward pass (``forward(x)``, default
    ``model(x)``), the model's parameters and buffers excluded. Under autocast this includes the
    bfloat16 copies of the weights that the pass casts and saves."""
    excluded = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[tuple[str, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in excluded:
            seen[(str(t.device), ptr)] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = (forward or model)(x)  # kept alive until counted, so no saved storage can be freed and reused
        total = sum(seen.values())
    del out
    return total


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
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts.update(gpu_memory_bytes=int(props.total_memory), cuda_version=torch.version.cuda,
                     cudnn_version=torch.backends.cudnn.version())
    return facts
