"""The screen stage (``select.by: screen``): the spec's keys and refusals, the plan's screen trials, the
choice by the screen's held-out accuracy (a stopped or failed candidate never chosen), the screen's finding,
and a tiny transfer study end to end with ASHA on a local Ray, its driver killed in the screen and resumed:
screen rows and MLflow runs (none twice), stopped candidates, the selection, the network for the new data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fault_hooks import pause_hook_env
from study_helpers import RAY_AGENTS, driver, finish, finished, kill_driver, trial_results, wait_for

from orchestrator.errors import SpecError
from orchestrator.plan import StudyPlan
from orchestrator.selection import SCREEN_METRIC, select_screened
from orchestrator.spec import SelectSpec, parse_spec, screen_config
from pcdarts_core import random_genotype

SPEC = {
    "name": "screened",
    "dataset": {"name": "fashion_mnist_mini", "image_size": 14, "train_subset": 128},
    "search": {
        "seed": [0, 1, 2, 3],
        "k": 4,
        "init_channels": 4,
        "layers": 3,
        "batch_size": 32,
        "epochs": 2,
        "warmup_epochs": 1,
    },
    "select": {"by": "screen", "top": 1},
    "screen": {"epochs": 3, "scheduler": "asha", "grace_period": 1, "reduction_factor": 2, "lr": 0.05},
    "retrain": {"seeds": [0], "init_channels": 4, "layers": 3, "batch_size": 32, "epochs": 4, "cutout": 0},
    "resources": {"cpus_per_trial": 1, "max_concurrent_trials": 1},
    "ray": {"num_cpus": 2},
}


def _with(**sections) -> dict:
    raw = json.loads(json.dumps(SPEC))
    for name, value in sections.items():
        if value is None:
            raw.pop(name, None)
        else:
            raw[name] = value
    return raw


@pytest.mark.parametrize(
    ("sections", "path", "words"),
    [
        ({"select": {"top": 1}}, "screen", "set select.by: screen, or remove screen"),
        ({"screen": {"valid_portion": 0}}, "screen.valid_portion", "no held-out images"),
        ({"screen": {"grace_period": 2}}, "screen.grace_period", "only for scheduler: asha"),
        ({"screen": {"scheduler": "asha", "grace_period": 9, "epochs": 3}}, "screen.grace_period", "more than"),
        ({"screen": {"lrr": 0.1}}, "screen.lrr", "unknown setting"),
        ({"screen": {"seeds": []}}, "screen.seeds", "at least 1"),
        ({"select": {"by": "screening"}}, "select.by", "'search' or 'screen'"),
    ],
)
def test_bad_screen_specs_name_the_key_and_the_fix(sections, path, words):
    with pytest.raises(SpecError) as caught:
        parse_spec(_with(**sections), source="study.yaml")
    message = str(caught.value)
    assert message.startswith(f"study.yaml: {path}:") and words in message, message


def test_screen_settings_and_trials():
    spec = parse_spec(_with(screen={"seeds": [0, 1], "lr": 0.05}))
    config = screen_config(spec, 1)
    # the retrain settings, then the screen's; a quarter of the retrain epochs by default; a held-out split
    assert (config.epochs, config.valid_portion, config.lr, config.seed, config.init_channels) == (1, 0.1, 0.05, 1, 4)
    genotypes = [random_genotype(seed) for seed in (1, 2)]
    candidates = pd.DataFrame(
        [
            {"genotype_id": f"g0{i + 1}", "setting": "k=4", "source": f"search-00{i + 1}", "genotype": g.to_text()}
            for i, g in enumerate(genotypes)
        ]
    )
    trials = StudyPlan.from_spec(spec).screen_trials(candidates)
    assert [t.key for t in trials] == ["screen-g01-seed0", "screen-g01-seed1", "screen-g02-seed0", "screen-g02-seed1"]
    assert {t.stage for t in trials} == {"screen"} and trials[2].source == "search-002"
    assert trials[3].config["valid_portion"] == 0.1 and trials[3].config["seed"] == 1
    described = StudyPlan.from_spec(parse_spec(SPEC)).describe(Path("study"))
    assert "stage screen: each candidate with seeds [0], 3 epochs" in described and "ASHA" in described
    assert described.startswith("study screened: 4 search trials, a screen trial per candidate and seed, then")


def _candidates(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "genotype_id": gid,
                "setting": settings.split(";")[0],
                "source": f"s-{gid}",
                "found_by": f"s-{gid}",
                "found_by_settings": settings,
                "metric": "valid_acc",
                "value": 0.5,
                "genotype": "g",
            }
            for gid, settings in rows
        ]
    )


def _screened(*rows: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"genotype_id": gid, "status": status, "valid_acc": acc} for gid, status, acc in rows])


def test_the_screen_chooses_by_its_held_out_accuracy_never_a_stopped_candidate():
    candidates = _candidates(("g01", "k=1"), ("g02", "k=1"), ("g03", "k=4"), ("g04", "k=4;k=1"))
    screened = _screened(
        *(("g01", "finished", 0.60), ("g01", "finished", 0.70)),  # mean 0.65
        ("g02", "stopped", 0.99),  # stopped early: its last accuracy does not count
        ("g03", "finished", 0.40),
        *(("g04", "finished", 0.50), ("g04", "diverged", None)),  # the finished seed counts
    )
    by_study = select_screened(candidates, screened, SelectSpec(top=2))
    assert list(by_study["genotype_id"]) == ["g01", "g04"]
    assert list(by_study["metric"]) == [SCREEN_METRIC] * 2 and list(by_study["value"]) == pytest.approx([0.65, 0.50])
    by_setting = select_screened(candidates, screened, SelectSpec(top=1, per="setting"))
    assert list(by_setting["genotype_id"]) == ["g01", "g04"]  # k=1: g01; k=4: g04 (0.50 beats g03's 0.40)


def _image_folder(root: Path, classes: int = 3, per_class: int = 16) -> Path:
    """An RGB image folder (train/ and val/), each class a noisy colour: data unlike the search's grey digits."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("val", 4)):
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 80, (20, 20, 3))
                pixels[..., label] += 150
                Image.fromarray(pixels.astype("uint8")).save(folder / f"{i}.png")
    return root


