"""``resources.gpus_per_trial: auto``: the rule from measured bytes to a GPU share, and how a stage
measures it once per setting before Tune starts (a probe function in place of CUDA; one test runs a
local Ray with a logical GPU)."""

from __future__ import annotations

import re
import shutil
import tempfile

import pytest
import yaml

from orchestrator.errors import SpecError
from orchestrator.gpu_packing import NO_GPU_NOTE, ProbeUnavailable, measure_gpu_shares, probe_key, trial_resources
from orchestrator.plan import StudyPlan
from orchestrator.ray_cluster import check_resources
from orchestrator.spec import parse_spec
from orchestrator.stages.runner import _with_resources
from pcdarts_core import SearchConfig, TrainConfig, load_genotype
from pcdarts_core.probe import CUDA_PROCESS_OVERHEAD_BYTES, gpu_share, probe_peak_memory

GiB = 2**30
SPEC = {
    "name": "packing",
    "dataset": {"name": "fashion_mnist_mini"},
    "search": {"seed": [0, 1], "k": [1, 4], "init_channels": 4, "layers": 3, "epochs": 2, "warmup_epochs": 1},
}


def test_share_covers_peak_margin_and_process_overhead_as_one_nth_of_the_gpu():
    # 10 GiB peak + 25% + 0.5 GiB = 13 GiB: 6 such trials fit in 80 GiB, so each asks for 1/6
    share = gpu_share(10 * GiB, 80 * GiB, margin=0.25, overhead_bytes=GiB // 2)
    assert share == 0.1666
    assert 6 * share <= 1 and share > 1 / 7  # six fit, and the share keeps the seventh out
    assert gpu_share(10 * GiB, 80 * GiB, margin=0.0, overhead_bytes=0) == 0.125  # exactly 8 fit
    assert gpu_share(40 * GiB, 80 * GiB) == 1.0  # 50 GiB + overhead: only one fits
    assert gpu_share(90 * GiB, 80 * GiB) == 1.0  # more than the GPU: capped at one (the trial will tell)
    assert gpu_share(0, 80 * GiB, overhead_bytes=0) == 0.0001  # Ray's resolution
    # a larger margin never gives a smaller share
    shares = [gpu_share(7 * GiB, 141 * GiB, margin=m) for m in (0.0, 0.1, 0.25, 0.5, 1.0)]
    assert shares == sorted(shares)
    assert CUDA_PROCESS_OVERHEAD_BYTES > 0
    with pytest.raises(ValueError):
        gpu_share(GiB, 0)
    with pytest.raises(ValueError):
        gpu_share(GiB, 80 * GiB, margin=-0.1)


@pytest.mark.parametrize("value", ["auto", 0, 0.25, 1, 2])
def test_spec_takes_auto_or_a_share(value):
    spec = parse_spec({**SPEC, "resources": {"gpus_per_trial": value}})
    assert spec.resources.gpus_per_trial == value
    assert spec.resources.gpu_memory_margin == 0.25


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("half", "neither a number nor 'auto'"),
        ("-1", "must be >= 0"),
        ("1.5", "fraction of one GPU or whole GPUs"),
        (".inf", "not a finite number; use a number >= 0, a fraction <= 1 or whole GPUs"),
        (".nan", "not a finite number"),
    ],
)
def test_spec_refuses_other_gpu_values_naming_the_key(value, words):
    resources = yaml.safe_load(f"gpus_per_trial: {value}")  # as the spec's YAML reads it
    with pytest.raises(SpecError, match=rf"resources\.gpus_per_trial.*{re.escape(words)}") as caught:
        parse_spec({**SPEC, "resources": resources})
    assert "\n" not in str(caught.value)


def auto_spec(**resources):
    return parse_spec({**SPEC, "resources": {"gpus_per_trial": "auto", **resources}})


def search_trials(spec):
    return StudyPlan.from_spec(spec).search_trials()


PEAK_GIB = {1: 40, 4: 6}  # what a search of each K holds at most, say


def probe_recording(probed: list):
    """A probe in place of CUDA: records what it probed; the peak of each K on a 141 GiB H200."""

    def probe(trial):
        probed.append((trial.config["k"], trial.seed))
        return {"peak_bytes": PEAK_GIB[trial.config["k"]] * GiB, "total_bytes": 141 * GiB, "device_name": "H200"}

    return probe


def test_each_setting_is_probed_once_and_its_share_written_into_its_trials():
    planned = search_trials(auto_spec())
    assert [t.gpus for t in planned] == ["auto"] * 4
    probed, said = [], []
    trials = measure_gpu_shares(planned, margin=0.25, gpus_in_cluster=1, probe=probe_recording(probed), say=said.append)
    assert [t.key for t in trials] == [t.key for t in planned]  # the same trials, in the same order
    assert sorted(k for k, _ in probed) == [1, 4]  # seeds do not change the memory: one probe per K
    share = {t.config["k"]: t.gpus for t in trials}
    assert {(t.config["k"], t.gpus) for t in trials} == {(1, 0.5), (4, gpu_share(6 * GiB, 141 * GiB, 0.25))}
    assert share[1] == 0.5  # 40 GiB + 25% + 0.5 GiB = 50.5 GiB: two fit in 141 GiB
    assert "2 setting(s)" in said[0] and len(said) == 3
    assert any("k=4" in line and f"{share[4]:g} GPU per trial" in line and "H200" in line for line in said)
    assert len({probe_key(t) for t in trials}) == 2 and len({probe_key(t) for t in trials if t.config["k"] == 4}) == 1


