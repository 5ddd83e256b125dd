"""Completing a stage's MLflow runs from Ray Tune's own results, and closing the runs of a stopped study."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import StudyInterrupted, error_line, one_line
from ..stages.rows import epoch_rows, trial_status
from ..trial import Trial
from .runs import StudyTracker

if TYPE_CHECKING:
    from ray import tune

Say = Callable[[str], None]


def catch_up(
    tracker: StudyTracker,
    parent: str,
    results: list[tune.Result],
    say: Say = print,
    wait_s: float = 60.0,
    stops: bool = False,
) -> None:
    """Complete every trial's MLflow run from Tune's own results: epochs the live logger missed
    (a driver restart, a tracking outage), then, if the run is not ended yet, its final values,
    genotype files and end status. A tracking server that does not answer is tried again for
    ``wait_s`` seconds; after that the study stops, naming the trials whose logs are missing. ``stops``: the
    stage's scheduler stops trials early (see :func:`~orchestrator.stages.rows.trial_status`)."""
    from mlflow.exceptions import MlflowException  # here: importing orchestrator.tracking must not load MLflow

    pending = list(results)
    deadline = time.monotonic() + wait_s
    while True:
        failed, reason = [], ""
        for index, result in enumerate(pending):
            try:
                _catch_up_trial(tracker, parent, result, stops)
            except (MlflowException, OSError) as err:  # an unreachable or failing tracking server
                failed = pending[index:]  # the next trials would wait for the same server: try them all later
                reason = one_line(err)
                break
        if not failed:
            return
        keys = [Trial.from_param(r.config).key for r in failed]
        if time.monotonic() >= deadline:
            raise StudyInterrupted(
                f"MLflow at {tracker.uri} did not take the runs of {len(keys)} trials ({', '.join(keys)}): {reason}; "
                "their results are kept by Ray Tune and are logged when the study is resumed with MLflow up"
            )
        say(
            f"  MLflow at {tracker.uri} did not answer ({reason[:120]}); trying again for the runs of {', '.join(keys)}"
        )
        time.sleep(5)
        pending = failed


def _catch_up_trial(tracker: StudyTracker, parent: str, result: tune.Result, stops: bool) -> None:
    trial = Trial.from_param(result.config)
    existing = tracker.find_trial_run(parent, trial.key)
    ended = existing is not None and tracker.has_ended(existing)
    run_id = existing.info.run_id if ended else tracker.trial_run(parent, trial)
    tracker.log_epochs(run_id, epoch_rows(result), tracker.logged_epochs(run_id))
    if ended:
        return
    status = trial_status(result, stops)
    final = dict(result.metrics or {})
    if result.error is not None and not final.get("error"):
        final["error"] = error_line(result.error)
    final = final if status.has_final_values else {"error": final.get("error")}
    tracker.finish_trial(run_id, status, final, result.checkpoint)


def close_runs(tracker: StudyTracker, parent: str, status: str, say: Say) -> None:
    """End the study's open runs (``status``: KILLED after an interruption, FAILED after a failure); a
    tracking outage only warns (a resume reopens them)."""
    try:
        tracker.close_open_runs(parent, status)
    except Exception as err:  # noqa: BLE001
        say(f"warning: could not mark the study's MLflow runs {status} ({one_line(err)[:160]}); --resume reopens them")