@pytest.mark.slow
def test_a_screened_transfer_study_killed_in_its_screen_and_resumed(tmp_path, ray_env):
    """Searched on grey Fashion-MNIST digits (10 classes), screened with ASHA and retrained on an RGB folder of 3
    classes; the driver is SIGKILLed in the screen stage and the study resumed to its end."""
    from mlflow.tracking import MlflowClient

    from orchestrator.tracking.trained import evaluate_run, trial_run_id

    spec_file = tmp_path / "spec.yaml"
    raw = json.loads(json.dumps(SPEC))
    raw["retrain"]["dataset"] = {"name": "imagefolder", "root": str(_image_folder(tmp_path / "rgb")), "image_size": 16}
    raw["baseline"] = {"count": 1, "known": ["PC_DARTS_cifar"]}  # the published cell as an anchor, beside a random one
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    folder = tmp_path / "study"
    args = [str(spec_file), "--out", str(folder)]

    # the driver SIGKILLed once one screen candidate has ended (finished or stopped) and the next has begun; each
    # epoch waits a second first, so that the next one is still running then (warm workers are quick)
    first = driver(args, {**ray_env, **pause_hook_env(1.0)}, tmp_path, tmp_path / "run1.log")
    try:
        wait_for(lambda: len(trial_results(folder, "screen")) >= 2, first, 400, "a second screen trial")
        before = trial_results(folder, "screen")
    finally:
        leaked = kill_driver(first)
    assert all(command.startswith(RAY_AGENTS) for command in leaked.values()), leaked
    assert "screen" not in json.loads((folder / "study.json").read_text())["stages_done"]
    code, output = finish(driver([*args, "--resume"], ray_env, tmp_path, tmp_path / "run2.log"), 600)
    assert code == 0, output[-3000:]
    after = trial_results(folder, "screen")
    for key, rows in before.items():  # a candidate that had finished trained no epoch again
        if finished(rows):
            assert max(r["epoch"] for r in after[key]) == max(r["epoch"] for r in rows), key

    candidates = pd.read_csv(folder / "candidates.csv")
    screen = pd.read_csv(folder / "screen.csv")
    selection = pd.read_csv(folder / "selection.csv")
    assert len(candidates) >= 2 and (screen["stage"] == "screen").all()
    assert sorted(screen["genotype_id"]) == sorted(candidates["genotype_id"])  # one seed each
    assert set(screen["status"]) <= {"finished", "stopped"}
    stopped = screen[screen["status"] == "stopped"]
    assert (stopped["epochs"] < 3).all() and (screen.loc[screen["status"] == "finished", "epochs"] == 3).all()
    # the screen's best finished candidate is retrained, chosen by its held-out accuracy
    best = screen[screen["status"] == "finished"].sort_values(["valid_acc", "genotype_id"], ascending=[False, True])
    assert list(selection["genotype_id"]) == [best.iloc[0]["genotype_id"]]
    assert selection.iloc[0]["metric"] == SCREEN_METRIC and selection.iloc[0]["value"] == pytest.approx(
        best.iloc[0]["valid_acc"]
    )
    assert not set(stopped["genotype_id"]) & set(selection["genotype_id"])
    retrain = pd.read_csv(folder / "retrain.csv")
    assert list(retrain["genotype_id"]) == [*selection["genotype_id"], "PC_DARTS_cifar", "random01"]
    assert (retrain["status"] == "finished").all()
    assert retrain.set_index("genotype_id").loc["PC_DARTS_cifar", "setting"] == "published:PC_DARTS_cifar"
    trials = pd.read_csv(folder / "trials.csv")
    assert trials["stage"].value_counts().to_dict() == {"search": 4, "screen": len(screen), "retrain": 3}
    # the anchor has its summary row and the searched setting is compared with it
    summary = pd.read_csv(folder / "summary.csv").set_index("setting")
    assert list(summary.index) == ["default", "published:PC_DARTS_cifar", "random"]
    comparisons = pd.read_csv(folder / "comparisons.csv")
    assert ((comparisons["setting"] == "default") & (comparisons["versus"] == "published:PC_DARTS_cifar")).any()
    # one MLflow run per screen trial, tagged as such, ended as the trial ended
    client = MlflowClient(json.loads((folder / "study.json").read_text())["mlflow_uri"])
    experiment = client.get_experiment_by_name("screened")
    runs = client.search_runs([experiment.experiment_id], "tags.`pcdarts.stage` = 'screen'", max_results=100)
    assert sorted(r.data.tags["pcdarts.trial"] for r in runs) == sorted(screen["trial"])  # none twice
    assert all(r.info.status == "FINISHED" for r in runs)
    statuses = {r.data.tags["pcdarts.trial"]: r.data.tags["pcdarts.status"] for r in runs}
    assert statuses == dict(zip(screen["trial"], screen["status"]))
    assert "stage screen:" in output and "selected" in output
    # transfer: the retrained network has the folder's 3 classes and RGB input, rebuilt from its run it gives the
    # logged test accuracy on the folder's val/ split; the searches costed their genotype for that network
    retrain = retrain[retrain["genotype_id"] == selection.iloc[0]["genotype_id"]]
    uri, run_id = trial_run_id(folder, retrain.iloc[0]["trial"])
    logged = client.get_run(run_id).data.metrics["test_acc"]
    assert evaluate_run(uri, run_id).test_acc == pytest.approx(logged, abs=1e-6)
    weights = client.download_artifacts(run_id, "network/weights.pt", str(tmp_path / "weights"))
    import torch

    state = torch.load(weights, weights_only=True)
    assert state["classifier.weight"].shape[0] == 3 and state["stem.0.weight"].shape[1] == 3
    source = selection.iloc[0]["source"]
    search = pd.read_csv(folder / "search.csv").set_index("trial")
    assert search.loc[source, "parameters"] == retrain.iloc[0]["parameters"]


