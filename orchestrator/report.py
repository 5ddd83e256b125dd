"""The study report: tables, comparisons, pictures and ``report.html``, built from the study folder.

``python -m orchestrator.report STUDY_DIR`` rebuilds it without rerunning anything: it reads
``spec.yaml``, ``study.json``, ``search.csv``, ``selection.csv``, ``retrain.csv`` and
``arch_history.json`` (the searches' α and β, saved by the study after its search stage), writes
the tables (``trials.csv``, ``summary.csv``, ``summary.md``, ``comparisons.csv``,
``retrained_genotypes.csv``), the pictures (``report_figures/*.png``) and ``report.html``, and
logs them to the study's MLflow run (``--no-mlflow`` to leave MLflow alone).

Exit codes: 0 done, 2 the folder is not a finished study (one line says why).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml

from pcdarts_core import parse_genotype
from pcdarts_core.checkpoint import atomic_write_bytes, atomic_write_text
from pcdarts_core.cli import run_main
from pcdarts_core.errors import UserInputError

from .arch_history import ARCH_HISTORY_FILE, load_arch_history
from .reports import (
    ACCURACY_NOTE,
    RANDOM,
    STABILITY_NOTE,
    accuracy_table,
    agreement_sentence,
    compare_settings,
    cost_table,
    genotype_results,
    percent,
    read_table,
    search_retrain_agreement,
    setting_genotype_ids,
    stability_table,
    summarize,
    write_reports,
)
from .spec import StudySpec, parse_spec, reference_setting, retrain_config, retrain_seeds, search_grid, setting_label

STATE_FILE = "study.json"
SPEC_FILE = "spec.yaml"
REPORT_FILE = "report.html"
FIGURES_DIR = "report_figures"
NEEDED = ("search.csv", "selection.csv", "retrain.csv")

Say = Callable[[str], None]


def open_study(folder: Path) -> tuple[StudySpec, dict[str, Any]]:
    """The spec and state of a study folder whose search, select and retrain stages are done."""
    if not folder.is_dir():
        raise UserInputError(f"{folder}: no such folder; give a study folder, e.g. studies/quickstart")
    if not (folder / STATE_FILE).is_file() or not (folder / SPEC_FILE).is_file():
        raise UserInputError(f"{folder}: not a study folder (no {STATE_FILE} or {SPEC_FILE}); give the --out folder of a study")
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserInputError(f"{folder / STATE_FILE}: not valid JSON ({err}); the study folder is damaged") from None
    missing = [stage for stage in ("search", "select", "retrain") if stage not in state.get("stages_done", [])]
    if missing:
        raise UserInputError(
            f"{folder}: the study is not finished (stage {missing[0]} not done); finish it with "
            f"python -m orchestrator.run {folder / SPEC_FILE} --resume --out {folder}"
        )
    absent = [name for name in NEEDED if not (folder / name).is_file()]
    if absent:
        raise UserInputError(f"{folder}: {absent[0]} is missing; the study folder is incomplete")
    spec = parse_spec(yaml.safe_load((folder / SPEC_FILE).read_text(encoding="utf-8")), source=str(folder / SPEC_FILE))
    return spec, state


def grid_settings(spec: StudySpec) -> list[str]:
    """The study's settings in grid order."""
    return list(dict.fromkeys(setting_label(point) for point, _ in search_grid(spec)))


def load_trials(folder: Path) -> pd.DataFrame:
    """search.csv and retrain.csv (empty when nothing was retrained) as one table."""
    tables = [read_table(folder / "search.csv")]
    if (folder / "retrain.csv").stat().st_size > 0:
        tables.append(read_table(folder / "retrain.csv"))
    return pd.concat(tables, ignore_index=True)


def plan_lines(spec: StudySpec, trials: pd.DataFrame, settings: list[str]) -> list[str]:
    """What was run, in a few lines."""
    grid = search_grid(spec)
    config = grid[0][1]
    seeds = sorted({c.seed for _, c in grid})
    retrain = retrain_config(spec, seed=0)
    searches = trials[trials["stage"] == "search"]
    retrains = trials[trials["stage"] == "retrain"]
    return [
        f"Dataset {spec.dataset.name}" + (f", images resized to {spec.dataset.image_size}" if spec.dataset.image_size else "")
        + (f", {spec.dataset.train_subset} training images" if spec.dataset.train_subset else "") + ".",
        f"Search: {len(searches)} trials, {len(settings)} settings ({'; '.join(settings)}) × seeds {seeds}; "
        f"{config.epochs} epochs ({config.warmup_epochs} warm-up), C={config.init_channels}, {config.layers} cells, batch {config.batch_size}.",
        f"Selection: top {spec.select.top} by final {spec.select.metric} per {spec.select.per}; identical cells retrained once.",
        f"Retrain: {len(retrains)} trials: each selected genotype and {spec.baseline.count} random cells with seeds "
        f"{retrain_seeds(spec)}; {retrain.epochs} epochs, C={retrain.init_channels}, {retrain.layers} cells, batch {retrain.batch_size}.",
        f"Each trial: {spec.resources.cpus_per_trial:g} CPU, {_amount(spec.resources.gpus_per_trial)} GPU.",
    ]


