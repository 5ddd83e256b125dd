"""The study folder as the report sees it: the files it reads (checked by :func:`open_study`) and
the names of those it writes besides the tables (``report.html``, ``report_figures/``), and how a report
file is written (:func:`write_if_changed`)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml

from pcdarts_core.checkpoint import atomic_write_text
from pcdarts_core.errors import UserInputError

from ..plan import StudyPlan
from ..spec import parse_spec
from ..study_files import SELECTION_FILE, SPEC_FILE, STATE_FILE, stage_table
from ..study_state import StudyState

REPORT_FILE = "report.html"
FIGURES_DIR = "report_figures"
#: The stage tables the report is built from.
NEEDED = (stage_table("search"), SELECTION_FILE, stage_table("retrain"))


def open_study(folder: Path) -> tuple[StudyPlan, StudyState]:
    """The plan and state of a study folder whose search, select and retrain stages are done."""
    if not folder.is_dir():
        raise UserInputError(f"{folder}: no such folder; give a study folder, e.g. studies/quickstart")
    if not (folder / STATE_FILE).is_file() or not (folder / SPEC_FILE).is_file():
        raise UserInputError(
            f"{folder}: not a study folder (no {STATE_FILE} or {SPEC_FILE}); give the --out folder of a study"
        )
    state = StudyState.read(folder)
    missing = [stage for stage in ("search", "select", "retrain") if not state.done(stage)]
    if missing:
        raise UserInputError(
            f"{folder}: the study is not finished (stage {missing[0]} not done); finish it with "
            f"python -m orchestrator.run {folder / SPEC_FILE} --resume --out {folder}"
        )
    absent = [name for name in NEEDED if not (folder / name).is_file()]
    if absent:
        raise UserInputError(f"{folder}: {absent[0]} is missing; the study folder is incomplete")
    raw = yaml.safe_load((folder / SPEC_FILE).read_text(encoding="utf-8"))
    return StudyPlan.from_spec(parse_spec(raw, source=str(folder / SPEC_FILE))), state


def read_table(path: Path) -> pd.DataFrame:
    """A CSV file of the study folder."""
    return pd.read_csv(path, keep_default_na=True)


def load_trials(folder: Path) -> pd.DataFrame:
    """search.csv, screen.csv (with ``select.by: screen``) and retrain.csv as one table; a stage that ran
    nothing has an empty file, and a study without a screen has none."""
    tables = [read_table(folder / stage_table("search"))]
    for stage in ("screen", "retrain"):
        path = folder / stage_table(stage)
        if path.is_file() and path.stat().st_size > 0:
            tables.append(read_table(path))
    return pd.concat(tables, ignore_index=True)


#: The time a report file says it was written (``2026-12-05 22:48 UTC``).
_WRITTEN_AT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` (atomically) unless the file there says the same but for the time it was
    written: an unchanged report keeps its time, and is neither rewritten nor logged again. Whether it wrote."""
    try:
        if _WRITTEN_AT.sub("", path.read_text(encoding="utf-8")) == _WRITTEN_AT.sub("", text):
            return False
    except OSError:
        pass
    atomic_write_text(path, text)
    return True
