"""Faults injected into real trials through the trainables' epoch hook (``PCDARTS_EPOCH_HOOK``, see
:mod:`orchestrator.stages.trainable`). A test names the hook and its target in the environment of the
Ray workers, with this folder on their ``PYTHONPATH``; see :func:`nan_hook_env`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from orchestrator.stages.trainable import EPOCH_HOOK_ENV

#: ``TRIAL_KEY:EPOCH``: the trial whose weights become NaN before that epoch.
NAN_AT_ENV = "PCDARTS_TEST_NAN_AT"


def nan_hook_env(key: str, epoch: int) -> dict[str, str]:
    """The environment that makes trial ``key`` diverge in ``epoch`` (its loss NaN, so the core's own
    divergence check stops it)."""
    here = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    return {
        EPOCH_HOOK_ENV: f"{Path(__file__).stem}:poison_before_epoch",
        NAN_AT_ENV: f"{key}:{epoch}",
        "PYTHONPATH": path,
    }


@torch.no_grad()
def poison_before_epoch(key: str, run: Any) -> None:
    """The epoch hook: every weight of the ``NAN_AT_ENV`` trial NaN right before its epoch."""
    target, _, epoch = os.environ.get(NAN_AT_ENV, "").rpartition(":")
    if target == key and epoch.isdigit() and int(epoch) == run.epoch + 1:
        for parameter in run.model.parameters():
            parameter.fill_(float("nan"))
