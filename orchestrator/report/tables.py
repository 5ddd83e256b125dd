"""The report's tables as text: the section tables of the summary (derived from
:data:`~orchestrator.report.columns.COLUMNS`), the other tables ``report.html`` shows, and
``summary.md``; :func:`write_reports` writes the CSV files and ``summary.md``.

Accuracies are fractions in the CSV files and percent in ``summary.md`` and ``report.html``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from pcdarts_core.checkpoint import atomic_write_text

from ..study_state import StageTime
from ..trial import TrialStatus
from .columns import ACCURACY, COST, STABILITY, section_columns
from .comparisons import agreement_sentence
from .folder import write_if_changed
from .statistics import Agreement
from .text import percent

ACCURACY_NOTE = (
    "Accuracies in percent: mean ± sample standard deviation [95% t confidence interval of the mean] (n). "
    "Search: final-epoch validation accuracy of each search. Retrain: final-epoch test accuracy of each "
    "retrained genotype the setting found, averaged over its retraining seeds first (n counts genotypes); the "
    "seeds' own spread (pooled within-genotype standard deviation) is the separate column. A setting found a "
    "genotype when at least one of its finished searches ended with that cell, whether or not that search was "
    "the one selected: a genotype found by several settings counts in each of their rows (and is left out of "
    "the comparisons between them). `random`: random cells retrained with the same protocol; `published:NAME`: a "
    "published cell (baseline.known), the same way."
)
STABILITY_NOTE = (
    "Genotype overlap: mean share of (node, input, operation) edges two searches of the setting have in "
    "common (1 = the same cells). skip_connect and parameter-free operations (skip, pooling) per cell, mean "
    "over the searches: many of them is DARTS's known failure mode. α entropy of the final epoch, as a share "
    "of the maximum (1 = undecided, 0 = every edge chose). The random row gives the chance level."
)
#: The columns of the trials that did not finish, in summary.md and report.html.
FAILED_COLUMNS = ["stage", "trial", "setting", "seed", "status", "epochs", "error"]


def section_table(summary: pd.DataFrame, section: str) -> pd.DataFrame:
    """The summary's table for ``section`` (accuracy, stability or cost): the setting, then the
    columns shown there, as text."""
    rows = summary.to_dict("records")
    table = {"setting": summary["setting"]}
    for column in section_columns(section):
        table[column.shown.heading] = [column.shown.text(row, column.name) for row in rows]
    return pd.DataFrame(table)


def failed_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that did not finish, in :data:`FAILED_COLUMNS` (none: an empty table). A screen trial that
    ASHA stopped early is not among them: its stop is the study's decision (the screen finding counts them)."""
    unfinished = trials[~trials["status"].isin([TrialStatus.FINISHED, TrialStatus.STOPPED])]
    return unfinished[FAILED_COLUMNS] if len(unfinished) else unfinished


def genotype_table(genotypes: pd.DataFrame) -> pd.DataFrame:
    """``retrained_genotypes.csv`` as report.html shows it (percent, parameters in millions)."""
    return genotypes.assign(
        search_valid_acc=[percent(v, unit="%") for v in genotypes["search_valid_acc"]],
        retrain_test_acc_mean=[percent(v, unit="%") for v in genotypes["retrain_test_acc_mean"]],
        retrain_test_acc_std=[percent(v, unit="%") for v in genotypes["retrain_test_acc_std"]],
        parameters=[f"{v / 1e6:.3f} M" if v == v else "–" for v in genotypes["parameters"]],
    ).rename(
        columns={"retrain_test_acc_mean": "retrain test acc (mean over seeds)", "retrain_test_acc_std": "seed std"}
    )


def comparison_numbers(comparisons: pd.DataFrame) -> pd.DataFrame:
    """``comparisons.csv`` as report.html shows it (without the sentences; percent, p-values with 3
    digits, the seeds for 80% power as a whole number)."""
    percents = ("mean", "std", "mean_versus", "std_versus", "difference", "ci_low", "ci_high")
    p_values = ("p_value", "p_paired", "p_holm")

    def p_cell(v: float) -> str:
        return "–" if v != v else f"{v:.3g}"

    def whole(v: float) -> str:
        return "–" if v != v else f"{v:.0f}"

    shown = {c: [percent(v, unit="%") for v in comparisons[c]] for c in percents}
    shown |= {c: [p_cell(v) for v in comparisons[c]] for c in p_values if c in comparisons}
    if "n_for_80pct_power" in comparisons:
        shown["n_for_80pct_power"] = [whole(v) for v in comparisons["n_for_80pct_power"]]
    return comparisons.drop(columns=["sentence", "note"]).assign(**shown)


