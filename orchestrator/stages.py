"""One stage of a study as one Ray Tune experiment, and its trials as table rows.

A stage's trials are a ``grid_search`` over trial descriptions (key, stage, setting, seed,
config). Running a stage again after an interruption restores the Tune experiment
(``Tuner.restore``): finished trials are kept, unfinished ones continue from their last
checkpoint. Trial failures are retried by Tune (``FailureConfig``) from their last checkpoint.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Callable

from ray import tune

from .errors import StudyInterrupted, error_line
from .spec import StudySpec
from .trainables import DIVERGED, FINISHED

#: The final values of a finished trial, from its last report.
FINAL_VALUES = ("train_loss", "train_acc", "valid_loss", "valid_acc", "test_loss", "test_acc", "parameters", "multiply_adds", "images_per_s")
#: Columns every trial row has, in this order.
TRIAL_COLUMNS = (
    *("stage", "trial", "setting", "seed", "k", "edge_norm", "genotype_id", "source", "status", "epochs", "epochs_planned"),
    *FINAL_VALUES,
    *("time_s", "peak_memory_bytes", "cpus", "gpus", "genotype", "error", "tune_trial_id"),
)


def run_stage(
    name: str,
    trainable: Callable[[dict[str, Any]], None],
    trials: list[dict[str, Any]],
    spec: StudySpec,
    storage_path: str,
    callbacks: list[tune.Callback],
    verbose: bool,
    say: Callable[[str], None] = print,
) -> list[tune.Result]:
    """Run (or continue) the Tune experiment ``name`` of one stage; returns one result per trial, in trial order.

    With ``gpus_per_trial: auto`` each distinct setting is probed once here, before Tune starts, and
    its share written into the trial descriptions; a restored experiment keeps the descriptions (and
    shares) Tune saved, so it probes nothing."""
    resources = spec.resources
    stage = trials[0]["stage"]
    path = f"{storage_path.rstrip('/')}/{name}"
    if tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable=_with_resources(trainable, spec), resume_unfinished=True, resume_errored=True)
    else:
        if resources.gpus_per_trial == "auto":
            from .gpu_packing import cluster_gpus, measure_gpu_shares

            measure_gpu_shares(trials, resources.gpu_memory_margin, cluster_gpus(), say=say)
        tuner = tune.Tuner(
            _with_resources(trainable, spec),
            param_space={"trial": tune.grid_search(trials), "threads": max(1, int(resources.cpus_per_trial))},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=resources.max_concurrent_trials,
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage_path,
                callbacks=callbacks,
                failure_config=tune.FailureConfig(max_failures=resources.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                verbose=1 if verbose else 0,
            ),
        )
    grid, stopped = _fit(tuner)
    if stopped:
        raise StudyInterrupted(f"stage {stage}: stopped by Ctrl-C")
    by_key = {result.config["trial"]["key"]: result for result in grid if result.config}
    missing = [t["key"] for t in trials if t["key"] not in by_key]
    unfinished = [key for key, result in by_key.items() if trial_status(result) == "interrupted"]
    if missing or unfinished:
        raise StudyInterrupted(f"stage {stage}: {len(missing) + len(unfinished)} of {len(trials)} trials did not finish")
    return [by_key[t["key"]] for t in trials]


def _fit(tuner: tune.Tuner) -> tuple[tune.ResultGrid, bool]:
    """``tuner.fit()``, and whether Ctrl-C was pressed during it. Ray Tune catches the first SIGINT
    (it stops the trials and saves the experiment) and returns normally, even when every trial had
    just finished; its handler also stays installed after ``fit``. Here the handler of before is put
    back, and a Ctrl-C that Tune caught is reported, so that the study stops as asked."""
    if threading.current_thread() is not threading.main_thread() or os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") != "0":
        return tuner.fit(), False
    before = signal.getsignal(signal.SIGINT)
    try:
        grid = tuner.fit()
    finally:
        after = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, before)
    return grid, after is before  # Tune's handler puts the previous one back when it catches a SIGINT


def _with_resources(trainable: Callable[[dict[str, Any]], None], spec: StudySpec) -> Any:
    """The trainable with each trial's resources: as the spec says, or with ``gpus_per_trial: auto``
    the GPU share measured before the stage and held by the trial's description (see
    :mod:`orchestrator.gpu_packing`)."""
    resources = spec.resources
    if resources.gpus_per_trial == "auto":
        from .gpu_packing import trial_resources

        return tune.with_resources(trainable, trial_resources)
    return tune.with_resources(trainable, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})


def _trial_name(trial: Any) -> str:
    return trial.config["trial"]["key"]


def trial_status(result: tune.Result) -> str:
    """finished, diverged, error (failed after its retries) or interrupted (neither ended nor failed)."""
    status = (result.metrics or {}).get("trial_status")
    if status in (FINISHED, DIVERGED):
        return status
    if result.error is not None:
        return "error"
    return "interrupted"


def trial_row(result: tune.Result) -> dict[str, Any]:
    """One report row: the trial's identity, its final values, time and peak memory."""
    trial = result.config["trial"]
    config = trial["config"]
    metrics = dict(result.metrics or {})
    history = result.metrics_dataframe
    epochs_rows = None
    if history is not None and "epoch" in history:
        # the epochs run (a diverged trial's last report has no epoch values); a trial restored after its
        # last checkpoint reports its last epoch again: count each epoch once
        ran = history["epoch"].notna() & (history["epoch_time_s"].notna() if "epoch_time_s" in history else True)
        epochs_rows = history[ran].drop_duplicates("epoch", keep="last")
    time_s = float(epochs_rows["epoch_time_s"].sum()) if epochs_rows is not None and "epoch_time_s" in epochs_rows else None
    peak_value = epochs_rows["peak_memory_bytes"].max() if epochs_rows is not None and "peak_memory_bytes" in epochs_rows else None
    peak = int(peak_value) if peak_value is not None and peak_value == peak_value else None
    status = trial_status(result)
    row = {
        "stage": trial["stage"],
        "trial": trial["key"],
        "setting": trial["setting"],
        "seed": trial["seed"],
        "k": config.get("k"),
        "edge_norm": config.get("edge_norm"),
        "genotype_id": trial.get("genotype_id"),
        "source": trial.get("source"),
        "status": status,
        "epochs": metrics.get("epoch"),
        "epochs_planned": config["epochs"],
        "time_s": time_s,
        "peak_memory_bytes": peak,
        "cpus": trial["cpus"],
        "gpus": trial["gpus"],
        "genotype": metrics.get("genotype") if status == FINISHED else None,
        "error": metrics.get("error") or (error_line(result.error) if result.error else None),
        "tune_trial_id": metrics.get("trial_id"),
    }
    if status == FINISHED:
        row.update({name: metrics.get(name) for name in FINAL_VALUES})
    return {column: row.get(column) for column in TRIAL_COLUMNS}


def epoch_rows(result: tune.Result) -> list[dict[str, Any]]:
    """Every epoch the trial reported (from Tune's own result files), for catching up MLflow."""
    history = result.metrics_dataframe
    if history is None or "epoch" not in history:
        return []
    return [row for row in history.to_dict("records") if row.get("epoch") == row.get("epoch")]
