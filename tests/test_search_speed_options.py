"""The search's speed options (bf16 autocast, channels-last, fused optimisers, compile) change kernels,
never the search: on the CPU each gives the same search up to the precision it trades, and the
loop reads nothing on the host inside an epoch."""

from __future__ import annotations

import functools
import sys

import pytest
import torch

from pcdarts_core import ConfigError, Search, SearchConfig
from pcdarts_core.probe import synthetic_bundle
from pcdarts_core.speed import SpeedOptions, load_optimizer_state, optimizer_kernels, speed_options

# Two epochs of two steps each, the architecture trained in both.
SMALL = dict(init_channels=4, layers=3, batch_size=16, epochs=2, warmup_epochs=0, device="cpu", seed=3)


@pytest.fixture(scope="module")
def rgb_data():
    return synthetic_bundle(train_images=64, image_size=8, seed=1)


def run(config: SearchConfig, data) -> Search:
    search = Search(config, data=data)
    list(search.epochs())
    return search


def softmaxed_alphas(search: Search) -> torch.Tensor:
    weights = search.model.arch_weights()
    return torch.cat([weights["alphas_normal"], weights["alphas_reduce"]])


def test_speed_options_are_on_by_default_on_a_gpu_only_for_the_search_too():
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    assert speed_options(SearchConfig(), gpu) == SpeedOptions(True, True)
    assert speed_options(SearchConfig(), cpu) == SpeedOptions(False, False)
    assert speed_options(SearchConfig(precision="fp32", channels_last=False), gpu) == (False, False)
    assert speed_options(SearchConfig(precision="bf16", channels_last=True), cpu) == (True, True)
    assert optimizer_kernels(gpu) == {"fused": True} and optimizer_kernels(cpu) == {}
    assert SpeedOptions(False, True).memory_format == torch.channels_last


def test_default_search_on_the_cpu_runs_float32_nchw(rgb_data):
    search = Search(SearchConfig(**SMALL), data=rgb_data)
    assert search.speed == (False, False)
    x = torch.randn(2, 3, 8, 8)
    assert search.logits(x).dtype == torch.float32
    conv = search.model.stem[0].weight
    assert conv.is_contiguous() and not conv.is_contiguous(memory_format=torch.channels_last)
    assert all(group.get("fused") in (None, False) for group in search.weight_optimizer.param_groups)


@pytest.mark.slow  # ~12 s: two short searches
def test_bf16_autocast_gives_the_same_search_within_bf16_precision(mini_data):
    config = SearchConfig(**{**SMALL, "dataset": "fashion_mnist_mini", "train_subset": 64})
    fp32 = run(config, mini_data)
    bf16 = run(config.replace(precision="bf16"), mini_data)
    assert bf16.speed.bf16
    # the forward passes really ran in bfloat16; parameters and their optimiser state stayed float32
    with torch.no_grad(), bf16.speed.autocast(bf16.device):
        assert bf16.model.stem(torch.zeros(1, 1, 28, 28)).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    for a, b in zip(fp32.history, bf16.history):
        assert b.train_loss == pytest.approx(a.train_loss, rel=0.02)
        assert b.valid_loss == pytest.approx(a.valid_loss, rel=0.02)
    # α moved the same way (Adam's normalised steps make tiny gradients' noise visible: compare directions)
    start = softmaxed_alphas(Search(config, data=mini_data)).flatten()
    moved_fp32, moved_bf16 = softmaxed_alphas(fp32).flatten() - start, softmaxed_alphas(bf16).flatten() - start
    assert torch.nn.functional.cosine_similarity(moved_bf16, moved_fp32, dim=0) > 0.95
    assert moved_bf16.norm().item() == pytest.approx(moved_fp32.norm().item(), rel=0.2)
    assert [len(bf16.genotype().normal), len(bf16.genotype().reduce)] == [
        len(fp32.genotype().normal),
        len(fp32.genotype().reduce),
    ]


def test_second_order_runs_in_float32_whatever_the_precision(rgb_data):
    """The unrolled α gradient's finite-difference passes move the weights by about 1e-5, below bf16's
    resolution; in bf16 its direction was off (cosine 0.4-0.9 against float32). So the second order
    runs in float32 under any precision: the same α gradient as a float32 search."""
    config = SearchConfig(**{**SMALL, "order": "second"})
    grads = {}
    for precision in ("fp32", "bf16"):
        search = Search(config.replace(precision=precision), data=rgb_data)
        torch.manual_seed(0)
        x, x_valid = torch.randn(8, 3, 8, 8), torch.randn(8, 3, 8, 8)
        y, y_valid = torch.randint(0, 10, (8,)), torch.randint(0, 10, (8,))
        found = search.architect._unrolled_grads(x, y, x_valid, y_valid, 1.0, search.weight_optimizer)
        grads[precision] = torch.cat([g.flatten() for g in found])
    assert search.speed.bf16 and grads["fp32"].norm() > 0
    torch.testing.assert_close(grads["bf16"], grads["fp32"], rtol=1e-5, atol=1e-7)


