"""One Tune stage as one Ray Tune experiment.

A stage's trials are a ``grid_search`` over their descriptions (:meth:`Trial.to_param
<orchestrator.trial.Trial.to_param>`). Running a stage again after an interruption restores the Tune
experiment (``Tuner.restore``): finished trials are kept, unfinished ones continue from their last
checkpoint. Trial failures are retried by Tune (``FailureConfig``) from their last checkpoint.

A stage whose trials run on several Ray Train workers (``workers`` above 1: the searches with
``resources.workers_per_trial``, :mod:`.train_workers`) gives each Tune trial no CPU for its Tune function (a
token byte of memory, as Tune refuses a trial of no resources), the workers the trial's resources each, and runs
at most as many trials at once as the cluster holds workers for.
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
from .train_workers import Workers

Trainable = Callable[[dict[str, Any]], None]
#: What a trial's Tune function holds while Ray Train workers run the trial: no CPU (a share of one would leave the
#: workers of a trial that asks for all CPUs waiting forever), and a byte of memory, as Tune refuses a trial of none.
TRAIN_DRIVER_RESOURCES = {"cpu": 0, "gpu": 0, "memory": 1}


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
    workers: int = 1,
) -> list[tune.Result]:
    """Run (or continue) the Tune experiment ``name`` of one stage; returns one result per trial, in trial order.
    ``workers``: the processes each trial runs on (see the module's docstring).

    With ``gpus_per_trial: auto`` each distinct setting is probed once here, before Tune starts, and
    its share written into the trial descriptions; a restored experiment keeps the descriptions (and
    shares) Tune saved, so it probes nothing."""
    resources = spec.resources
    stage = trials[0].stage
    path = f"{storage_path.rstrip('/')}/{name}"
    if tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(
            path, trainable=_with_resources(trainable, spec, workers), resume_unfinished=True, resume_errored=True
        )
    else:
        if resources.gpus_per_trial == "auto":
            trials = measure_gpu_shares(trials, resources.gpu_memory_margin, cluster_gpus(), say=say)
        param_space: dict[str, Any] = {
            "trial": tune.grid_search([trial.to_param() for trial in trials]),
            "threads": max(1, int(resources.cpus_per_trial)),
        }
        if workers > 1:
            param_space["workers"] = Workers(
                count=workers,
                cpus=resources.cpus_per_trial,
                gpus=float(resources.gpus_per_trial),
                max_failures=resources.max_failures,
                storage=f"{storage_path.rstrip('/')}/train",
            ).model_dump()
        tuner = tune.Tuner(
            _with_resources(trainable, spec, workers),
            param_space=param_space,
            tune_config=tune.TuneConfig(
                scheduler=scheduler,
                max_concurrent_trials=_max_concurrent(spec, workers),
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


def concurrent_slots(spec: StudySpec, results: list[tune.Result], workers: int = 1) -> int:
    """How many of a stage's trials the Ray cluster could run at once: its CPUs (and GPUs) over what a trial asks
    for (with ``gpus_per_trial: auto``, the median of the shares the trials were given; on ``workers`` processes,
    that many times the CPUs, and the GPUs each trial holds), at most ``max_concurrent_trials`` and the number of
    trials."""
    import ray

    resources, cluster = spec.resources, ray.cluster_resources()
    shares = sorted(
        float(gpus)
        for gpus in (Trial.from_param(result.config).gpus for result in results if result.config)
        if isinstance(gpus, (int, float)) and gpus > 0
    )
    gpus = shares[len(shares) // 2] if shares else 0.0  # a trial's GPUs, all its workers'
    slots = [len(results), _trials_that_fit(cluster, resources.cpus_per_trial * workers, gpus)]
    if resources.max_concurrent_trials:
        slots.append(resources.max_concurrent_trials)
    return max(1, min(slots))


def _max_concurrent(spec: StudySpec, workers: int) -> int | None:
    """``max_concurrent_trials``; for trials on several workers, whose resources Tune does not see (Ray Train asks
    for them), at most as many as the cluster has the workers' CPUs and GPUs for."""
    import ray

    resources = spec.resources
    if workers == 1:
        return resources.max_concurrent_trials
    gpus = resources.gpus_per_trial * workers if isinstance(resources.gpus_per_trial, float) else 0.0
    fits = max(1, _trials_that_fit(ray.cluster_resources(), resources.cpus_per_trial * workers, gpus))
    return min(fits, resources.max_concurrent_trials or fits)


def _trials_that_fit(cluster: dict[str, float], cpus: float, gpus: float) -> int:
    """How many trials that each hold ``cpus`` CPUs and ``gpus`` GPUs the cluster's resources hold at once."""
    fits = int(cluster.get("CPU", 0) // cpus)
    if gpus > 0:
        fits = min(fits, int(cluster.get("GPU", 0) // gpus))
    return fits


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


def _with_resources(trainable: Trainable, spec: StudySpec, workers: int = 1) -> Any:
    """The trainable with each trial's resources: as the spec says, or with ``gpus_per_trial: auto``
    the GPU share measured before the stage and held by the trial's description (see
    :mod:`orchestrator.gpu_packing`); on several workers, next to nothing (the workers ask for theirs)."""
    resources = spec.resources
    if workers > 1:
        return tune.with_resources(trainable, TRAIN_DRIVER_RESOURCES)
    if resources.gpus_per_trial == "auto":
        return tune.with_resources(trainable, trial_resources)
    return tune.with_resources(trainable, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})


def _trial_name(trial: Any) -> str:
    return Trial.from_param(trial.config).key
