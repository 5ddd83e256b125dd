"""Per-epoch schedules in closed form: the learning rate and the drop-path probability.

Closed forms (a function of the epoch, not a stateful scheduler) make resuming trivial and
let a run be extended: with a larger ``epochs`` the schedule runs on to the new end from
where the run stands.
"""

from __future__ import annotations

import math
from typing import Literal

Schedule = Literal["cosine", "linear"]


def learning_rate(
    epoch: int,
    *,
    lr: float,
    lr_min: float,
    epochs: int,
    schedule: Schedule = "cosine",
    warmup_epochs: int = 0,
) -> float:
    """The learning rate of epoch ``epoch`` (0-based).

    ``cosine`` anneals from ``lr`` at epoch 0 to ``lr_min`` at ``epochs``; ``linear`` decays
    linearly between the same ends. During the first ``warmup_epochs`` epochs the rate is
    additionally scaled by ``(epoch + 1) / warmup_epochs`` (the linear warm-up of the
    PC-DARTS ImageNet protocol).
    """
    progress = min(epoch, epochs) / epochs
    if schedule == "cosine":
        shape = (1 + math.cos(math.pi * progress)) / 2
    elif schedule == "linear":
        shape = 1 - progress
    else:
        raise ValueError(f"unknown schedule {schedule!r}: use 'cosine' or 'linear'")
    rate = lr_min + (lr - lr_min) * shape
    if epoch < warmup_epochs:
        rate *= (epoch + 1) / warmup_epochs
    return rate


def linear_ramp(epoch: int, epochs: int, final: float) -> float:
    """``final * epoch / epochs``: 0 in the first epoch, rising linearly (the DARTS drop-path ramp)."""
    return final * min(epoch, epochs) / epochs
