"""The search loop: learning, the warm-up, records, exact resume, second order."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from pcdarts_core import Genotype, Search, SearchDiverged, UserInputError, run_search
from pcdarts_core.checkpoint import load_checkpoint
from pcdarts_core.search import search_step


@pytest.mark.slow  # ~65 s: a real three-epoch search
def test_three_epoch_search_beats_chance_and_yields_a_valid_genotype(tiny_config, mini_data):
    # Enough steps (16 per epoch) for a small supernet to learn something in 3 epochs.
    config = tiny_config.replace(init_channels=8, batch_size=32, train_subset=1000)
    records = []
    result = run_search(config, data=mini_data, on_epoch=lambda record, search: records.append(record))
    assert [r.epoch for r in records] == [1, 2, 3]
    assert [r.arch_frozen for r in records] == [True, False, False]
    # 10 classes: chance is 0.10 ± 0.013 on the 500 validation images.
    assert records[-1].valid_acc > 0.25
    assert records[-1].train_acc > 0.25
    assert records[-1].train_loss < records[0].train_loss
    assert isinstance(result.genotype, Genotype)
    assert result.genotype == records[-1].genotype
    assert Genotype.from_text(result.genotype.to_text()) == result.genotype
    # The learning rate follows the cosine schedule from 0.1 to 0.
    assert [r.lr for r in records] == pytest.approx([0.1 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)])


def test_records_hold_softmaxed_alphas_and_per_node_betas(tiny_config, mini_data):
    search = Search(tiny_config.replace(epochs=2), data=mini_data)
    record = next(search.epochs())
    assert len(record.alphas_normal) == 14 and all(len(row) == 8 for row in record.alphas_normal)
    assert all(sum(row) == pytest.approx(1.0) for row in record.alphas_reduce)
    for start, stop in [(0, 2), (2, 5), (5, 9), (9, 14)]:
        assert sum(record.betas_normal[start:stop]) == pytest.approx(1.0)
    assert record.images_per_s > 0 and record.epoch_time_s > 0 and record.peak_memory_bytes > 0
    assert set(record.to_dict()) >= {"train_loss", "valid_acc", "genotype", "alphas_normal", "betas_reduce"}


def test_architecture_is_frozen_during_warmup_and_no_valid_batch_is_drawn(tiny_config, mini_data, monkeypatch):
    search = Search(tiny_config, data=mini_data)
    before = [p.detach().clone() for p in search.model.arch_parameters()]
    drawn = []
    original = search._batches
    monkeypatch.setattr(
        search, "_batches", lambda half, **kw: drawn.append((half, kw["augment"])) or original(half, **kw)
    )
    next(search.epochs())  # epoch 1: warm-up
    assert all(torch.equal(a, b) for a, b in zip(before, search.model.arch_parameters()))
    assert drawn == [("train", True), ("valid", False)]  # only the unaugmented evaluation pass
    next(search.epochs())  # epoch 2: α/β train on augmented validation batches
    assert ("valid", True) in drawn
    assert not all(torch.equal(a, b) for a, b in zip(before, search.model.arch_parameters()))


def test_without_edge_norm_the_betas_never_move(tiny_config, mini_data):
    search = Search(tiny_config.replace(edge_norm=False, epochs=2), data=mini_data)
    betas = search.model.betas_normal.detach().clone()
    record = list(search.epochs())[-1]
    assert torch.equal(search.model.betas_normal, betas)
    assert record.betas_normal is None


def test_split_is_fixed_by_the_seed_and_halves_are_disjoint(tiny_config, mini_data):
    a = Search(tiny_config, data=mini_data).split
    b = Search(tiny_config, data=mini_data).split
    c = Search(tiny_config.replace(seed=1), data=mini_data).split
    assert torch.equal(a["train"], b["train"]) and not torch.equal(a["train"], c["train"])
    assert len(a["train"]) == len(a["valid"]) == 100
    assert not set(a["train"].tolist()) & set(a["valid"].tolist())


# "random" draws from the global RNG; "first" stays in the fast tier
@pytest.mark.parametrize("selection", ["first", pytest.param("random", marks=pytest.mark.slow)])
def test_resume_continues_exactly(tiny_config, mini_data, tmp_path, selection):
    config = tiny_config.replace(epochs=4, channel_selection=selection)
    straight = Search(config, data=mini_data)
    list(straight.epochs())

    first = Search(config, data=mini_data)
    next(first.epochs()), next(first.epochs())
    first.save(tmp_path / "checkpoint.pt")
    del first
    resumed = Search.resume(tmp_path / "checkpoint.pt", data=mini_data)
    assert resumed.epoch == 2 and len(resumed.history) == 2
    list(resumed.epochs())

    for a, b in zip(straight.model.arch_parameters(), resumed.model.arch_parameters()):
        assert torch.equal(a, b)
    for a, b in zip(straight.model.weight_parameters(), resumed.model.weight_parameters()):
        assert torch.equal(a, b)
    assert [r.valid_acc for r in straight.history] == [r.valid_acc for r in resumed.history]
    assert straight.genotype() == resumed.genotype()


def test_checkpoint_holds_the_complete_state_and_loads_weights_only(tiny_config, mini_data, tmp_path):
    search = Search(tiny_config.replace(epochs=2), data=mini_data)
    next(search.epochs())
    search.save(tmp_path / "ck.pt")
    state = load_checkpoint(tmp_path / "ck.pt")  # weights_only=True inside
    assert set(state) >= {
        "model",
        "weight_optimizer",
        "arch_optimizer",
        "epoch",
        "rng",
        "split",
        "config",
        "history",
        "data",
    }
    assert state["epoch"] == 1
    assert not list(tmp_path.glob("*.tmp"))
    # A torn file is refused with a message, never half-loaded.
    (tmp_path / "torn.pt").write_bytes((tmp_path / "ck.pt").read_bytes()[:1000])
    with pytest.raises(UserInputError, match="truncated or was not written by pcdarts_core"):
        Search.resume(tmp_path / "torn.pt", data=mini_data)


def test_second_order_step_updates_alphas_without_touching_weights(tiny_config, mini_data):
    search = Search(tiny_config.replace(order="second", warmup_epochs=0, epochs=1), data=mini_data)
    model = search.model
    weights = [p.detach().clone() for p in model.weight_parameters()]
    buffers = [b.detach().clone() for b in model.buffers()]
    alphas = model.alphas_normal.detach().clone()
    batches = iter(search._batches("train", augment=True, shuffle=True, stream=0))
    (x, y), (xv, yv) = next(batches), next(batches)
    model.train()
    search.architect.step(x, y, xv, yv, lr=0.1, weight_optimizer=search.weight_optimizer)
    assert not torch.equal(model.alphas_normal, alphas)
    assert torch.isfinite(model.alphas_normal).all()
    assert all(torch.equal(a, b) for a, b in zip(weights, model.weight_parameters()))
    # Only the real forward pass on the training batch updates the BN statistics, as in DARTS.
    assert len(buffers) == len(list(model.buffers()))


def test_second_order_gradient_matches_exact_autograd(tiny_config, mini_data):
    """The unrolled gradient against the exact one (double backward through the virtual step).

    In float64, on continuous random inputs and with a small finite-difference step, the only
    approximation left is the central difference, so the two agree closely. (On real images,
    tied maxima in max-pooling make the gradient jump along the difference direction; that is
    inherent in DARTS' finite-difference estimate, whose default step is 0.01.)"""
    search = Search(tiny_config.replace(order="second", warmup_epochs=0, epochs=1), data=mini_data)
    model = search.model.eval().to(torch.float64)  # eval: fixed BN statistics, one function for both
    generator = torch.Generator().manual_seed(3)
    x, xv = (torch.randn(8, 1, 28, 28, generator=generator, dtype=torch.float64) for _ in range(2))
    y, yv = (torch.randint(0, 10, (8,), generator=generator) for _ in range(2))
    # One real weight step first, so the virtual step has a momentum buffer to use.
    search_step(model, search.architect, search.weight_optimizer, x, y, None, 0.1, 5.0)
    lr, wd, momentum = 0.5, search.config.weight_decay, search.config.momentum
    approx = search.architect._unrolled_grads(x, y, xv, yv, lr, search.weight_optimizer, fd_scale=1e-5)

    names, weights = zip(*model.named_weight_parameters())
    buffers = [search.weight_optimizer.state[w]["momentum_buffer"] for w in weights]
    train_grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights, create_graph=True)
    unrolled = {n: w - lr * (g + wd * w + momentum * b) for n, w, g, b in zip(names, weights, train_grads, buffers)}
    arch = {n: getattr(model, n) for n in model.ARCH_NAMES}
    loss = F.cross_entropy(functional_call(model, {**unrolled, **arch, **dict(model.named_buffers())}, (xv,)), yv)
    exact = torch.autograd.grad(loss, model.arch_parameters())
    first_order = torch.autograd.grad(F.cross_entropy(model(xv), yv), model.arch_parameters())

    for a, e, f in zip(approx, exact, first_order):
        assert (e - f).norm() > 0.05 * f.norm()  # the second-order term matters here
        assert (a - e).norm() <= 1e-6 * e.norm()


