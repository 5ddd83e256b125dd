"""``resources.gpus_per_trial: auto``: the rule from measured bytes to a GPU share, and how the
orchestrator asks for it (no GPU and no Ray cluster needed)."""

from __future__ import annotations

import pickle

import pytest

from orchestrator.errors import SpecError
from orchestrator.gpu_packing import AutoGpuShares, ProbeUnavailable, probe_key
from orchestrator.spec import parse_spec
from orchestrator.study import check_resources
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
    ("value", "words"), [("half", "neither a number nor 'auto'"), (-1, "must be >= 0"), (1.5, "fraction of one GPU or whole GPUs")]
)
def test_spec_refuses_other_gpu_values_naming_the_key(value, words):
    with pytest.raises(SpecError, match=rf"resources\.gpus_per_trial.*{words}"):
        parse_spec({**SPEC, "resources": {"gpus_per_trial": value}})


def trial(seed: int, k: int) -> dict:
    return {"key": f"search-{seed}{k}", "stage": "search", "setting": f"k={k}", "seed": seed,
            "config": {"k": k, "seed": seed, "batch_size": 256}, "gpus": "auto"}


def test_auto_probes_each_setting_once_and_reports_the_share_it_gave():
    probed, said = [], []

    def probe(t):
        probed.append(t["config"]["k"])
        return {"peak_bytes": (40 if t["config"]["k"] == 1 else 6) * GiB, "total_bytes": 141 * GiB, "device_name": "H200"}

    measured: dict = {}
    shares = AutoGpuShares(cpus=2, margin=0.25, probe=probe, say=said.append, measured=measured)
    got = {(s, k): shares.share(trial(s, k), gpus_in_cluster=1) for s in (0, 1) for k in (1, 4)}
    assert probed == [1, 4]  # seeds do not change the memory: one probe per K
    assert got[0, 1] == got[1, 1] == 0.5  # 40 GiB + 25% + 0.5 GiB = 50.5 GiB: two fit in 141 GiB
    assert got[0, 4] == got[1, 4] == gpu_share(6 * GiB, 141 * GiB, 0.25)
    assert len(said) == 2 and "k=4" in said[1] and "GPU per trial" in said[1]
    assert probe_key(trial(0, 4)) == probe_key(trial(1, 4)) != probe_key(trial(0, 1))


def test_tunes_unpickled_copies_share_one_measurement_per_setting(monkeypatch):
    import orchestrator.gpu_packing as gpu_packing

    monkeypatch.setattr(gpu_packing, "_MEASURED", {})
    probed, said = [], []
    original = AutoGpuShares(cpus=1, margin=0.25)  # as Tune gets it: default probe, pickled with the trainable
    copies = [pickle.loads(pickle.dumps(original)) for _ in range(3)]
    for copy in copies:
        copy.probe = lambda t: probed.append(t["seed"]) or {"peak_bytes": 6 * GiB, "total_bytes": 141 * GiB}
        copy.say = said.append
    shares = {copy.share(trial(seed, 4), gpus_in_cluster=1) for seed, copy in enumerate(copies)}
    assert probed == [0] and len(said) == 1 and shares == {gpu_share(6 * GiB, 141 * GiB, 0.25)}


def test_auto_without_gpus_asks_for_none_and_a_failed_probe_for_a_whole_gpu(monkeypatch):
    said = []

    def no_probe(t):
        raise ProbeUnavailable("the driver has no CUDA device to probe on")

    shares = AutoGpuShares(cpus=1, margin=0.25, probe=no_probe, say=said.append, measured={})
    assert shares.share(trial(0, 4), gpus_in_cluster=0) == 0.0 and not said
    assert shares.share(trial(0, 4), gpus_in_cluster=2) == 1.0
    assert shares.share(trial(1, 4), gpus_in_cluster=2) == 1.0
    assert len(said) == 1 and "no CUDA device" in said[0] and "whole GPU" in said[0]

    import orchestrator.gpu_packing as gpu_packing

    monkeypatch.setattr(gpu_packing, "cluster_gpus", lambda: 0.0)
    config = {"trial": trial(0, 4), "threads": 1}
    group = shares(config)
    assert group.bundles == [{"CPU": 1}] and config["trial"]["gpus"] == 0.0


def test_check_resources_notes_auto_without_gpus_and_still_refuses_too_many_cpus(capsys):
    spec = parse_spec({**SPEC, "resources": {"gpus_per_trial": "auto"}})
    check_resources(spec, {"CPU": 2.0})
    assert "no GPU, so every trial runs on its CPUs" in capsys.readouterr().out
    check_resources(spec, {"CPU": 2.0, "GPU": 1.0})
    assert capsys.readouterr().out == ""
    with pytest.raises(SpecError, match="cpus_per_trial"):
        check_resources(parse_spec({**SPEC, "resources": {"gpus_per_trial": "auto", "cpus_per_trial": 4}}), {"CPU": 2.0})


def test_the_probe_runs_a_trials_own_settings_briefly_and_adds_the_data_it_left_off():
    # On the CPU (the orchestrator probes on CUDA): the same runs, without the allocator's figures.
    tiny = dict(dataset="fashion_mnist_mini", init_channels=4, layers=3, batch_size=16, device="cpu")
    search = probe_peak_memory(SearchConfig(**tiny, epochs=50, warmup_epochs=15, train_subset=400), steps=1, device="cpu")
    image = 28 * 28 + 8
    assert search["data_left_off_bytes"] == (400 - 32) * image  # the probe held 2 x 16 of the trial's 400
    assert search["peak_bytes"] == search["data_left_off_bytes"] and search["peak_reserved_bytes"] is None
    assert search["images_per_s"] > 0
    training = probe_peak_memory(TrainConfig(**tiny, epochs=600, train_subset=100, auxiliary=False),
                                 load_genotype("PC_DARTS_cifar"), steps=1, device="cpu")
    assert training["data_left_off_bytes"] == (100 - 16) * image and training["images_per_s"] > 0
