"""``python -m orchestrator.report`` on a real tiny study folder (tests/fixtures/study_tiny, see its
README): the tables, pictures and one self-contained ``report.html`` are rebuilt from the folder
alone; the page renders in headless Chromium with its tables and images; a folder that is not a
finished study is refused with exit code 2; the report is logged to the study's MLflow run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from chromium import artifact_path, chromium_or_skip, rendered_dom, screenshot

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "study_tiny"
REPO = FIXTURE.parents[2]
#: A search of the fixture marked diverged in the test's copy, its error holding markup that must be escaped.
DIVERGED = ("search-011", 'loss is nan <script>alert("x")</script> & more')


def _report(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.report", str(folder), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A copy of the fixture study with one search diverged, and its report rebuilt by the CLI."""
    folder = tmp_path_factory.mktemp("report") / "study"
    shutil.copytree(FIXTURE, folder)
    searches = pd.read_csv(folder / "search.csv")
    row = searches["trial"] == DIVERGED[0]
    searches["error"] = searches["error"].astype(object)
    searches.loc[row, ["status", "error"]] = ["diverged", DIVERGED[1]]
    searches.loc[row, ["valid_acc", "genotype"]] = [float("nan"), None]
    searches.to_csv(folder / "search.csv", index=False)
    done = _report(folder, "--no-mlflow")
    assert done.returncode == 0, done.stderr
    return folder, done.stdout


def test_tables_and_pictures_rebuilt_from_the_folder(built):
    folder, output = built
    assert (
        "rebuilding the report" in output and "tables:" in output and "pictures:" in output and "report.html" in output
    )
    assert "MLflow" not in output  # --no-mlflow
    summary = pd.read_csv(folder / "summary.csv").set_index("setting")
    assert list(summary.index) == [
        "k=1 edge_norm=off",
        "k=1 edge_norm=on",
        "k=4 edge_norm=off",
        "k=4 edge_norm=on",
        "random",
    ]
    searches = pd.read_csv(folder / "search.csv")
    finished = searches[searches["status"] == "finished"]
    for setting, group in finished.groupby("setting"):
        assert summary.loc[setting, "search_valid_acc_n"] == len(group)
        assert summary.loc[setting, "search_valid_acc_mean"] == pytest.approx(group["valid_acc"].mean())
    assert summary.loc["k=4 edge_norm=on", "searches_failed"] == 1
    # each setting's retrain accuracy is over its 2 genotypes, each the mean of its 2 seeds; random: 3 cells
    assert list(summary["retrain_test_acc_n"]) == [2, 2, 2, 2, 3]
    assert (
        summary["genotype_overlap"].between(0, 1).all()
        and summary["alpha_entropy_normal"].iloc[:4].between(0.9, 1).all()
    )
    comparisons = pd.read_csv(folder / "comparisons.csv")
    assert len(comparisons) == 3 * 2 + 4  # 3 settings x 2 metrics against DARTS, 4 settings against random
    assert set(comparisons["versus"]) == {"k=1 edge_norm=off", "random"}
    pictures = {p.name for p in (folder / "report_figures").glob("*.png")}
    assert {"accuracy.png", "agreement.png", "cost_per_k.png"} <= pictures
    assert {f"cell_g0{i}.png" for i in range(1, 9)} | {"cell_random01.png"} <= pictures
    assert {"arch_search-001.png", "arch_search-010.png"} <= pictures
    assert "## Comparisons" in (folder / "summary.md").read_text()


def test_summary_and_report_open_with_the_findings(built):
    folder, _ = built
    markdown = (folder / "summary.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Study fixture\n\n## Findings\n\n- Search time per epoch relative to")
    findings = markdown.split("## Findings\n\n")[1].split("\n\n")[0].splitlines()
    assert len(findings) == 5 and all(line.startswith("- ") for line in findings)
    assert "Best setting by retrain test accuracy" in findings[1] and "Kendall's tau" in findings[2]
    assert "α barely moved" in findings[3]  # the fixture's searches are 3 epochs: α entropy 1.00
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert re.findall(r'<h2 id="(\w+)">', html)[:2] == ["findings", "run"]
    items = re.findall(r"<li>(.*?)</li>", re.search(r'<ul class="findings">(.*?)</ul>', html, re.S).group(1))
    assert len(items) == 5 and items[1].startswith("Best setting by retrain test accuracy")


