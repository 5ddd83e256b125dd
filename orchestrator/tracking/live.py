"""Live MLflow logging during a Tune stage: :class:`TrialLogger`, a Ray Tune callback on the driver."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback

from ..trial import Trial, TrialStatus
from .runs import StudyTracker, check_server

#: Seconds the live logger leaves MLflow alone after a failed call (the stage's catch-up logs what it skipped).
OUTAGE_PAUSE_S = 20.0
OUTAGE_PAUSE_MAX_S = 300.0


class TrialLogger(Callback):
    """Ray Tune callback on the driver: each trial's epochs to its MLflow child run, as they arrive.

    Holds only names and ids when pickled with the Tune experiment; the MLflow client and the
    trial-to-run map are rebuilt (from the runs' tags) after a restore.
    """

    def __init__(self, uri: str, experiment_id: str, parent_id: str, stops: bool = False) -> None:
        self.uri, self.experiment_id, self.parent_id = uri, experiment_id, parent_id
        # the stage's scheduler stops trials: a trial that completes without saying how it ended was stopped
        self.stops = stops
        self._tracker: StudyTracker | None = None
        self._runs: dict[str, tuple[str, set[int]]] = {}
        self._paused_until = 0.0
        self._failures = 0  # consecutive failed calls: each doubles the pause, up to OUTAGE_PAUSE_MAX_S

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri, "experiment_id": self.experiment_id, "parent_id": self.parent_id, "stops": self.stops}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["uri"], state["experiment_id"], state["parent_id"], state.get("stops", False)
        )

    @property
    def tracker(self) -> StudyTracker:
        if self._tracker is None:
            self._tracker = StudyTracker(self.uri, self.experiment_id)
        return self._tracker

    def _run_of(self, trial: Trial) -> tuple[str, set[int]]:
        if trial.key not in self._runs:
            run_id = self.tracker.trial_run(self.parent_id, trial)
            self._runs[trial.key] = (run_id, self.tracker.logged_epochs(run_id))
        return self._runs[trial.key]

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        def finish() -> None:
            run_id, _ = self._run_of(Trial.from_param(trial.config))
            result = trial.last_result or {}
            status = TrialStatus.reported(result) or TrialStatus.ended_without_report(result, self.stops)
            if status == TrialStatus.INTERRUPTED:  # completed without saying how, and no scheduler stopped it
                status = TrialStatus.ERROR
            final = result if status.has_final_values else {"error": result.get("error")}
            self.tracker.finish_trial(run_id, status, final, trial.checkpoint)

        self._guarded(finish)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        def finish() -> None:
            run_id, _ = self._run_of(Trial.from_param(trial.config))
            error = f"the trial failed after its retries (Ray Tune's error file: {trial.error_file})"
            self.tracker.finish_trial(run_id, TrialStatus.ERROR, {"error": error})

        self._guarded(finish)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._guarded(lambda: self._run_of(Trial.from_param(trial.config)))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        def log() -> None:
            described = Trial.from_param(trial.config)
            run_id, logged = self._run_of(described)
            self._runs[described.key] = (run_id, self.tracker.log_epochs(run_id, [result], logged))

        self._guarded(log)

    def _guarded(self, action: Callable[[], Any]) -> None:
        # A tracking outage must not stop the trials, nor slow them down with the client's retries (these
        # callbacks run in Tune's loop): after a failure, live logging pauses (OUTAGE_PAUSE_S, doubling while
        # the server stays away) and, once the pause is over, first asks the server with a one-second probe;
        # the stage's catch-up logs what was skipped.
        if time.monotonic() < self._paused_until:
            return
        try:
            if self._failures:
                check_server(self.uri, timeout_s=1.0)
            action()
            self._failures = 0
        except Exception as err:  # noqa: BLE001
            self._tracker = None
            self._runs.clear()
            pause = min(OUTAGE_PAUSE_S * 2**self._failures, OUTAGE_PAUSE_MAX_S)
            self._failures += 1
            self._paused_until = time.monotonic() + pause
            print(
                f"warning: MLflow logging failed ({type(err).__name__}: {' '.join(str(err).split())[:160]}); "
                f"live logging pauses for {pause:g} s and the end of the stage logs what was missed"
            )