def test_channels_last_gives_the_same_search_up_to_float_rounding(rgb_data):
    config = SearchConfig(**SMALL)
    # the same supernet computes the same logits and α gradients in either layout ...
    nchw, cl = Search(config, data=rgb_data), Search(config.replace(channels_last=True), data=rgb_data)
    assert cl.model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    x, y = next(iter(nchw._batches("train", augment=True, shuffle=True, stream=0)))
    logits = [s.logits(x) for s in (nchw, cl)]
    torch.testing.assert_close(logits[1], logits[0], rtol=1e-5, atol=1e-5)
    grads = [
        torch.autograd.grad(torch.nn.functional.cross_entropy(out, y), s.model.arch_parameters())
        for s, out in zip((nchw, cl), logits)
    ]
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-7)
    # ... and whole searches (whose SGD steps at lr 0.1 amplify rounding differences) end alike
    nchw, cl = run(config, rgb_data), run(config.replace(channels_last=True), rgb_data)
    for a, b in zip(nchw.history, cl.history):
        assert b.train_loss == pytest.approx(a.train_loss, rel=2e-3)
        assert b.valid_loss == pytest.approx(a.valid_loss, rel=2e-3)
    start = softmaxed_alphas(Search(config, data=rgb_data)).flatten()
    moved = [softmaxed_alphas(s).flatten() - start for s in (nchw, cl)]
    assert torch.nn.functional.cosine_similarity(moved[0], moved[1], dim=0) > 0.99


def test_channels_last_on_grey_images_is_refused_on_the_cpu(mini_data):
    with pytest.raises(ConfigError, match="channels_last=True: on the CPU, one-channel images"):
        Search(SearchConfig(**{**SMALL, "dataset": "fashion_mnist_mini"}, channels_last=True), data=mini_data)


@pytest.mark.slow  # ~10 s: torch.compile of a supernet
def test_compiled_search_gives_the_same_numbers(rgb_data, monkeypatch):
    # The eager backend traces the supernet with TorchDynamo as a GPU run does, without a C++ build.
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    config = SearchConfig(**{**SMALL, "epochs": 1, "steps": 1, "multiplier": 1, "batch_size": 32})
    eager = run(config, rgb_data)
    compiled = run(config.replace(compile=True), rgb_data)
    assert compiled._forward is not compiled.model
    assert compiled.history[0].train_loss == pytest.approx(eager.history[0].train_loss, rel=1e-5)
    torch.testing.assert_close(softmaxed_alphas(compiled), softmaxed_alphas(eager))


HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


def test_an_epoch_reads_the_device_only_for_its_totals(rgb_data, monkeypatch):
    """No host synchronisation per step: pcdarts_core code reads tensors on the host only for the
    epoch's two totals, however many steps the epoch has (torch's own reads of the optimisers' CPU
    step counters are not synchronisations and are not counted)."""
    reads: list[str] = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            if "pcdarts_core" in sys._getframe(1).f_code.co_filename:
                reads.append(f"{_name} at {sys._getframe(1).f_code.co_filename}:{sys._getframe(1).f_lineno}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    per_epoch = []
    for batch in (32, 8):  # 1 and 4 steps per epoch
        search = Search(SearchConfig(**{**SMALL, "batch_size": batch}), data=rgb_data)
        reads.clear()
        train_loss, _, seen = search._train_epoch(arch_frozen=False, lr=0.1, on_step=None)
        per_epoch.append(list(reads))
    assert per_epoch[0] == per_epoch[1] and len(per_epoch[1]) == 2, per_epoch
    assert all("runner.py" in read for read in per_epoch[1])


def test_speed_options_and_compile_may_change_when_resuming(rgb_data, tmp_path):
    search = Search(SearchConfig(**SMALL), data=rgb_data)
    search.run_epoch()
    search.save(tmp_path / "ckpt.pt")
    resumed = Search.resume(tmp_path / "ckpt.pt", data=rgb_data, precision="bf16", channels_last=True, compile=False)
    assert resumed.speed == (True, True) and resumed.epoch == 1
    record = resumed.run_epoch()
    assert record.train_loss == pytest.approx(search.run_epoch().train_loss, rel=0.02)


def test_loading_an_optimizer_state_keeps_this_devices_kernels():
    weights = [torch.nn.Parameter(torch.randn(3))]
    saved = torch.optim.SGD(weights, lr=0.1, momentum=0.9, foreach=True)
    weights[0].grad = torch.ones(3)
    saved.step()
    here = torch.optim.SGD(weights, lr=0.1, momentum=0.9, foreach=False)
    load_optimizer_state(here, saved.state_dict())
    assert here.param_groups[0]["foreach"] is False
    torch.testing.assert_close(here.state[weights[0]]["momentum_buffer"], saved.state[weights[0]]["momentum_buffer"])
