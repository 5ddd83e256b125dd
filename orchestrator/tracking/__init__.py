"""MLflow tracking of a study, written by the driver only.

One experiment per study name, one parent run per study, one nested child run per trial.
Runs are found again by their tags (``pcdarts.study_id`` on the parent, ``pcdarts.trial``
on a child), so a retried trial, a restored Tune experiment or a resumed study continues
the same run instead of making a new one. Epoch metrics are logged with the epoch as step,
and an epoch already logged is never logged twice. Only the driver writes, so a sqlite
store sees one writer however many trials run at once.

- :mod:`~orchestrator.tracking.runs`: :class:`StudyTracker`, the study's experiment and its runs;
- :mod:`~orchestrator.tracking.live`: :class:`~orchestrator.tracking.live.TrialLogger`, the Ray Tune
  callback that logs each trial as its epochs arrive (imports Ray, so it is not imported here);
- :mod:`~orchestrator.tracking.catch_up`: :func:`catch_up` completes every trial's run from Tune's own
  results at the end of a stage, so nothing the live logger missed (a driver restart, a tracking-server
  outage) is lost; :func:`close_runs` ends the open runs of a stopped study;
- :mod:`~orchestrator.tracking.report`: the report's files and summary metrics on the study's run.

MLflow is imported inside the functions that call it: importing this package (the report CLI
does) loads neither MLflow nor Ray.
"""

from .catch_up import catch_up, close_runs
from .report import log_report_to_study_run, log_study_report, log_summary_metrics
from .runs import StudyTracker, TrackingError, check_server

__all__ = [
    "StudyTracker",
    "TrackingError",
    "catch_up",
    "check_server",
    "close_runs",
    "log_report_to_study_run",
    "log_study_report",
    "log_summary_metrics",
]