@pytest.mark.slow
def test_extending_a_finished_search_keeps_training(tiny_config, mini_data, tmp_path):
    search = Search(tiny_config.replace(epochs=2), data=mini_data)
    list(search.epochs())
    search.save(tmp_path / "ck.pt")
    longer = Search.resume(tmp_path / "ck.pt", data=mini_data, epochs=4)
    records = list(longer.epochs())
    assert [r.epoch for r in records] == [3, 4]
    # The cosine schedule now runs to epoch 4: the rate restarts from its value at epoch 2 of 4.
    assert [r.lr for r in records] == pytest.approx([0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in (2, 3)])


def test_resume_refuses_changed_settings_and_other_data(tiny_config, mini_data, tmp_path):
    search = Search(tiny_config.replace(epochs=2), data=mini_data)
    next(search.epochs())
    search.save(tmp_path / "ck.pt")
    with pytest.raises(UserInputError, match=r"resume: k cannot change when resuming \(the checkpoint has k=4\)"):
        run_search(tiny_config.replace(epochs=2, k=2), data=mini_data, resume_from=tmp_path / "ck.pt")
    other = type(mini_data)(**{**mini_data.__dict__, "name": "other"})
    with pytest.raises(UserInputError, match="pass the same dataset the search started with"):
        Search.resume(tmp_path / "ck.pt", data=other)
    result = run_search(tiny_config.replace(epochs=2), data=mini_data, resume_from=tmp_path / "ck.pt")
    assert [r.epoch for r in result.history] == [1, 2]


def test_divergence_stops_the_search_without_counting_the_epoch(tiny_config, mini_data):
    search = Search(tiny_config, data=mini_data)
    search.model.classifier.register_forward_hook(lambda module, inputs, out: out * float("nan"))
    with pytest.raises(SearchDiverged, match="diverged in epoch 1: training loss is nan; try a lower lr"):
        next(search.epochs())
    assert search.epoch == 0 and search.history == []
    for action in (lambda: search.save("never-written.pt"), lambda: next(search.epochs())):
        with pytest.raises(RuntimeError, match="unusable: resume from its last checkpoint"):
            action()


def test_deterministic_mode_is_switched_on_and_off():
    from pcdarts_core.seeding import seed_everything

    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    finally:
        seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