def test_report_html_is_self_contained_and_escaped(built):
    folder, _ = built
    html = (folder / "report.html").read_text(encoding="utf-8")
    pictures = list((folder / "report_figures").glob("*.png"))
    images = re.findall(r'<img src="([^"]*)"', html)
    assert len(images) == len(pictures) and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing fetched from elsewhere
    for heading in (
        "What was run",
        "Accuracy per setting",
        "Comparisons",
        "Search-to-retrain agreement",
        "Stability of the searches",
        "Cost",
        "Retrained genotypes",
        "Architecture weights of each search",
    ):
        assert heading in html
    assert html.count("<table") == 6  # accuracy, comparisons, stability, cost, genotypes, failed trials
    # the comparisons in plain words, with the small-n caveat
    assert re.search(
        r"k=4 edge_norm=on vs k=1 edge_norm=off \(DARTS\), retrain test accuracy: "
        r"[\d.]+ ± [\d.]+ vs [\d.]+ ± [\d.]+ %, "
        r"difference [+-][\d.]+ \[[+-][\d.]+, [+-][\d.]+\] points, p = [\d.]+ \(Welch t\), n = 2: not significant "
        r"\(Holm-adjusted p = [\d.]+ over \d+ comparisons\); "
        r"caveat: fewer than 4 values per group",
        html,
    )
    assert "Kendall&#39;s tau" in html or "Kendall's tau" in html
    # text from the study is escaped: the diverged search's error shows as text, never as markup
    assert "<script" not in html and '&lt;script&gt;alert("x")&lt;/script&gt; &amp; more' in html
    assert "name: fixture" in html  # the spec as run


def test_report_renders_in_chromium(built):
    browser = chromium_or_skip()
    folder, _ = built
    url = (folder / "report.html").as_uri()
    dom = rendered_dom(browser, url)
    pictures = len(list((folder / "report_figures").glob("*.png")))  # 3 overviews, 11 cells, 4 searches' α/β
    assert dom.count("<table") == 6 and dom.count('<img src="data:image/png;base64,') == pictures == 18
    assert "Accuracy per setting" in dom and "not significant" in dom
    png = screenshot(browser, url, artifact_path("study-report.png"), size=(1280, 2400))
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1200
    colours = {tuple(p) for p in (pixels[::4, ::4, :3] * 255).astype(int).reshape(-1, 3)}
    assert len(colours) > 200  # text, tables and the accuracy picture, not a blank page
    assert (pixels[:, :, :3] < 0.5).any(axis=2).mean() > 0.01  # dark ink on a good share of the page


def test_a_rebuilt_report_draws_and_rewrites_nothing(built):
    folder, first = built
    assert "drawn, 0 unchanged)" in first

    def written() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in [*folder.glob("report_figures/*.png"), folder / "report.html"]}

    before = written()
    again = _report(folder, "--no-mlflow")
    assert again.returncode == 0, again.stderr
    assert "(0 drawn, 18 unchanged)" in again.stdout and "report.html (unchanged)" in again.stdout
    assert written() == before


def test_not_a_finished_study_exits_2_with_one_line(tmp_path):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(FIXTURE, unfinished)
    state = json.loads((unfinished / "study.json").read_text())
    state["stages_done"] = ["search", "select"]
    (unfinished / "study.json").write_text(json.dumps(state))
    done = _report(unfinished)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "stage retrain not done" in done.stderr and "--resume" in done.stderr
    assert not (unfinished / "report.html").exists()
    from orchestrator.report.folder import open_study
    from pcdarts_core.errors import UserInputError

    for folder, words in ((tmp_path / "nothing", "no such folder"), (tmp_path, "not a study folder")):
        with pytest.raises(UserInputError, match=words):
            open_study(folder)


def test_report_logged_to_the_study_mlflow_run(built, tmp_path):
    from mlflow.tracking import MlflowClient

    from orchestrator.report.folder import FIGURES_DIR, REPORT_FILE
    from orchestrator.study_state import StudyState
    from orchestrator.tracking import log_report_to_study_run

    folder, _ = built
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("fixture", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment).info.run_id
    state = StudyState.read(FIXTURE).model_copy(update={"mlflow_uri": uri, "mlflow_run_id": run})
    paths = {name: folder / name for name in ("summary.csv", "summary.md", "comparisons.csv", REPORT_FILE)}
    lines: list[str] = []
    log_report_to_study_run(folder, state, {**paths, "figures": folder / FIGURES_DIR}, lines.append)
    pictures = len(list((folder / FIGURES_DIR).glob("*.png")))
    files = len(paths) + 3 + pictures  # and selection.csv, spec.yaml, arch_history.json
    assert lines == [f"  MLflow: {files} changed files logged to run {run} at {uri}"]
    logged = {a.path for a in client.list_artifacts(run)}
    assert {REPORT_FILE, "summary.csv", "comparisons.csv", "spec.yaml", "arch_history.json", FIGURES_DIR} <= logged
    figures = {a.path for a in client.list_artifacts(run, FIGURES_DIR)}
    assert f"{FIGURES_DIR}/accuracy.png" in figures and len(figures) == pictures
    # logged again unchanged: nothing is sent; a changed file alone is
    log_report_to_study_run(folder, state, {**paths, "figures": folder / FIGURES_DIR}, lines.append)
    assert lines[-1] == f"  MLflow: 0 changed files logged to run {run} at {uri}"
    (folder / "summary.md").write_text((folder / "summary.md").read_text() + "\nedited\n")
    log_report_to_study_run(folder, state, {**paths, "figures": folder / FIGURES_DIR}, lines.append)
    assert lines[-1] == f"  MLflow: 1 changed files logged to run {run} at {uri}"
    # the fixture's own store does not exist: said, and nothing is created
    log_report_to_study_run(folder, StudyState.read(FIXTURE), paths, lines.append)
    assert "does not exist; nothing logged" in lines[-1] and not Path("/nonexistent").exists()
