"""``python -m orchestrator.run STUDY.yaml``: run a study (search, select, retrain, report).

Exit codes: 0 done, 2 bad input (one line naming the field and the fix; nothing written),
130 interrupted (continue with ``--resume``), 1 anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import NoReturn

from pcdarts_core.cli import run_main
from pcdarts_core.errors import UserInputError

from .errors import StudyInterrupted
from .plan import StudyPlan
from .spec_file import load_spec
from .study_files import SPEC_FILE


class _Parser(argparse.ArgumentParser):
    """Command-line mistakes as one line (exit code 2), like every other bad input."""

    def error(self, message: str) -> NoReturn:
        raise UserInputError(f"{message}; see {self.prog} --help")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m orchestrator.run",
        description="Run a PC-DARTS study: Ray Tune searches over a grid, selection, retraining with random "
        "baselines, MLflow tracking and pandas reports.",
    )
    parser.add_argument("spec", type=Path, help="the study's YAML file, e.g. experiments/quickstart.yaml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a spec value (YAML), e.g. --set search.epochs=5 --set 'search.k=[1, 4]'; repeatable",
    )
    parser.add_argument("--out", type=Path, help="study folder (default: studies/NAME)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the study in --out: finished stages and trials are kept"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the trials each stage would run, then exit")
    parser.add_argument("--verbose", action="store_true", help="show Ray's and Ray Tune's own output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    spec, raw = load_spec(args.spec, args.overrides)
    folder = (args.out or Path("studies") / spec.name).expanduser()
    if args.dry_run:
        print(StudyPlan.from_spec(spec).describe(folder))
        return 0
    # imported after the dry run, which must stay light: these import Ray and torch
    from .preflight import preflight
    from .ray_cluster import ray_session
    from .study import Study
    from .tracking.describe import runs_page

    # Ray reads these when it starts: no usage reporting, and no Tune tables unless asked for.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not args.verbose:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # The driver alone talks to MLflow: a server that is down costs seconds, not MLflow's default minutes of
    # retries per call (the live logger then pauses and each stage's catch-up logs what it missed).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run" line per trial
    # The spec saved in the folder has the --set overrides applied: resuming needs nothing else.
    again = f"continue with: python -m orchestrator.run {folder / SPEC_FILE} --resume --out {folder}"
    try:
        with contextlib.ExitStack() as stack:
            if args.resume:
                study = Study.resume(folder, spec, raw)  # the study starts Ray only if a stage still needs it
            else:
                # nothing is written before the folder, data, MLflow and Ray are known to work
                warnings = preflight(spec, folder)
                stack.enter_context(ray_session(spec, args.verbose))
                study = Study.create(folder, spec, raw)
                for warning in warnings:  # said once the study is known to start, not before a refusal
                    print(f"warning: {warning}", file=sys.stderr)
            study.run(verbose=args.verbose)
    except StudyInterrupted as err:
        print(f"interrupted: {err}; {again}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"interrupted; {again}", file=sys.stderr)
        return 130
    print(f"done: reports in {folder} (report.html, summary.md, summary.csv, comparisons.csv, trials.csv)")
    if study.state.mlflow_experiment_id is not None:
        print(f"MLflow runs: {runs_page(study.state.mlflow_uri, study.state.mlflow_experiment_id)}")
    return 0


if __name__ == "__main__":
    run_main(main)