def summary_markdown(
    name: str,
    summary: pd.DataFrame,
    selection: pd.DataFrame,
    trials: pd.DataFrame,
    comparisons: pd.DataFrame | None = None,
    agreement: Agreement | None = None,
    notes: Iterable[str] = (),
    findings: Sequence[str] = (),
) -> str:
    """A readable summary: the findings (when given), accuracy, comparisons, stability and cost per
    setting, the selected genotypes and the failed trials."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Study {name}", ""]
    if findings:
        lines += ["## Findings", "", *(f"- {sentence}" for sentence in findings), ""]
    lines += [
        f"Written {stamp}. {ACCURACY_NOTE}",
        "",
        section_table(summary, ACCURACY).to_markdown(index=False),
        "",
    ]
    if comparisons is not None or agreement is not None or notes:
        lines += ["## Comparisons", ""]
        lines += [f"- {note}" for note in notes]
        if comparisons is not None:
            lines += [f"- {sentence}" for sentence in comparisons["sentence"]]
        if agreement is not None:
            lines.append(f"- {agreement_sentence(agreement)}")
        lines.append("")
    lines += ["## Stability", "", STABILITY_NOTE, "", section_table(summary, STABILITY).to_markdown(index=False), ""]
    lines += ["## Cost", "", section_table(summary, COST).to_markdown(index=False), ""]
    lines += ["## Retrained genotypes", ""]
    if selection.empty:
        lines.append("None: no search finished.")
    else:
        shown = selection[["genotype_id", "setting", "source", "found_by", "value", "genotype"]]
        lines.append(shown.rename(columns={"value": selection["metric"].iloc[0]}).to_markdown(index=False))
    failed = failed_trials(trials)
    if not failed.empty:
        lines += ["", "## Trials that did not finish", "", failed.to_markdown(index=False)]
    return "\n".join(lines) + "\n"


def write_reports(
    folder: Path,
    name: str,
    trials: pd.DataFrame,
    selection: pd.DataFrame,
    summary: pd.DataFrame,
    comparisons: pd.DataFrame | None = None,
    genotypes: pd.DataFrame | None = None,
    agreement: Agreement | None = None,
    notes: Iterable[str] = (),
    findings: Sequence[str] = (),
) -> dict[str, Path]:
    """Write trials.csv, summary.csv (``summary`` from :func:`~orchestrator.report.summary.summarize`),
    summary.md (``findings`` first) and, when given, comparisons.csv and retrained_genotypes.csv,
    atomically; return their paths."""
    paths = {"trials": folder / "trials.csv", "summary": folder / "summary.csv", "summary_md": folder / "summary.md"}
    atomic_write_text(paths["trials"], trials.to_csv(index=False))
    atomic_write_text(paths["summary"], summary.to_csv(index=False))
    if comparisons is not None:
        paths["comparisons"] = folder / "comparisons.csv"
        atomic_write_text(paths["comparisons"], comparisons.to_csv(index=False))
    if genotypes is not None:
        paths["genotypes"] = folder / "retrained_genotypes.csv"
        atomic_write_text(paths["genotypes"], genotypes.to_csv(index=False))
    markdown = summary_markdown(name, summary, selection, trials, comparisons, agreement, notes, findings)
    write_if_changed(paths["summary_md"], markdown)
    return paths


STAGE_TIME_NOTE = (
    "Wall time of each stage (every session added up). Slots: the trials the Ray cluster could run at once; "
    "slot occupancy: the share of the stage's slot-seconds (wall time x slots) that went into the trials' epochs, "
    "the rest being start-up, checkpoints, waiting and idle slots; worker processes: distinct processes that ran "
    "the trials (Tune reuses them, so a worker pays its imports once)."
)


def stage_time_table(stage_times: dict[str, StageTime], trials: pd.DataFrame) -> pd.DataFrame:
    """One row per stage that recorded its time (``study.json``), as text; the report, which cannot know its own,
    left out."""
    rows = []
    for stage, record in stage_times.items():
        if stage == "report":
            continue
        count = int((trials["stage"] == stage).sum()) if "stage" in trials else 0
        occupancy = record.occupancy
        rows.append(
            {
                "stage": stage,
                "trials": count if record.slots is not None else "–",
                "wall time": f"{record.wall_s:.1f} s",
                "slots": record.slots if record.slots is not None else "–",
                "in epochs": f"{record.epoch_s:.1f} s" if record.epoch_s is not None else "–",
                "slot occupancy": percent(occupancy, unit="%") if occupancy is not None else "–",
                "worker processes": record.worker_processes if record.worker_processes is not None else "–",
            }
        )
    return pd.DataFrame(
        rows, columns=["stage", "trials", "wall time", "slots", "in epochs", "slot occupancy", "worker processes"]
    )
