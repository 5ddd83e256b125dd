"""Per-epoch schedules in closed form: the learning rate and the drop-path probability.

Closed forms (a function of the epoch, not a stateful scheduler) make resuming trivial and
let a run be extended: with a larger ``epochs`` the schedule runs on to the new end from
where the run stands.
"""

from __future__ import annotations

import math
from typing import Literal

Schedule = Literal["cosine", "linear", "pcdarts_linear"]

#: Epochs at the end of ``pcdarts_linear`` that run on a gentler slope.
PCDARTS_TAIL = 5


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
    linearly between the same ends. ``pcdarts_linear`` is the decay of the PC-DARTS ImageNet
    training script: linear to ``lr_min`` five epochs before the end, and in those last five
    epochs a five times gentler slope that starts from one epoch's worth of the main slope, so
    the final epochs still train (with 5 epochs or fewer it is ``linear``). During the first
    ``warmup_epochs`` epochs the rate is additionally scaled by ``(epoch + 1) / warmup_epochs``
    (the linear warm-up of the same script).
    """
    epoch = min(epoch, epochs)
    tail = PCDARTS_TAIL if schedule == "pcdarts_linear" and epochs > PCDARTS_TAIL else 0
    if schedule == "cosine":
        shape = (1 + math.cos(math.pi * epoch / epochs)) / 2
    elif schedule in ("linear", "pcdarts_linear"):
        main = epochs - tail
        shape = (main - epoch) / main if epoch < main else (epochs - epoch) / (main * tail)
    else:
        raise ValueError(f"unknown schedule {schedule!r}: use 'cosine', 'linear' or 'pcdarts_linear'")
    rate = lr_min + (lr - lr_min) * shape
    if epoch < warmup_epochs:
        rate *= (epoch + 1) / warmup_epochs
    return rate


def linear_ramp(epoch: int, epochs: int, final: float) -> float:
    """``final * epoch / epochs``: 0 in the first epoch, rising linearly (the DARTS drop-path ramp)."""
    return final * min(epoch, epochs) / epochs
