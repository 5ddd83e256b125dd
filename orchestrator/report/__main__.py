"""``python -m orchestrator.report STUDY_DIR [--no-mlflow]``: rebuild a finished study's report
from its folder, without rerunning anything.

It reads ``spec.yaml``, ``study.json``, ``search.csv``, ``selection.csv``, ``retrain.csv`` and
``arch_history.json``, writes the tables (``trials.csv``, ``summary.csv``, ``summary.md``,
``comparisons.csv``, ``retrained_genotypes.csv``), the pictures (``report_figures/*.png``) and
``report.html``, and logs them to the study's MLflow run (``--no-mlflow`` to leave MLflow alone).

Exit codes: 0 done, 2 the folder is not a finished study (one line says why).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pcdarts_core.cli import run_main

from ..tracking import log_report_to_study_run
from .build import build_study_report
from .folder import open_study


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.report",
        description="Rebuild a finished study's report (tables, pictures, report.html) from its folder, "
        "without rerunning anything.",
    )
    parser.add_argument(
        "study", type=Path, help="the study folder (the --out of orchestrator.run, e.g. studies/quickstart)"
    )
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the report to the study's MLflow run")
    args = parser.parse_args(argv)
    folder = args.study.expanduser()
    plan, state = open_study(folder)
    print(f"study {plan.spec.name}: rebuilding the report in {folder}")
    paths = build_study_report(folder, plan, state, say=print)
    if not args.no_mlflow:
        log_report_to_study_run(folder, state, paths, print)
    print(f"done: open {paths['report']}")
    return 0


if __name__ == "__main__":
    run_main(main)
