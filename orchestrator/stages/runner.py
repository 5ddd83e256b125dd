"""One Tune stage as one Ray Tune experiment.

A stage's trials are a ``grid_search`` over their descriptions (:meth:`Trial.to_param
<orchestrator.trial.Trial.to_param>`). Running a stage again after an interruption restores the Tune
experiment (``Tuner.restore``): finished trials are kept, unfinished ones continue from their last
checkpoint. Trial failures are retried by Tune (``FailureConfig``) from their last checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ray import tune

from ..errors import StudyInterrupted
from ..gpu_packing import cluster_gpus, measure_gpu_shares, trial_resources
from ..spec import StudySpec
from ..trial import Trial, TrialStatus
from .checkpoints import keep_newest_checkpoints, tune_environment
from .rows import trial_status

Trainable = Callable[[dict[str, Any]], None]


def run_stage(
    name: str,
    trainable: Trainable,
    trials: list[Trial],
    spec: StudySpec,
    storage_path: str,
    callbacks: list[tune.Callback],
    verbose: bool,
    say: Callable[[str], None] = print,
    scheduler: tune.schedulers.TrialScheduler | None = None,
) -> list[tune.Result]:
    """Run (or continue) the Tune experiment ``name`` of one stage; returns one result per trial, in trial order.

    With ``gpus_per_trial: auto`` each distinct setting is probed once here, before Tune starts, and
    its share written into the trial descriptions; a restored experiment keeps the descriptions (and
    shares) Tune saved, so it probes nothing."""
    resources = spec.resources
    stage = trials[0].stage
    path = f"{storage_path.rstrip('/')}/{name}"
    if tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(
            path, trainable=_with_resources(trainable, spec), resume_unfinished=True, resume_errored=True
        )
    else:
        if resources.gpus_per_trial == "auto":
            trials = measure_gpu_shares(trials, resources.gpu_memory_margin, cluster_gpus(), say=say)
        tuner = tune.Tuner(
            _with_resources(trainable, spec),
            param_space={
                "trial": tune.grid_search([trial.to_param() for trial in trials]),
                "threads": max(1, int(resources.cpus_per_trial)),
            },
            tune_config=tune.TuneConfig(
                scheduler=scheduler,
                max_concurrent_trials=resources.max_concurrent_trials,
                # a worker process runs one trial after another: its imports (~7 s) are paid once per slot
                reuse_actors=True,
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage_path,
                callbacks=callbacks,
                failure_config=tune.FailureConfig(max_failures=resources.max_failures),
                # every checkpoint is kept by Tune and pruned by the study (see .checkpoints): a number to keep
                # would force a snapshot of the whole experiment per trial checkpoint
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
                verbose=1 if verbose else 0,
            ),
        )
    environment = tune_environment(len(trials), dict(os.environ))  # snapshots and checkpoints: see .checkpoints
    if scheduler is not None:
        # a trial may report without the scheduler's metric (a diverged epoch has no validation accuracy): ASHA
        # passes over such a result, and Tune must not fail the experiment for it
        environment["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    with _environment(environment):
        grid, stopped = _fit(tuner)
    keep_newest_checkpoints(result.checkpoint for result in grid)  # Tune's final snapshot is written
    if stopped:
        raise StudyInterrupted(f"stage {stage}: stopped by Ctrl-C")
    by_key = {Trial.from_param(result.config).key: result for result in grid if result.config}
    missing = [trial.key for trial in trials if trial.key not in by_key]
    stops = scheduler is not None
    unfinished = [key for key, result in by_key.items() if trial_status(result, stops) == TrialStatus.INTERRUPTED]
    if missing or unfinished:
        raise StudyInterrupted(
            f"stage {stage}: {len(missing) + len(unfinished)} of {len(trials)} trials did not finish"
        )
    return [by_key[trial.key] for trial in trials]


def concurrent_slots(spec: StudySpec, results: list[tune.Result]) -> int:
    """How many of a stage's trials the Ray cluster could run at once: its CPUs (and GPUs) over what a trial asks
    for (with ``gpus_per_trial: auto``, the median of the shares the trials were given), at most
    ``max_concurrent_trials`` and the number of trials."""
    import ray

    resources, cluster = spec.resources, ray.cluster_resources()
    slots = [len(results), int(cluster.get("CPU", 0) // resources.cpus_per_trial)]
    if resources.max_concurrent_trials:
        slots.append(resources.max_concurrent_trials)
    shares = sorted(
        float(gpus)
        for gpus in (Trial.from_param(result.config).gpus for result in results if result.config)
        if isinstance(gpus, (int, float)) and gpus > 0
    )
    if shares:
        slots.append(int(cluster.get("GPU", 0) // shares[len(shares) // 2]))
    return max(1, min(slots))


def worker_processes(results: list[tune.Result]) -> int:
    """The distinct worker processes (node, PID) that ran the trials' epochs."""
    seen = set()
    for result in results:
        history = result.metrics_dataframe
        if history is not None and {"node_id", "worker_pid"} <= set(history.columns):
            seen.update(map(tuple, history[["node_id", "worker_pid"]].dropna().itertuples(index=False)))
    return len(seen)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Environment variables set for the block (Tune reads these when ``fit`` starts), then put back."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _fit(tuner: tune.Tuner) -> tuple[tune.ResultGrid, bool]:
    """``tuner.fit()``, and whether Ctrl-C was pressed during it. Ray Tune catches the first SIGINT
    (it stops the trials and saves the experiment) and returns normally, even when every trial had
    just finished; its handler also stays installed after ``fit``. Here the handler of before is put
    back, and a Ctrl-C that Tune caught is reported, so that the study stops as asked."""
    no_tune_handler = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") != "0"
    if threading.current_thread() is not threading.main_thread() or no_tune_handler:
        return tuner.fit(), False
    before = signal.getsignal(signal.SIGINT)
    try:
        grid = tuner.fit()
    finally:
        after = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, before)
    return grid, after is before  # Tune's handler puts the previous one back when it catches a SIGINT


def _with_resources(trainable: Trainable, spec: StudySpec) -> Any:
    """The trainable with each trial's resources: as the spec says, or with ``gpus_per_trial: auto``
    the GPU share measured before the stage and held by the trial's description (see
    :mod:`orchestrator.gpu_packing`)."""
    resources = spec.resources
    if resources.gpus_per_trial == "auto":
        return tune.with_resources(trainable, trial_resources)
    return tune.with_resources(trainable, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})


def _trial_name(trial: Any) -> str:
    return Trial.from_param(trial.config).key
