"""The study report, built from the study folder: the tables, the pictures in ``report_figures/``
and ``report.html``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ..plan import StudyPlan
from ..study_files import SPEC_FILE
from ..study_state import StudyState
from .arch_history import ARCH_HISTORY_FILE
from .columns import SECTIONS
from .comparisons import agreement_sentence
from .findings import FindingsInput, findings
from .folder import FIGURES_DIR, REPORT_FILE
from .html import ReportContent, method_paragraphs, write_report
from .picture_cache import resolve_pictures
from .pictures import report_pictures
from .results import StudyResults, reference_name, study_results
from .tables import (
    ACCURACY_NOTE,
    STABILITY_NOTE,
    STAGE_TIME_NOTE,
    comparison_numbers,
    failed_trials,
    genotype_table,
    section_table,
    stage_time_table,
    write_reports,
)

Say = Callable[[str], None]


def plan_lines(plan: StudyPlan, trials: pd.DataFrame) -> list[str]:
    """What was run, in a few lines."""
    spec, settings = plan.spec, plan.settings
    config = plan.grid[0].config
    seeds = sorted({point.config.seed for point in plan.grid})
    retrain = plan.retrain_config(seed=0)
    searches = trials[trials["stage"] == "search"]
    retrains = trials[trials["stage"] == "retrain"]
    dataset = spec.dataset
    return [
        f"Dataset {dataset.name}"
        + (f", images resized to {dataset.image_size}" if dataset.image_size else "")
        + (f", {dataset.train_subset} training images" if dataset.train_subset else "")
        + "."
        + (
            f" Screened and retrained on {retrain.dataset}"
            + (f" at {retrain.image_size}×{retrain.image_size}" if retrain.image_size else "")
            + " (transfer)."
            if spec.transfer
            else ""
        ),
        f"Search: {len(searches)} trials, {len(settings)} settings ({'; '.join(settings)}) × seeds {seeds}; "
        f"{config.epochs} epochs ({config.warmup_epochs} warm-up), C={config.init_channels}, {config.layers} cells, "
        f"batch {config.batch_size}.",
        f"Selection: top {spec.select.top} by final "
        + (
            f"screen valid_acc (a short retraining of {trials[trials['stage'] == 'screen']['genotype_id'].nunique()} "
            "candidates, ranked on a held-out split)"
            if spec.select.by == "screen"
            else spec.select.metric
        )
        + f" per {spec.select.per}; identical cells retrained once.",
        f"Retrain: {len(retrains)} trials: each selected genotype"
        + (f", the published {', '.join(spec.baseline.known)}" if spec.baseline.known else "")
        + f" and {spec.baseline.count} random cells with seeds "
        f"{list(plan.retrain_seeds)}; {retrain.epochs} epochs, C={retrain.init_channels}, {retrain.layers} cells, "
        f"batch {retrain.batch_size}.",
        f"Each trial: {spec.resources.cpus_per_trial:g} CPU, {_amount(spec.resources.gpus_per_trial)} GPU.",
    ]


def _amount(value: Any) -> str:
    """A resource amount as the spec gave it: 0.25, 1, or a word such as ``auto``."""
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _arch_missing(folder: Path, results: StudyResults) -> list[str]:
    """The searches whose α/β the report cannot show, and why."""
    missing = [
        f"{key}: no α/β history ({reason})" for key, reason in sorted(results.histories.get("missing", {}).items())
    ]
    if not (folder / ARCH_HISTORY_FILE).is_file():
        missing.append(
            f"No {ARCH_HISTORY_FILE} in the study folder: the searches' α and β were not saved, so they are not shown."
        )
    return missing


def build_study_report(folder: Path, plan: StudyPlan, state: StudyState, say: Say = print) -> dict[str, Path]:
    """Write the tables, pictures and ``report.html`` of the study in ``folder``; return the paths
    (``figures`` is the pictures' folder)."""
    results = study_results(folder, plan)
    found = findings(
        FindingsInput(
            summary=results.summary,
            comparisons=results.comparisons,
            agreement=results.agreement,
            reference=plan.reference,
            reference_label=f"{plan.reference} ({reference_name(plan)})" if plan.reference else "",
            reference_note=plan.reference_note,
            search_epochs={point.setting: point.config.epochs for point in plan.grid},
            screen=results.screen,
        )
    )
    paths = write_reports(
        folder,
        plan.spec.name,
        results.trials,
        results.selection,
        results.summary,
        results.comparisons,
        results.genotypes,
        results.agreement,
        results.notes,
        found,
    )
    say(f"  tables: {', '.join(p.name for p in paths.values())}")

    figures_dir = folder / FIGURES_DIR
    drawn = resolve_pictures(report_pictures(results), figures_dir, say=say)
    pictures = drawn.pictures
    say(
        f"  pictures: accuracy, agreement, cost; cells of {len(results.genotypes)} genotypes; "
        f"α/β of {len(results.histories.get('trials', {}))} searches ({drawn.drawn} drawn, {drawn.reused} unchanged)"
    )

    content = ReportContent(
        name=plan.spec.name,
        findings=found,
        plan=plan_lines(plan, results.trials),
        spec_yaml=(folder / SPEC_FILE).read_text(encoding="utf-8"),
        summary_tables={section: section_table(results.summary, section) for section in SECTIONS},
        accuracy_note=ACCURACY_NOTE.replace("`", ""),
        stability_note=STABILITY_NOTE,
        comparisons=[(row.sentence, bool(row.significant)) for row in results.comparisons.itertuples()],
        comparison_notes=results.notes,
        comparison_table=comparison_numbers(results.comparisons),
        method=method_paragraphs(),
        agreement=agreement_sentence(results.agreement),
        genotypes=genotype_table(results.genotypes),
        failed=failed_trials(results.trials),
        pictures=pictures,
        arch_missing=_arch_missing(folder, results),
        run_info=[f"Study folder {folder.name}, stages done: {', '.join(state.stages_done)}."]
        + ([f"MLflow run {state.mlflow_run_id}."] if state.mlflow_run_id else []),
        figures_dir=FIGURES_DIR,
        stage_times=stage_time_table(state.stage_times, results.trials),
        stage_time_note=STAGE_TIME_NOTE,
    )
    paths["report"] = folder / REPORT_FILE
    written = write_report(paths["report"], content)
    paths["figures"] = figures_dir
    say(f"  report: {paths['report']}" + ("" if written else " (unchanged)"))
    return paths
