"""The training device: choosing it and measuring its peak memory."""

from __future__ import annotations

import resource

import torch

from .errors import UserInputError


def resolve_device(name: str) -> torch.device:
    """``'auto'`` (CUDA when available), ``'cpu'``, ``'cuda'`` or ``'cuda:N'`` as a checked device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserInputError(f"device={name!r}: not a device; use 'auto', 'cpu' or 'cuda[:N]'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"device={name!r}: CUDA is not available here; use 'auto' or 'cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UserInputError(f"device={name!r}: this machine has {count} GPU(s); use cuda:0 .. cuda:{count - 1}")
    return device


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory measurement (CUDA only; the CPU figure is the process's peak so far)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak CUDA memory allocated since :func:`reset_peak_memory`; on the CPU the process's peak
    resident size so far (Linux ``ru_maxrss``)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
