"""The study report in MLflow: its files as artifacts of the study's run, its summary numbers as metrics."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..study_files import SELECTION_FILE, SPEC_FILE
from ..study_state import StudyState

Say = Callable[[str], None]


#: In the study folder: the digest of each report file as last logged to each MLflow run, so that a rebuilt
#: report logs only the files that changed.
LOGGED_FILE = "report_logged.json"


def log_study_report(client: Any, run_id: str, folder: Path, paths: dict[str, Path]) -> int:
    """The tables, ``report.html``, the spec and the pictures as artifacts of the study's MLflow run: those that
    changed since they were last logged there (see :data:`LOGGED_FILE`). Returns how many were logged."""
    # imported here: keeps pandas, matplotlib and torch out of `import orchestrator.tracking` (Ray workers import it)
    from ..report.arch_history import ARCH_HISTORY_FILE

    files = [(path, None) for name, path in paths.items() if name != "figures"]
    files += [(folder / extra, None) for extra in (SELECTION_FILE, SPEC_FILE, ARCH_HISTORY_FILE)]
    if "figures" in paths:
        files += [(png, paths["figures"].name) for png in sorted(paths["figures"].glob("*.png"))]
    record_path = folder / LOGGED_FILE
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        record = {}
    logged = record.setdefault(run_id, {})
    count = 0
    try:
        for path, artifact_dir in files:
            if not path.is_file():
                continue
            name = str(path.relative_to(folder))
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if logged.get(name) == digest:
                continue
            client.log_artifact(run_id, str(path), artifact_dir)
            logged[name] = digest
            count += 1
    finally:
        if count:
            from pcdarts_core.checkpoint import atomic_write_text  # here: it imports torch

            atomic_write_text(record_path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return count


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
        count = log_study_report(client, run_id, folder, paths)
    except Exception as err:  # MLflow raises several types for an unreachable store or a deleted run
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        say(f"  MLflow: not logged ({reason}); the report is in the folder")
        return
    say(f"  MLflow: {count} changed files logged to run {run_id} at {uri}")
