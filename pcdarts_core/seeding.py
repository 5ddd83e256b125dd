"""Seeding and capturing the random number generators a run depends on."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device); optionally ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS reads this when it first starts in the process: set it before any CUDA work.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # Some CUDA kernels (e.g. max-pool and adaptive-pool backward) have no deterministic form:
    # they warn instead of failing, so deterministic mode is as deterministic as PyTorch allows.
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    # Set either way, so one run's choice never leaks into the next run in the same process.
    torch.backends.cudnn.benchmark = not deterministic


def derived_seed(seed: int, *parts: int) -> int:
    """A reproducible 63-bit seed for one stream (e.g. the batch order of one epoch)."""
    value = seed & 0xFFFFFFFF
    for part in parts:
        value = (value * 6364136223846793005 + 1442695040888963407 + part) % 2**63
    return value


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """The global RNG states a run on ``device`` depends on, in types that load with ``weights_only=True``.
    Only the training device's CUDA generator is captured, so a checkpoint moves between machines."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(_as_tuple(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _as_tuple(value: Any) -> Any:
    """``random.setstate`` wants nested tuples; a round trip through a checkpoint may give lists."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value