def _amount(value: Any) -> str:
    """A resource amount as the spec gave it: 0.25, 1, or a word such as ``auto``."""
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def draw_pictures(trials: pd.DataFrame, selection: pd.DataFrame, genotypes: pd.DataFrame, settings: list[str],
                  histories: dict[str, Any], agreement_text: str, say: Say) -> dict[str, list[Any]]:
    """Every picture of the report (:class:`~orchestrator.html_report.Picture`), by section."""
    from . import figures
    from .html_report import Picture

    pictures: dict[str, list[Picture]] = {"overview": [], "agreement": [], "cost": [], "cells": [], "arch": []}
    searches = trials[(trials["stage"] == "search") & (trials["status"] == "finished")]
    retrained = genotypes[genotypes["retrain_seeds"] > 0]
    found = setting_genotype_ids(selection)
    finished = trials[(trials["stage"] == "retrain") & (trials["status"] == "finished")]

    search_groups = [(s, searches.loc[searches["setting"] == s, "valid_acc"].dropna().tolist()) for s in settings]
    labels = [*settings, RANDOM] if (retrained["setting"] == RANDOM).any() else list(settings)
    retrain_groups, seed_values = [], {}
    for label in labels:
        ids = retrained.loc[retrained["setting"] == RANDOM, "genotype_id"].tolist() if label == RANDOM else found.get(label, [])
        retrain_groups.append((label, retrained.loc[retrained["genotype_id"].isin(ids), "retrain_test_acc_mean"].tolist()))
        seed_values[label] = finished.loc[finished["genotype_id"].isin(ids), "test_acc"].dropna().tolist()
    pictures["overview"].append(Picture("accuracy.png", "Accuracy per setting: every search (left) and every retrained "
                                        "genotype (right), boxes where a setting has two values or more.",
                                        figures.accuracy_figure(search_groups, retrain_groups, seed_values)))
    searched = retrained[retrained["setting"] != RANDOM]
    if len(searched):
        pictures["agreement"].append(Picture("agreement.png", "Search validation accuracy against retrain test accuracy "
                                             "of each retrained searched genotype.", figures.agreement_figure(searched, agreement_text)))
    if len(searches) and searches["peak_memory_bytes"].notna().any():
        pictures["cost"].append(Picture("cost_per_k.png", "Peak memory and time per epoch of each search against K.",
                                        figures.cost_figure(searches)))
    say(f"  pictures: accuracy, agreement, cost; cells of {len(genotypes)} genotypes; α/β of {len(histories.get('trials', {}))} searches")
    for row in genotypes.itertuples(index=False):
        if not isinstance(row.genotype, str):
            continue
        where = "random cell" if row.setting == RANDOM else f"{row.setting.replace(';', ', ')}, from {row.source}"
        title = f"{row.genotype_id} ({where}): retrain test {percent(row.retrain_test_acc_mean, unit='%')} over {row.retrain_seeds} seed(s)"
        pictures["cells"].append(Picture(f"cell_{row.genotype_id}.png", title, figures.cell_figure(parse_genotype(row.genotype), title)))
    primitives = histories.get("primitives", [])
    for key, trial in sorted(histories.get("trials", {}).items()):
        if not trial.get("epochs"):
            continue
        title = f"{key} ({trial['setting']}, seed {trial['seed']})"
        pictures["arch"].append(Picture(f"arch_{key}.png", title, figures.arch_weights_figure(trial["epochs"], primitives, title)))
    return pictures