def test_a_setting_that_cannot_be_probed_gets_a_whole_gpu_with_a_warning_naming_it():
    said = []

    def probe(trial):
        if trial.config["k"] == 1:
            raise ProbeUnavailable("the probe failed: torch.OutOfMemoryError: CUDA out of memory")
        return {"peak_bytes": 6 * GiB, "total_bytes": 141 * GiB}

    trials = measure_gpu_shares(
        search_trials(auto_spec()), margin=0.25, gpus_in_cluster=2, probe=probe, say=said.append
    )
    assert {t.gpus for t in trials if t.config["k"] == 1} == {1.0}
    assert {t.gpus for t in trials if t.config["k"] == 4} == {gpu_share(6 * GiB, 141 * GiB, 0.25)}
    warnings = [line for line in said if line.startswith("WARNING")]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "k=1" in warnings[0] and "CUDA out of memory" in warnings[0] and "2 trial(s) get a whole GPU" in warnings[0]


def test_auto_without_gpus_in_the_cluster_probes_nothing_says_so_and_asks_for_none():
    probed, said = [], []
    trials = measure_gpu_shares(
        search_trials(auto_spec()), margin=0.25, gpus_in_cluster=0, probe=probe_recording(probed), say=said.append
    )
    assert probed == [] and [t.gpus for t in trials] == [0.0] * 4
    assert said == [NO_GPU_NOTE] and "no GPU, so every trial runs on its CPUs" in said[0]


def test_tune_gets_each_trials_own_share_and_nothing_is_probed_there():
    trials = measure_gpu_shares(
        search_trials(auto_spec(cpus_per_trial=2)),
        margin=0.25,
        gpus_in_cluster=1,
        probe=probe_recording([]),
        say=lambda line: None,
    )

    def trainable(config):
        pass

    wrapped = _with_resources(trainable, auto_spec(cpus_per_trial=2))
    assert wrapped._resources is trial_resources  # a plain function of the config: picklable, no probe, no state
    assert trial_resources({"trial": trials[0].to_param(), "threads": 2}) == {"cpu": 2.0, "gpu": 0.5}
    unmeasured = {**trials[0].to_param(), "gpus": "auto"}
    assert trial_resources({"trial": unmeasured}) == {"cpu": 2.0, "gpu": 1.0}  # unmeasured: whole GPU


def test_check_resources_leaves_auto_to_the_stages_and_still_refuses_too_many_cpus(capsys):
    check_resources(auto_spec(), {"CPU": 2.0})
    check_resources(auto_spec(), {"CPU": 2.0, "GPU": 1.0})
    assert capsys.readouterr().out == ""  # the no-GPU note comes with each stage (above)
    with pytest.raises(SpecError, match="cpus_per_trial"):
        check_resources(auto_spec(cpus_per_trial=4), {"CPU": 2.0})


@pytest.mark.slow
def test_run_stage_probes_before_tune_and_a_restored_stage_probes_nothing(tmp_path, monkeypatch):
    """On a real local Ray with one (logical) GPU: each trial is placed with its measured share,
    and running the stage again restores Tune's saved descriptions, shares included."""
    import ray
    from ray import tune

    import orchestrator.gpu_packing as gpu_packing
    from orchestrator.stages.runner import run_stage
    from orchestrator.trial import STATUS_METRIC, Trial, TrialStatus

    probed, said = [], []
    monkeypatch.setattr(gpu_packing, "probe_in_subprocess", probe_recording(probed))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("TUNE_DISABLE_SIGINT_HANDLER", "1")
    ray_tmp = tempfile.mkdtemp(prefix="rp", dir="/tmp")
    spec = auto_spec()

    def report_assigned(config):  # what Ray gave the trial, as the trial sees it
        assigned = ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0)
        tune.report({STATUS_METRIC: TrialStatus.FINISHED.value, "gpu": assigned})

    try:
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, _temp_dir=ray_tmp)
        runs = []
        for _ in range(2):
            results = run_stage(
                "packing-search",
                report_assigned,
                search_trials(spec),
                spec,
                str(tmp_path / "tune"),
                [],
                False,
                said.append,
            )
            runs.append(
                {Trial.from_param(r.config).key: (Trial.from_param(r.config).gpus, r.metrics["gpu"]) for r in results}
            )
    finally:
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert sorted(k for k, _ in probed) == [1, 4]  # once per setting, before the first run only
    expected = {1: 0.5, 4: gpu_share(6 * GiB, 141 * GiB, 0.25)}
    keys = {t.key: t.config["k"] for t in search_trials(spec)}
    assert runs[0] == {key: (expected[k], expected[k]) for key, k in keys.items()}  # asked for, and given
    assert runs[1] == runs[0]
    assert sum("GPU per trial" in line for line in said) == 2


def test_the_probe_runs_a_trials_own_settings_briefly_and_adds_the_data_it_left_off():
    # On the CPU (the orchestrator probes on CUDA): the same runs, without the allocator's figures.
    tiny = dict(dataset="fashion_mnist_mini", init_channels=4, layers=3, batch_size=16, device="cpu")
    search = probe_peak_memory(
        SearchConfig(**tiny, epochs=50, warmup_epochs=15, train_subset=400), steps=1, device="cpu"
    )
    image = 28 * 28 + 8
    assert search["data_left_off_bytes"] == (400 - 32) * image  # the probe held 2 x 16 of the trial's 400
    assert search["peak_bytes"] == search["data_left_off_bytes"] and search["peak_reserved_bytes"] is None
    assert search["images_per_s"] > 0
    training = probe_peak_memory(
        TrainConfig(**tiny, epochs=600, train_subset=100, auxiliary=False),
        load_genotype("PC_DARTS_cifar"),
        steps=1,
        device="cpu",
    )
    assert training["data_left_off_bytes"] == (100 - 16) * image and training["images_per_s"] > 0
