"""The study report: tables, comparisons, pictures and ``report.html``, built from the study folder.

``python -m orchestrator.report STUDY_DIR`` (:mod:`~orchestrator.report.__main__`) rebuilds it
without rerunning anything. The modules, in the order the report is built:

- :mod:`~orchestrator.report.folder`: the study folder's files the report reads and writes;
- :mod:`~orchestrator.report.arch_history`: the searches' α and β, saved from their Tune checkpoints;
- :mod:`~orchestrator.report.results`: everything the report shows, computed once;
- :mod:`~orchestrator.report.columns`: the per-setting summary, declared column by column;
- :mod:`~orchestrator.report.summary`, :mod:`~orchestrator.report.genotypes`,
  :mod:`~orchestrator.report.comparisons`: ``summary.csv``, ``retrained_genotypes.csv``,
  ``comparisons.csv``;
- :mod:`~orchestrator.report.statistics`: the statistics, on plain numbers (the method: ``method.md``);
- :mod:`~orchestrator.report.findings`: the few sentences both files open with;
- :mod:`~orchestrator.report.tables`: the tables as text and ``summary.md``;
- :mod:`~orchestrator.report.pictures`, :mod:`~orchestrator.report.figures`: which pictures, and
  how each is drawn;
- :mod:`~orchestrator.report.html`: ``report.html`` (``report.html.j2``);
- :mod:`~orchestrator.report.build`: all of it, in order.

Importing this package loads neither Ray nor MLflow; logging the report to MLflow is
:mod:`orchestrator.tracking`'s.
"""

from .build import build_study_report
from .folder import read_table
from .summary import summary_metrics

__all__ = ["build_study_report", "read_table", "summary_metrics"]
