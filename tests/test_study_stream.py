"""A study whose trials stream their image folder (``data_loading: stream``, see tests/test_data_stream.py for the
core): the driver lists the folder instead of decoding it, the trials' loader workers end with them, and each
search ends as it does with the folder in memory."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.mark.slow
def test_a_study_streams_its_image_folder_and_leaves_no_loader_worker(tmp_path, ray_env):
    """``data_loading: stream`` through a whole study: the driver's check lists the folder instead of decoding
    it, the trials stream their batches through loader workers, and every search ends as it does in memory."""
    from image_folders import write_image_folder
    from study_helpers import descendants, run_study

    write_image_folder(tmp_path / "images", classes=2, train=16, val=6, size=(20, 24))
    spec = {
        "name": "streamed",
        "dataset": {"name": "imagefolder", "root": str(tmp_path / "images"), "image_size": 12},
        "search": {
            "seed": [0, 1],
            "k": 2,
            "init_channels": 4,
            "layers": 3,
            "batch_size": 8,
            "epochs": 2,
            "warmup_epochs": 1,
            "arch_lr": 0.3,
            "data_loading": "stream",
            "loader_workers": 1,
        },
        "select": {"top": 1},
        "retrain": {"seeds": [0], "init_channels": 4, "layers": 3, "batch_size": 8, "epochs": 1, "cutout": 0},
        "baseline": {"count": 0},
        "ray": {"num_cpus": 2},
    }
    process, code, out = run_study(spec, ray_env, tmp_path)
    folder = tmp_path / "study"
    assert code == 0, out[-3000:]
    assert not descendants(process.pid)
    searches = pd.read_csv(folder / "search.csv").set_index("trial")
    assert (searches["status"] == "finished").all() and len(searches) == 2
    from orchestrator.plan import StudyPlan
    from orchestrator.spec import parse_spec
    from pcdarts_core import run_search

    for point in StudyPlan.from_spec(parse_spec(spec)).grid:
        in_memory = run_search(point.config.replace(device="cpu", data_loading="memory"))
        assert searches.loc[point.key, "valid_acc"] == pytest.approx(in_memory.history[-1].valid_acc, abs=1e-12)
        assert searches.loc[point.key, "genotype"] == str(in_memory.genotype)