def build_study_report(folder: Path, spec: StudySpec, state: dict[str, Any], say: Say = print) -> dict[str, Path]:
    """Write the tables, pictures and ``report.html`` of the study in ``folder``; return the paths
    (``figures`` is the pictures' folder)."""
    from .html_report import ReportContent, render_report

    trials = load_trials(folder)
    selection = read_table(folder / "selection.csv")
    settings = grid_settings(spec)
    histories = load_arch_history(folder)
    reference, why = reference_setting(spec)
    reference_name = "DARTS" if spec.report.reference is None else "reference"
    summary = summarize(trials, selection, settings, histories["trials"])
    genotypes = genotype_results(trials, selection)
    comparisons = compare_settings(trials, selection, settings, reference, reference_name)
    agreement = search_retrain_agreement(genotypes)
    notes = [why] if why else []
    if reference is not None and not (comparisons["versus"] == reference).any():
        notes.append(f"Reference setting {reference}: no comparison (it or the others lack finished values).")
    paths = write_reports(folder, spec.name, trials, selection, summary, comparisons, genotypes, agreement, notes)
    say(f"  tables: {', '.join(p.name for p in paths.values())}")

    tau_text = (f"Kendall's tau = {agreement.tau:+.2f}, p = {agreement.p_value:.2g}, n = {agreement.n}"
                if agreement.tau == agreement.tau else f"Kendall's tau: not measurable (n = {agreement.n})")
    pictures = draw_pictures(trials, selection, genotypes, settings, histories, tau_text, say)
    figures_dir = folder / FIGURES_DIR
    figures_dir.mkdir(exist_ok=True)
    for old in figures_dir.glob("*.png"):
        old.unlink()
    for picture in (p for group in pictures.values() for p in group):
        atomic_write_bytes(figures_dir / picture.name, picture.data)

    missing = [f"{key}: no α/β history ({reason})" for key, reason in sorted(histories.get("missing", {}).items())]
    if not (folder / ARCH_HISTORY_FILE).is_file():
        missing.append(f"No {ARCH_HISTORY_FILE} in the study folder: the searches' α and β were not saved, so they are not shown.")
    shown_genotypes = genotypes.assign(
        search_valid_acc=[percent(v, unit="%") for v in genotypes["search_valid_acc"]],
        retrain_test_acc_mean=[percent(v, unit="%") for v in genotypes["retrain_test_acc_mean"]],
        retrain_test_acc_std=[percent(v, unit="%") for v in genotypes["retrain_test_acc_std"]],
        parameters=[f"{v / 1e6:.3f} M" if v == v else "–" for v in genotypes["parameters"]],
    ).rename(columns={"retrain_test_acc_mean": "retrain test acc (mean over seeds)", "retrain_test_acc_std": "seed std"})
    numbers = comparisons.drop(columns=["sentence", "note"]).assign(
        **{c: [percent(v, unit="%") if c != "p_value" else ("–" if v != v else f"{v:.3g}") for v in comparisons[c]]
           for c in ("mean", "std", "mean_versus", "std_versus", "difference", "ci_low", "ci_high", "p_value")}
    )
    failed = trials[trials["status"] != "finished"][["stage", "trial", "setting", "seed", "status", "epochs", "error"]]
    content = ReportContent(
        name=spec.name,
        plan=plan_lines(spec, trials, settings),
        spec_yaml=(folder / SPEC_FILE).read_text(encoding="utf-8"),
        accuracy=accuracy_table(summary),
        accuracy_note=ACCURACY_NOTE.replace("`", ""),
        comparisons=[(row.sentence, bool(row.significant)) for row in comparisons.itertuples()],
        comparison_notes=notes,
        comparison_table=numbers,
        agreement=agreement_sentence(agreement),
        stability=stability_table(summary),
        stability_note=STABILITY_NOTE,
        cost=cost_table(summary),
        genotypes=shown_genotypes,
        failed=failed,
        overview=pictures["overview"],
        agreement_pictures=pictures["agreement"],
        cost_pictures=pictures["cost"],
        cell_pictures=pictures["cells"],
        arch_pictures=pictures["arch"],
        arch_missing=missing,
        run_info=[f"Study folder {folder.name}, stages done: {', '.join(state.get('stages_done', []))}."]
        + ([f"MLflow run {state['mlflow_run_id']}."] if state.get("mlflow_run_id") else []),
    )
    paths["report"] = folder / REPORT_FILE
    atomic_write_text(paths["report"], render_report(content))
    paths["figures"] = figures_dir
    say(f"  report: {paths['report']}")
    return paths


def log_study_report(client: Any, run_id: str, folder: Path, paths: dict[str, Path]) -> None:
    """The tables, ``report.html``, the spec and the pictures as artifacts of the study's MLflow run."""
    for name, path in paths.items():
        if name != "figures":
            client.log_artifact(run_id, str(path))
    for extra in ("selection.csv", SPEC_FILE, ARCH_HISTORY_FILE):
        if (folder / extra).is_file():
            client.log_artifact(run_id, str(folder / extra))
    if "figures" in paths and any(paths["figures"].glob("*.png")):
        client.log_artifacts(run_id, str(paths["figures"]), FIGURES_DIR)


def _log_to_mlflow(folder: Path, state: dict[str, Any], paths: dict[str, Path], say: Say) -> None:
    """Log to the study's MLflow run if its store is there; say so and go on if it is not."""
    uri, run_id = state.get("mlflow_uri"), state.get("mlflow_run_id")
    if not uri or not run_id:
        say("  MLflow: the study has no MLflow run recorded; nothing logged")
        return
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        say(f"  MLflow: {uri} does not exist; nothing logged (the report is in the folder)")
        return
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(uri)
        client.get_run(run_id)
        log_study_report(client, run_id, folder, paths)
    except Exception as err:  # MLflow raises several types for an unreachable store or a deleted run
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        say(f"  MLflow: not logged ({reason}); the report is in the folder")
        return
    say(f"  MLflow: logged to run {run_id} at {uri}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.report",
        description="Rebuild a finished study's report (tables, pictures, report.html) from its folder, without rerunning anything.",
    )
    parser.add_argument("study", type=Path, help="the study folder (the --out of orchestrator.run, e.g. studies/quickstart)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the report to the study's MLflow run")
    args = parser.parse_args(argv)
    folder = args.study.expanduser()
    spec, state = open_study(folder)
    print(f"study {spec.name}: rebuilding the report in {folder}")
    paths = build_study_report(folder, spec, state, say=print)
    if not args.no_mlflow:
        _log_to_mlflow(folder, state, paths, print)
    print(f"done: open {paths['report']}")
    return 0


if __name__ == "__main__":
    run_main(main)
