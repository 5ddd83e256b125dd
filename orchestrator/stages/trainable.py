"""What the Ray Tune trainables of the stages share: the epoch loop, its reports and checkpoints.

A trainable runs the core's epoch loop and reports after every epoch with a checkpoint of the
complete run state, so that a retried or restored trial continues from its last epoch (Ray Tune's
own restore: ``tune.get_checkpoint()``). A diverged run is not an error of the study: it reports
``trial_status="diverged"`` and ends, so the study goes on and the report lists it. Trials write
nothing to MLflow: the driver does (see :mod:`orchestrator.tracking`).

Tune runs one trial after another in the same worker process (``reuse_actors``): a trainable keeps nothing
between trials but the loaded dataset (:func:`start`) and the modules it imported, and every run seeds its
own random number generators, so a reused worker starts its next trial without import or loading time and
computes what a fresh one would.

The epoch hook: ``PCDARTS_EPOCH_HOOK=module:function`` names a function that each trial calls as
``function(trial_key, run)`` before each of its epochs, in the worker process (the module must be
importable there). Studies leave it unset; the tests install one to inject faults into real trials
(``tests/fault_hooks.py``: a run whose weights turn NaN).
"""

from __future__ import annotations

import functools
import importlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from pcdarts_core import SearchConfig, TrainConfig, load_dataset
from pcdarts_core.data import DatasetBundle
from pcdarts_core.errors import Diverged
from pcdarts_core.outputs import CHECKPOINT
from pcdarts_core.runner import EpochRunner

from ..trial import RUNNING, STATUS_METRIC, TrialStatus

EPOCH_HOOK_ENV = "PCDARTS_EPOCH_HOOK"
EpochHook = Callable[[str, Any], None]
#: How a trainable reports one epoch: its metrics, and the folder of its checkpoint (None: no checkpoint).
Report = Callable[[dict[str, Any], Path | None], None]


def start(params: dict[str, Any], config: SearchConfig | TrainConfig) -> DatasetBundle:
    """Set the trial's threads (and, in a reused worker, give back the GPU memory the last trial cached); its
    dataset."""
    torch.set_num_threads(max(1, int(params.get("threads", 1))))
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return _dataset(config.dataset, config.data_root, config.download, config.image_size, config.data_loading)


@functools.lru_cache(maxsize=1)
def _dataset(name: str, root: str | None, download: bool, image_size: int | None, loading: str) -> DatasetBundle:
    """The dataset, loaded once per worker process: Tune reuses a worker for the next trial (``reuse_actors``),
    which then finds its data in memory (or, streamed, its list of files). One dataset is kept (the one the
    last trial used); the trials only read it."""
    return load_dataset(name, root, download=download, image_size=image_size, loading=loading)


def restore(kind: type[EpochRunner], data: DatasetBundle, checkpoint: Any = None, **options: Any) -> Any:
    """The run saved in ``checkpoint`` (default: this Tune trial's latest, after a retry or a restored study),
    resumed with ``options`` (:meth:`EpochRunner.resume`), or None when there is none."""
    checkpoint = checkpoint or tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return kind.resume(Path(folder) / CHECKPOINT, data=data, **options)


def tune_report(metrics: dict[str, Any], folder: Path | None) -> None:
    """Report an epoch to Ray Tune (the trials that run in their Tune worker)."""
    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder) if folder is not None else None)


def report_epochs(
    run: Any,
    final: Callable[[Any], dict[str, Any]],
    key: str,
    final_files: Callable[[Any, Path], None] | None = None,
    report: Report = tune_report,
) -> None:
    """Run the remaining epochs, reporting each with a checkpoint; the last report carries the final values, and
    its checkpoint also the files ``final_files(run, folder)`` writes (the driver logs them to MLflow). A run on
    several processes (Ray Train workers, :mod:`.train_workers`) reports from each, the main one alone with the
    checkpoint and the final values (which all compute)."""
    with run:  # a streamed run's loader workers stop when the trial ends
        _report_epochs(run, final, key, final_files, report)


def _report_epochs(
    run: Any,
    final: Callable[[Any], dict[str, Any]],
    key: str,
    final_files: Callable[[Any, Path], None] | None,
    report: Report,
) -> None:
    where = _where()
    hook = epoch_hook()
    main = run.ranks.main
    reported = False
    try:
        while not run.done:
            if hook is not None:
                hook(key, run)
            record = run.run_epoch()
            status = TrialStatus.FINISHED.value if run.done else RUNNING
            metrics = {**_scalars(record), **where, STATUS_METRIC: status}
            # every process computes the final values (a measuring pass may be a collective one), the main reports them
            values = final(run) if run.done else {}
            if not main:
                report(metrics, None)
                reported = True
                continue
            metrics.update(values)
            with tempfile.TemporaryDirectory(prefix="pcdarts-ckpt-") as folder:
                run.save(Path(folder) / CHECKPOINT)
                if run.done and final_files is not None:
                    final_files(run, Path(folder))
                report(metrics, Path(folder))
            reported = True
    except Diverged as err:
        report({"epoch": run.epoch, **where, STATUS_METRIC: TrialStatus.DIVERGED.value, "error": str(err)}, None)
        return
    if not reported and run.history:  # restored after its last epoch was saved: report the final values again
        metrics = {**_scalars(run.history[-1]), **where, STATUS_METRIC: TrialStatus.FINISHED.value}
        values = final(run)
        report({**metrics, **values} if main else metrics, None)


def epoch_hook() -> EpochHook | None:
    """The function ``PCDARTS_EPOCH_HOOK`` names (see the module docstring), or None when it is unset."""
    name = os.environ.get(EPOCH_HOOK_ENV)
    if not name:
        return None
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


def _where() -> dict[str, Any]:
    """The Ray node and the worker process running this trial."""
    return {"node_id": ray.get_runtime_context().get_node_id(), "worker_pid": os.getpid()}


def _scalars(record: Any) -> dict[str, Any]:
    return {name: value for name, value in record.scalars().items() if value is not None}
