"""Speed options shared by the search and the retraining: they change kernels, never the method.

``precision`` ("auto", "fp32", "bf16") and ``channels_last`` (None = auto) are settings of every run
(:class:`~pcdarts_core.config.RunSettings`); "auto" means bf16 autocast and channels-last on a GPU
and neither on the CPU, where bf16 has no fast kernels and channels-last was seen to hang a oneDNN
kernel on one-channel images. Under bf16 autocast the convolutions run in bfloat16 while the
parameters (α, β and the weights), their gradients, the optimiser states and the loss stay float32.
On CUDA the optimisers use their fused kernels. The fp32 options (channels-last, compile) change
results only by float rounding; bf16 changes them by bf16's precision, tested to stay within 2% on the
losses with α moving the same way (``tests/test_search_speed_options.py``). None of these is part of a
run's identity: a run may resume with other values, as with another device.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import torch

from .errors import ConfigError

__all__ = [
    "SpeedOptions",
    "check_memory_format",
    "full_precision",
    "load_optimizer_state",
    "optimizer_kernels",
    "speed_options",
]


class SpeedOptions(NamedTuple):
    """(bf16 autocast, channels_last) of one run, resolved for its device."""

    bf16: bool
    channels_last: bool

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """A fresh autocast context for one forward pass (a no-op in float32)."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def full_precision(logits: torch.Tensor) -> torch.Tensor:
    """Logits from an autocast region in float32 for the loss; float32 and float64 pass unchanged."""
    return logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits


def speed_options(config: Any, device: torch.device) -> SpeedOptions:
    """(bf16 autocast, channels_last) for a device: what the config says, and where it says "auto"
    (precision) or leaves it unset (channels_last), on for a GPU and off for the CPU."""
    on_gpu = device.type == "cuda"
    bf16 = config.precision == "bf16" or (config.precision == "auto" and on_gpu)
    channels_last = config.channels_last if config.channels_last is not None else on_gpu
    return SpeedOptions(bf16, channels_last)


def check_memory_format(options: SpeedOptions, device: torch.device, in_channels: int) -> None:
    """Refuse channels-last on the CPU for one-channel images (see :mod:`pcdarts_core.data.augment`)."""
    if options.channels_last and device.type == "cpu" and in_channels == 1:
        raise ConfigError(
            "channels_last",
            True,
            "on the CPU, one-channel images in channels-last layout send a oneDNN gradient kernel into a "
            "near-endless loop; leave channels_last unset (it is on by default on a GPU only)",
        )


def optimizer_kernels(device: torch.device) -> dict[str, bool]:
    """Keyword arguments choosing the optimisers' kernels: fused (one launch for all parameters) on
    CUDA; on the CPU PyTorch's default, so CPU runs keep their exact numbers."""
    return {"fused": True} if device.type == "cuda" else {}


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)`` keeping this optimiser's kernel choice (fused/foreach): a
    checkpoint written on another device carries that device's choice in its parameter groups, and
    loading decides from it where the step counters live (on the device for fused kernels)."""
    keys = ("fused", "foreach")
    groups = [
        {**saved, **{key: own.get(key) for key in keys}}
        for saved, own in zip(state["param_groups"], optimizer.param_groups)
    ]
    optimizer.load_state_dict({**state, "param_groups": groups})
