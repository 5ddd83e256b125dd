"""The study report in MLflow: its files as artifacts of the study's run, its summary numbers as metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..study_files import SELECTION_FILE, SPEC_FILE
from ..study_state import StudyState

Say = Callable[[str], None]


def log_study_report(client: Any, run_id: str, folder: Path, paths: dict[str, Path]) -> None:
    """The tables, ``report.html``, the spec and the pictures as artifacts of the study's MLflow run."""
    # imported here: keeps pandas, matplotlib and torch out of `import orchestrator.tracking` (Ray workers import it)
    from ..report.arch_history import ARCH_HISTORY_FILE

    for name, path in paths.items():
        if name != "figures":
            client.log_artifact(run_id, str(path))
    for extra in (SELECTION_FILE, SPEC_FILE, ARCH_HISTORY_FILE):
        if (folder / extra).is_file():
            client.log_artifact(run_id, str(folder / extra))
    if "figures" in paths and any(paths["figures"].glob("*.png")):
        client.log_artifacts(run_id, str(paths["figures"]), paths["figures"].name)


def log_summary_metrics(client: Any, run_id: str, metrics: dict[str, float]) -> None:
    """The report's summary numbers (``orchestrator.report.summary_metrics``) as metrics of the study's run."""
    from mlflow.entities import Metric  # here: importing orchestrator.tracking must not load MLflow

    if metrics:
        client.log_batch(run_id, metrics=[Metric(name, float(value), 0, 0) for name, value in metrics.items()])


def log_report_to_study_run(folder: Path, state: StudyState, paths: dict[str, Path], say: Say) -> None:
    """Log the report to the study's MLflow run if its store is there; say so and go on if it is not."""
    uri, run_id = state.mlflow_uri, state.mlflow_run_id
    if not uri or not run_id:
        say("  MLflow: the study has no MLflow run recorded; nothing logged")
        return
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        say(f"  MLflow: {uri} does not exist; nothing logged (the report is in the folder)")
        return
    from mlflow.tracking import MlflowClient  # here: importing orchestrator.tracking must not load MLflow

    try:
        client = MlflowClient(uri)
        client.get_run(run_id)
        log_study_report(client, run_id, folder, paths)
    except Exception as err:  # MLflow raises several types for an unreachable store or a deleted run
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        say(f"  MLflow: not logged ({reason}); the report is in the folder")
        return
    say(f"  MLflow: logged to run {run_id} at {uri}")
