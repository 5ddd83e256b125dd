"""What keeps a study of many trials light: checkpoints pruned behind Tune's snapshots, a snapshot period that
grows with the trials, the report's α/β pictures chosen for the page and drawn once, and a rebuilt report that
rewrites and re-logs nothing. The measured figures are in bench/study_scale.py, not here."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from ray import tune

from orchestrator.report.html import ReportContent, write_report
from orchestrator.report.picture_cache import INDEX, resolve_pictures
from orchestrator.report.pictures import IN_PAGE_SEARCHES, Picture, arch_pictures, mean_epochs, natural_sorted
from orchestrator.stages.checkpoints import CheckpointPruner, keep_newest_checkpoints, tune_environment
from orchestrator.study_state import StageTime


# --- checkpoints and snapshots -------------------------------------------------------------------------------
def _checkpoint(trial_dir: Path, index: int) -> tune.Checkpoint:
    folder = trial_dir / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"x" * 10)
    return tune.Checkpoint.from_directory(folder)


def _left(trial_dir: Path) -> list[str]:
    return sorted(p.name for p in trial_dir.iterdir())


def test_checkpoints_are_deleted_only_two_snapshots_behind(tmp_path):
    pruner = CheckpointPruner()
    trial_dir = tmp_path / "search-001"
    trial = SimpleNamespace(trial_id="t1")
    leftover = _checkpoint(trial_dir, 0)  # from an earlier session of the experiment: not seen by this pruner

    def checkpoint(index: int) -> tune.Checkpoint:
        saved = _checkpoint(trial_dir, index)
        pruner.on_checkpoint(0, [trial], trial, saved)
        return saved

    checkpoint(1)
    pruner.get_state()  # snapshot 1 names checkpoint 1: it may not be uploaded yet, nothing goes
    checkpoint(2)
    pruner.get_state()  # snapshot 2 names 2; snapshot 1's upload may still run (Tune then skips 2's)
    checkpoint(3)
    assert _left(trial_dir) == ["checkpoint_000000", "checkpoint_000001", "checkpoint_000002", "checkpoint_000003"]
    pruner.get_state()  # snapshot 3: snapshot 1 had a whole period to reach the storage; older than 1 goes
    assert _left(trial_dir) == ["checkpoint_000000", "checkpoint_000001", "checkpoint_000002", "checkpoint_000003"]
    checkpoint(4)
    pruner.get_state()  # snapshot 4: older than what snapshot 2 named (2) goes, of those this session saw
    assert _left(trial_dir) == ["checkpoint_000000", "checkpoint_000002", "checkpoint_000003", "checkpoint_000004"]
    newest = checkpoint(5)
    keep_newest_checkpoints([newest, None])  # after fit: the newest alone, the earlier session's leftover too
    assert _left(trial_dir) == ["checkpoint_000005"] and not Path(leftover.path).exists()


def test_a_pickled_pruner_starts_afresh_and_unknown_folders_are_left_alone(tmp_path):
    import pickle

    pruner = CheckpointPruner()
    trial = SimpleNamespace(trial_id="t1")
    newest = _checkpoint(tmp_path / "t", 3)
    pruner.on_checkpoint(0, [trial], trial, newest)
    restored = pickle.loads(pickle.dumps(pruner))
    assert restored._unpruned == {} and restored._named == []
    (tmp_path / "t" / "notes").mkdir()
    (tmp_path / "t" / "checkpoint_000001.txt").write_text("not a checkpoint folder")
    keep_newest_checkpoints([newest])
    assert _left(tmp_path / "t") == ["checkpoint_000001.txt", "checkpoint_000003", "notes"]


def test_tune_snapshots_on_a_clock_that_grows_with_the_trials_unless_the_user_set_one():
    assert tune_environment(4, {}) == {
        "TUNE_GLOBAL_CHECKPOINT_S": "10",  # Tune's own minimum
        "TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE": "1",  # a trial's state does not grow with its epochs
    }
    assert tune_environment(1000, {})["TUNE_GLOBAL_CHECKPOINT_S"] == "500"
    assert tune_environment(1000, {"TUNE_GLOBAL_CHECKPOINT_S": "30"})["TUNE_GLOBAL_CHECKPOINT_S"] == "30"


def test_slot_occupancy_is_the_share_of_slot_seconds_in_epochs():
    assert StageTime(wall_s=100, slots=2, epoch_s=120).occupancy == pytest.approx(0.6)
    assert StageTime(wall_s=5).occupancy is None  # a stage without trials


# --- the report's α/β pictures ---------------------------------------------------------------------------------
def _epochs(value: float, count: int = 3) -> list[dict]:
    row = [value, 1 - value]
    return [
        {
            "epoch": e + 1,
            "arch_frozen": e == 0,
            "alphas_normal": [row],
            "alphas_reduce": [row],
            "betas_normal": None,
            "betas_reduce": None,
        }
        for e in range(count)
    ]


def _results(searches: int) -> SimpleNamespace:
    """Two settings, ``searches`` searches in all, the first setting's search-0003 selected."""
    settings = ("k=1", "k=4")
    keys = [f"search-{i:04d}" for i in range(1, searches + 1)]
    trials = {key: {"setting": settings[i % 2], "seed": i // 2, "epochs": _epochs(0.5)} for i, key in enumerate(keys)}
    rows = pd.DataFrame(
        {
            "stage": "search",
            "trial": keys,
            "setting": [trials[k]["setting"] for k in keys],
            "status": "finished",
            "valid_acc": [i / searches for i in range(searches)],
        }
    )
    return SimpleNamespace(
        histories={"primitives": ["a", "b"], "trials": trials},
        trials=rows,
        settings=settings,
        selection=pd.DataFrame({"source": ["search-0003"]}),
    )


def test_a_few_searches_are_all_drawn_in_the_page():
    pictures = arch_pictures(_results(IN_PAGE_SEARCHES))
    assert len(pictures) == IN_PAGE_SEARCHES and all(p.in_page for p in pictures)  # no means needed


def test_at_a_thousand_searches_the_page_holds_the_means_the_selected_and_typical_ones():
    results = _results(1000)
    pictures = arch_pictures(results)
    in_page = [p.name for p in pictures if p.in_page]
    assert in_page[:2] == ["arch_mean_01_k=1.png", "arch_mean_02_k=4.png"]  # one per setting, first
    # the selected search and each setting's median by final validation accuracy (k=1: the even i, 0.498 of 0..0.998)
    assert in_page[2:] == ["arch_search-0003.png", "arch_search-0499.png", "arch_search-0500.png"]
    files = [p for p in pictures if not p.in_page]
    assert len(files) == 997 and len({p.name for p in pictures}) == 1002  # every search has its file
    assert pictures[0].args[2] == "k=1: mean of 500 searches"


def test_the_mean_history_is_the_epoch_by_epoch_mean():
    mean = mean_epochs([_epochs(0.2), _epochs(0.6), _epochs(0.9, count=2)])  # the odd length is left out
    assert len(mean) == 3 and mean[1]["alphas_normal"][0] == pytest.approx([0.4, 0.6])
    assert mean[0]["arch_frozen"] and mean[2]["epoch"] == 3 and mean[0]["betas_normal"] is None


def test_trial_keys_sort_in_grid_order_whatever_their_width():
    assert natural_sorted(["search-100", "search-99", "search-1000", "retrain-g10-seed1", "retrain-g9-seed1"]) == [
        "retrain-g9-seed1",
        "retrain-g10-seed1",
        "search-99",
        "search-100",
        "search-1000",
    ]


# --- drawn once ------------------------------------------------------------------------------------------------
def fake_draw(text: str) -> bytes:
    """A picture's bytes, counted in the environment's file (workers are other processes)."""
    with open(os.environ["FAKE_DRAW_LOG"], "a") as log:
        log.write(text + "\n")
    return text.encode()


def _drawn(log: Path) -> list[str]:
    return log.read_text().split() if log.is_file() else []


def test_pictures_are_drawn_once_and_stale_files_removed(tmp_path, monkeypatch):
    log = tmp_path / "drawn.txt"
    monkeypatch.setenv("FAKE_DRAW_LOG", str(log))
    folder = tmp_path / "figures"

    def pictures(*texts: str) -> dict[str, list[Picture]]:
        return {"s": [Picture(f"{t}.png", t, fake_draw, (t,), in_page=t != "c") for t in texts]}

    first = resolve_pictures(pictures("a", "b", "c"), folder, say=lambda _: None)
    assert (first.drawn, first.reused) == (3, 0) and sorted(_drawn(log)) == ["a", "b", "c"]
    assert [p.data for p in first.pictures["s"]] == [b"a", b"b", None]  # a file-only picture is not read back
    again = resolve_pictures(pictures("a", "b", "c"), folder, say=lambda _: None)
    assert (again.drawn, again.reused) == (0, 3) and len(_drawn(log)) == 3
    assert [p.data for p in again.pictures["s"]] == [b"a", b"b", None]
    (folder / "b.png").unlink()  # a lost file is drawn again; a dropped picture's file goes
    changed = resolve_pictures(pictures("a", "b"), folder, say=lambda _: None)
    assert (
        changed.drawn == 1
        and _drawn(log)[-1] == "b"
        and sorted(p.name for p in folder.glob("*.png"))
        == [
            "a.png",
            "b.png",
        ]
    )
    assert (folder / INDEX).is_file()


@pytest.mark.slow  # two spawned workers import torch and matplotlib: ~8 s
def test_many_pictures_are_drawn_by_worker_processes(tmp_path, monkeypatch):
    log = tmp_path / "drawn.txt"
    monkeypatch.setenv("FAKE_DRAW_LOG", str(log))
    texts = [f"p{i:02d}" for i in range(20)]
    drawn = resolve_pictures(
        {"s": [Picture(f"{t}.png", t, fake_draw, (t,)) for t in texts]}, tmp_path / "f", workers=2, say=lambda _: None
    )
    assert drawn.drawn == 20 and [p.data for p in drawn.pictures["s"]] == [t.encode() for t in texts]
    assert sorted(_drawn(log)) == texts


def _content(**changes) -> ReportContent:
    empty = pd.DataFrame()
    fields = dict(
        name="x",
        findings=["f"],
        plan=["p"],
        spec_yaml="name: x",
        summary_tables={"accuracy": empty, "stability": empty, "cost": empty},
        accuracy_note="",
        stability_note="",
        comparisons=[],
        comparison_notes=[],
        comparison_table=empty,
        method=[],
        agreement="",
        genotypes=empty,
        failed=empty,
    )
    return ReportContent(**{**fields, **changes})


def test_an_unchanged_page_is_not_rewritten_and_file_pictures_are_links(tmp_path):
    path = tmp_path / "report.html"
    files = [Picture(f"arch_search-{i:04d}.png", f"search-{i:04d}", fake_draw, ("",), in_page=False) for i in range(3)]
    content = _content(pictures={"architecture": files})
    assert write_report(path, content)
    page = path.read_text()
    assert page.count('<a href="report_figures/arch_search-') == 3 and "<img" not in page
    assert not write_report(path, content)  # the same page, a minute later: kept as it was
    assert path.read_text() == page
    assert write_report(path, _content(findings=["other"], pictures={"architecture": files}))


# --- a study whose trials share one worker process -------------------------------------------------------------
@pytest.mark.slow
def test_one_reused_worker_computes_what_fresh_runs_do_and_keeps_one_checkpoint_per_trial(tmp_path, ray_env):
    """Three searches on a one-CPU Ray run one after another in one worker process; each ends as the same search
    run alone in this process does, each trial folder keeps its last checkpoint only, and the report shows the
    stage's slot occupancy."""
    import json

    from study_helpers import run_study

    from orchestrator.plan import StudyPlan
    from orchestrator.spec import parse_spec
    from pcdarts_core import run_search

    spec = {
        "name": "reuse",
        "dataset": {"name": "fashion_mnist_mini", "image_size": 14, "train_subset": 128},
        "search": {
            "seed": [0, 1, 2],
            "k": 4,
            "init_channels": 4,
            "layers": 3,
            "batch_size": 32,
            "epochs": 2,
            "warmup_epochs": 1,
            "arch_lr": 0.3,
        },
        "select": {"top": 1},
        "retrain": {"seeds": [0], "init_channels": 4, "layers": 3, "batch_size": 32, "epochs": 1, "cutout": 0},
        "baseline": {"count": 0},
        "ray": {"num_cpus": 1},
    }
    _, code, out = run_study(spec, ray_env, tmp_path)
    assert code == 0, out[-3000:]
    folder = tmp_path / "study"
    times = json.loads((folder / "study.json").read_text())["stage_times"]
    assert times["search"]["worker_processes"] == 1 and times["search"]["slots"] == 1
    assert 0 < times["search"]["epoch_s"] < times["search"]["wall_s"]
    searches = pd.read_csv(folder / "search.csv").set_index("trial")
    for point in StudyPlan.from_spec(parse_spec(spec)).grid:
        alone = run_search(point.config.replace(device="cpu"))
        assert searches.loc[point.key, "valid_acc"] == pytest.approx(alone.history[-1].valid_acc, abs=1e-12)
        assert searches.loc[point.key, "genotype"] == str(alone.genotype)
    trial_dirs = [p for p in (folder / "tune").glob("*-search/search-*") if p.is_dir()]
    assert len(trial_dirs) == 3
    assert all([c.name for c in d.glob("checkpoint_*")] == ["checkpoint_000001"] for d in trial_dirs)
    page = (folder / "report.html").read_text()
    assert "Time and slots per stage" in page and re.search(r"<td>search</td>\s*<td>3</td>", page)
