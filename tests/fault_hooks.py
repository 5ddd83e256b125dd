"""Faults injected into real trials through the trainables' epoch hook (``PCDARTS_EPOCH_HOOK``, see
:mod:`orchestrator.stages.trainable`). A test names the hook and its target in the environment of the
Ray workers, with this folder on their ``PYTHONPATH``; see :func:`nan_hook_env`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from orchestrator.stages.trainable import EPOCH_HOOK_ENV

#: ``TRIAL_KEY:EPOCH``: the trial whose weights become NaN before that epoch.
NAN_AT_ENV = "PCDARTS_TEST_NAN_AT"
#: Seconds every trial waits before each of its epochs.
PAUSE_ENV = "PCDARTS_TEST_EPOCH_PAUSE_S"


def _hook_env(hook: str) -> dict[str, str]:
    here = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    return {EPOCH_HOOK_ENV: f"{Path(__file__).stem}:{hook}", "PYTHONPATH": path}


def nan_hook_env(key: str, epoch: int) -> dict[str, str]:
    """The environment that makes trial ``key`` diverge in ``epoch`` (its loss NaN, so the core's own
    divergence check stops it)."""
    return {**_hook_env("poison_before_epoch"), NAN_AT_ENV: f"{key}:{epoch}"}


def pause_hook_env(seconds: float) -> dict[str, str]:
    """The environment that makes every trial wait ``seconds`` before each epoch: trials of a tiny study then
    last long enough for a test to stop the study while some run (warm workers start them at once)."""
    return {**_hook_env("pause_before_epoch"), PAUSE_ENV: str(seconds)}


def pause_before_epoch(key: str, run: Any) -> None:
    """The epoch hook: wait ``PAUSE_ENV`` seconds."""
    time.sleep(float(os.environ.get(PAUSE_ENV, "0")))


@torch.no_grad()
def poison_before_epoch(key: str, run: Any) -> None:
    """The epoch hook: every weight of the ``NAN_AT_ENV`` trial NaN right before its epoch."""
    target, _, epoch = os.environ.get(NAN_AT_ENV, "").rpartition(":")
    if target == key and epoch.isdigit() and int(epoch) == run.epoch + 1:
        for parameter in run.model.parameters():
            parameter.fill_(float("nan"))


#: ``RANK:EPOCHS:MARKER``: the Ray Train worker of that rank exits before each of those epochs (comma-separated), once
#: each (while the file ``MARKER-EPOCH``, which it creates, does not exist).
KILL_WORKER_ENV = "PCDARTS_TEST_KILL_WORKER"
#: Seconds the worker waits before it exits: Ray Train's controller collects the workers' reports every 2 s, and
#: the epoch before must be registered for the restarted workers to continue from it.
KILL_GRACE_S = 4.0


def kill_worker_env(rank: int, epochs: list[int], marker: Path) -> dict[str, str]:
    """The environment that makes the search worker of ``rank`` (of a trial on several workers) die before each of
    ``epochs``, the first time only: Ray Train restarts the workers from the last checkpoint (and once its retries
    are spent, Tune retries the trial from the last checkpoint it holds)."""
    return {**_hook_env("kill_worker_before_epoch"), KILL_WORKER_ENV: f"{rank}:{','.join(map(str, epochs))}:{marker}"}


def kill_worker_before_epoch(key: str, run: Any) -> None:
    """The epoch hook: the ``KILL_WORKER_ENV`` worker exits at once, as a killed process does (no clean-up)."""
    rank, epochs, marker = os.environ.get(KILL_WORKER_ENV, "::").split(":", 2)
    if not rank or int(rank) != run.ranks.rank or str(run.epoch + 1) not in epochs.split(","):
        return
    done = Path(f"{marker}-{run.epoch + 1}")
    if not done.exists():
        done.touch()
        time.sleep(KILL_GRACE_S)
        os._exit(1)


#: Every variable the hooks read: a test's driver starts without them unless the test sets them.
HOOK_VARIABLES = (EPOCH_HOOK_ENV, NAN_AT_ENV, PAUSE_ENV, KILL_WORKER_ENV)