def test_screen_summary_counts_stops_hours_saved_and_rank_agreement():
    from orchestrator.report.screening import screen_sentence, screen_summary

    rows = [
        {"stage": "search", "trial": f"search-00{i}", "valid_acc": acc, "status": "finished"}
        for i, acc in enumerate((0.5, 0.6, 0.7), start=1)
    ]
    for gid, source, status, epochs, acc in (
        ("g01", "search-003", "finished", 4, 0.80),
        ("g02", "search-002", "finished", 4, 0.70),
        ("g03", "search-001", "stopped", 1, 0.20),
    ):
        rows.append(
            {
                **{"stage": "screen", "trial": f"screen-{gid}-seed0", "genotype_id": gid, "source": source},
                **{"status": status, "epochs": epochs, "epochs_planned": 4, "valid_acc": acc},
                **{"time_s": 360.0 * epochs, "cpus": 1, "gpus": 0.0},
            }
        )
    genotypes = pd.DataFrame(
        [{"genotype_id": "g01", "retrain_seeds": 2, "retrain_test_acc_mean": 0.9}]
        + [{"genotype_id": "g02", "retrain_seeds": 2, "retrain_test_acc_mean": 0.85}]
    )
    summary = screen_summary(pd.DataFrame(rows), genotypes)
    assert (summary.candidates, summary.trials, summary.stopped, summary.unit) == (3, 3, 1, "CPU")
    assert summary.hours == pytest.approx(9 * 360 / 3600)  # 4 + 4 + 1 epochs of 6 minutes
    assert summary.saved_hours == pytest.approx(3 * 360 / 3600)  # the stopped one's 3 epochs left
    # the finished candidates: search 0.7 > 0.6 and screen 0.8 > 0.7, retrain 0.9 > 0.85
    assert summary.search_vs_screen.tau == pytest.approx(1.0) and summary.search_vs_screen.n == 2
    assert summary.screen_vs_retrain.tau == pytest.approx(1.0)
    text = screen_sentence(summary)
    assert text.startswith("Screen: 3 candidate genotypes in 3 short retrainings, 1 stopped early by ASHA")
    assert "saved about 0.3 CPU-h" in text and "a hint at most" in text
    assert screen_summary(pd.DataFrame(rows[:3]), genotypes) is None  # no screen, no sentence


