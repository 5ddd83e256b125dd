"""The trials of a Tune stage as table rows (``search.csv``, ``retrain.csv``), read from Ray Tune's results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import error_line
from ..trial import Trial, TrialStatus

if TYPE_CHECKING:
    from ray import tune

#: The folder, in a finished trial's last checkpoint, of the files its MLflow run keeps (a retraining: the trained
#: network), and the name of the network's weights file (a ``state_dict``) there.
FINAL_FILES = "final"
TRAINED_WEIGHTS = "weights.pt"
#: The final values of a finished trial, from its last report.
FINAL_VALUES = (
    *("train_loss", "train_acc", "valid_loss", "valid_acc", "test_loss", "test_acc"),
    *("parameters", "multiply_adds", "images_per_s", "activation_bytes_per_image"),
)
#: Columns every trial row has, in this order.
TRIAL_COLUMNS = (
    *(
        "stage",
        "trial",
        "setting",
        "seed",
        "k",
        "edge_norm",
        "genotype_id",
        "source",
        "status",
        "epochs",
        "epochs_planned",
    ),
    *FINAL_VALUES,
    *("time_s", "peak_memory_bytes", "cpus", "gpus", "genotype", "error", "tune_trial_id"),
)


def trial_status(result: tune.Result, stops: bool = False) -> TrialStatus:
    """How the trial ended: as it reported (finished, diverged), else error (failed after its retries)
    or, neither ended nor failed, stopped early when its stage has a scheduler that stops trials
    (``stops``: the experiment ran to its end, so only the scheduler ended it), else interrupted."""
    reported = TrialStatus.reported(result.metrics)
    if reported is not None:
        return reported
    if result.error is not None:
        return TrialStatus.ERROR
    return TrialStatus.ended_without_report(result.metrics, stops)


def trial_row(result: tune.Result, stops: bool = False) -> dict[str, Any]:
    """One report row: the trial's identity, its final values, time and peak memory (a trial stopped early:
    its last epoch's values; see :func:`trial_status` for ``stops``)."""
    trial = Trial.from_param(result.config)
    config = trial.config
    metrics = dict(result.metrics or {})
    history = result.metrics_dataframe
    epochs_rows = None
    if history is not None and "epoch" in history:
        # the epochs run (a diverged trial's last report has no epoch values); a trial restored after its
        # last checkpoint reports its last epoch again: count each epoch once
        ran = history["epoch"].notna() & (history["epoch_time_s"].notna() if "epoch_time_s" in history else True)
        epochs_rows = history[ran].drop_duplicates("epoch", keep="last")
    has = epochs_rows is not None
    time_s = float(epochs_rows["epoch_time_s"].sum()) if has and "epoch_time_s" in epochs_rows else None
    peak_value = epochs_rows["peak_memory_bytes"].max() if has and "peak_memory_bytes" in epochs_rows else None
    peak = int(peak_value) if peak_value is not None and peak_value == peak_value else None
    status = trial_status(result, stops)
    row = {
        "stage": trial.stage,
        "trial": trial.key,
        "setting": trial.setting,
        "seed": trial.seed,
        "k": config.get("k"),
        "edge_norm": config.get("edge_norm"),
        "genotype_id": trial.genotype_id,
        "source": trial.source,
        "status": status.value,
        "epochs": metrics.get("epoch"),
        "epochs_planned": config["epochs"],
        "time_s": time_s,
        "peak_memory_bytes": peak,
        "cpus": trial.cpus,
        "gpus": trial.gpus,
        "genotype": metrics.get("genotype") if status == TrialStatus.FINISHED else None,
        "error": metrics.get("error") or (error_line(result.error) if result.error else None),
        "tune_trial_id": metrics.get("trial_id"),
    }
    if status.has_final_values:
        row.update({name: metrics.get(name) for name in FINAL_VALUES})
    return {column: row.get(column) for column in TRIAL_COLUMNS}


def epoch_rows(result: tune.Result) -> list[dict[str, Any]]:
    """Every epoch the trial reported (from Tune's own result files), for catching up MLflow."""
    history = result.metrics_dataframe
    if history is None or "epoch" not in history:
        return []
    return [row for row in history.to_dict("records") if row.get("epoch") == row.get("epoch")]
