"""The report stage: the tables, pictures and ``report.html`` (see :mod:`orchestrator.report`), logged to
the study's MLflow run. It runs on every resume: the report is rebuilt from the folder, but only the pictures
whose data changed are drawn again and only the files that changed are logged again; its summary metrics
are logged once."""

from __future__ import annotations

from dataclasses import dataclass

from ..report import build_study_report, read_table, summary_metrics
from ..report.arch_history import ARCH_HISTORY_FILE, save_arch_history
from ..spec import StudySpec
from ..tracking import log_study_report, log_summary_metrics
from .context import StageContext


@dataclass(frozen=True)
class ReportStage:
    name: str = "report"
    uses_ray: bool = False

    def applies(self, spec: StudySpec) -> bool:
        return True

    def run(self, context: StageContext) -> None:
        """First the searches' α/β histories are copied from their Tune checkpoints into the folder, once,
        so that ``python -m orchestrator.report`` can rebuild the report from the folder alone."""
        study, folder, say = context.study, context.folder, context.say
        say("stage report: tables, pictures, report.html")
        if not (folder / ARCH_HISTORY_FILE).is_file():
            experiment = study.tune_experiment("search")
            save_arch_history(folder, study.state.storage_path, experiment, study.plan.search_trials(), say)
        paths = build_study_report(folder, study.plan, study.state, say)
        client, parent = context.tracker.client, context.parent_run
        if not study.done(self.name):
            log_summary_metrics(client, parent, summary_metrics(read_table(paths["summary"])))
        logged = log_study_report(client, parent, folder, paths)
        say(
            f"  MLflow: {logged} changed report files logged"
            if logged
            else "  MLflow: the report logged earlier is current"
        )
        if not study.done(self.name):
            study.mark_done(self.name)
        say((folder / "summary.md").read_text(encoding="utf-8"))


REPORT = ReportStage()