def test_only_a_result_the_scheduler_ended_makes_a_trial_stopped():
    from types import SimpleNamespace

    from orchestrator.stages.rows import trial_status

    def result(**metrics):
        return SimpleNamespace(metrics={"trial_id": "x", **metrics}, error=None)

    stopped = result(epoch=2, trial_status="running", done=True)
    assert trial_status(stopped, stops=True) == "stopped"
    assert trial_status(stopped, stops=False) == "interrupted"  # no scheduler: nothing stops a trial early
    assert trial_status(result(epoch=2, trial_status="running", done=False), stops=True) == "interrupted"
    assert trial_status(result(), stops=True) == "interrupted"  # never reported an epoch
    assert trial_status(result(epoch=3, trial_status="finished", done=True), stops=True) == "finished"


def test_seeds_of_the_screen_are_checked_before_anything_starts():
    with pytest.raises(SpecError, match=r"screen\.seeds: .*repeated seeds"):
        parse_spec(_with(screen={"seeds": [0, 0]}))
    with pytest.raises(SpecError, match=r"screen\.seeds: .*seeds >= 0"):
        parse_spec(_with(screen={"seeds": [0, -1]}))
    assert parse_spec(_with(screen={"seeds": 3})).screen.seeds == [3]


def test_nothing_to_screen_leaves_an_empty_selection():
    empty = select_screened(_candidates(), pd.DataFrame(), SelectSpec(top=2))
    assert empty.empty and list(empty.columns)[0] == "genotype_id"
