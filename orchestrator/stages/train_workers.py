"""A trial on several processes: Ray Train's ``TorchTrainer`` inside the trial's Tune function.

With ``resources.workers_per_trial: N`` above 1, a search trial's Tune function (the pattern Ray documents
for Tune + Train) starts a ``TorchTrainer`` of N workers, each with ``cpus_per_trial`` CPUs and
``gpus_per_trial`` GPUs, whose process group (NCCL on GPUs, gloo on CPUs) Ray Train sets up. The workers
run the search data parallel (:mod:`pcdarts_core.distributed`) through the same epoch loop as a
one-process trial (:func:`~.trainable.report_epochs`), reporting every epoch to Ray Train, the first
worker with the checkpoint. A callback in Ray Train's controller hands each report to the Tune function,
which reports it to Tune with its checkpoint: the study sees the epochs, checkpoints, MLflow runs and
failures of a search on N workers as of any other trial.

Failures: Ray Train restarts a worker group that lost a worker from its last checkpoint
(``FailureConfig(max_failures)``, the study's ``max_failures``); when it gives up, the trial fails and
Tune retries it from the last checkpoint Tune holds, which the Tune function hands to the workers.
Ray Train's own run folder (``STORAGE/train/<trial>-<attempt>``, on the study's storage: a local or shared
folder, or a ``s3://`` URI) is only a way station: Tune keeps the checkpoints, and the folder is removed when
the attempt ends (or, if it could not be, when the trial's next attempt starts).
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.fs
from pydantic import BaseModel, ConfigDict
from ray import train, tune
from ray.train.torch import TorchTrainer
from ray.util.queue import Queue

#: Seconds the Tune function waits for a report before looking again whether the workers are still running.
POLL_S = 0.5


class Workers(BaseModel):
    """How many processes run one trial, and what each holds; ``storage`` is where Ray Train's run folders go
    (the study's Tune storage, shared on a cluster)."""

    model_config = ConfigDict(frozen=True)

    count: int
    cpus: float
    gpus: float
    max_failures: int
    storage: str

    def per_worker(self) -> dict[str, float]:
        return {"CPU": self.cpus, **({"GPU": self.gpus} if self.gpus else {})}


class _ForwardReports(train.UserCallback):
    """Runs in Ray Train's controller: hands each report (the first worker's metrics, and the checkpoint it was
    given: its path and filesystem) to the Tune function through ``reports``."""

    def __init__(self, reports: Queue) -> None:
        self.reports = reports

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        self.reports.put((metrics[0], checkpoint))


def train_report(metrics: dict[str, Any], folder: Path | None) -> None:
    """Report an epoch to Ray Train, from a worker (every worker reports; the first one with the checkpoint)."""
    train.report(metrics, checkpoint=train.Checkpoint.from_directory(folder) if folder is not None else None)


def worker_checkpoint(loop_config: dict[str, Any]) -> Any:
    """The checkpoint a worker resumes from: Ray Train's latest (after it restarted the workers), else the Tune
    trial's (after Tune retried the trial or restored the study), else None."""
    return train.get_checkpoint() or loop_config.get("resume")


def run_on_workers(loop: Callable[[dict[str, Any]], None], params: dict[str, Any], workers: Workers, key: str) -> None:
    """From a Tune function: run ``loop(loop_config)`` on ``workers.count`` Ray Train workers, with
    ``loop_config = {"params": params, "resume": <the Tune trial's checkpoint, or None>}``, and report each of
    their epochs to Tune. Raises Ray Train's error when its retries are spent."""
    _remove_runs(workers.storage, f"{key}-")  # an earlier attempt's, had it no time to remove its own
    reports = Queue(actor_options={"num_cpus": 0})
    name = f"{key}-{uuid.uuid4().hex[:8]}"
    trainer = TorchTrainer(
        loop,
        train_loop_config={"params": params, "resume": tune.get_checkpoint()},
        scaling_config=train.ScalingConfig(
            num_workers=workers.count, use_gpu=workers.gpus > 0, resources_per_worker=workers.per_worker()
        ),
        run_config=train.RunConfig(
            name=name,
            storage_path=workers.storage,
            callbacks=[_ForwardReports(reports)],
            failure_config=train.FailureConfig(max_failures=workers.max_failures),
        ),
    )
    outcome: dict[str, BaseException] = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as err:  # handed to the Tune function's thread, which raises it
            outcome["error"] = err

    runner = threading.Thread(target=fit, name=f"train-{key}", daemon=True)
    runner.start()
    try:
        while runner.is_alive() or not reports.empty():
            try:
                metrics, checkpoint = reports.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if checkpoint is not None:  # Tune copies it into the trial's folder before report returns
                checkpoint = tune.Checkpoint(checkpoint.path, filesystem=checkpoint.filesystem)
            tune.report(metrics, checkpoint=checkpoint)
        runner.join()
        if "error" in outcome:
            raise outcome["error"]
    finally:
        if not runner.is_alive():  # else the workers still write there: the next attempt removes it
            _remove_runs(workers.storage, name)
        reports.shutdown()


def _remove_runs(storage: str, prefix: str) -> None:
    """Delete Ray Train's run folders ``STORAGE/PREFIX*``, on the storage's own filesystem (local, or a URI's)."""
    if "://" in storage:
        filesystem, root = pyarrow.fs.FileSystem.from_uri(storage)
    else:
        filesystem, root = pyarrow.fs.LocalFileSystem(), str(Path(storage).resolve())
    try:
        found = filesystem.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
        for info in found:
            if info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith(prefix):
                filesystem.delete_dir(info.path)
    except OSError:  # nothing there yet, or gone meanwhile
        pass
