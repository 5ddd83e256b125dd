"""The search loop: learning, the warm-up, records, exact resume, second order."""

from __future__ import annotations

import math

import pytest
import torch

from pcdarts_core import Genotype, Search, SearchConfig, run_search
from pcdarts_core.checkpoint import load_checkpoint


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
    monkeypatch.setattr(search, "_batches", lambda half, **kw: drawn.append((half, kw["augment"])) or original(half, **kw))
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
    assert len(a["train"]) == len(a["valid"]) == 200
    assert not set(a["train"].tolist()) & set(a["valid"].tolist())


def test_resume_continues_exactly(tiny_config, mini_data, tmp_path):
    config = tiny_config.replace(epochs=4)
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
    assert set(state) >= {"model", "weight_optimizer", "arch_optimizer", "scheduler", "epoch", "rng", "split", "config"}
    assert state["epoch"] == 1
    assert not list(tmp_path.glob("*.tmp"))


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


def test_first_and_second_order_gradients_agree_in_the_limit_of_zero_lr(tiny_config, mini_data):
    """With η = 0 the unrolled gradient is exactly the first-order one."""
    def grads(order):
        search = Search(tiny_config.replace(order=order, warmup_epochs=0, epochs=1), data=mini_data)
        search.model.eval()  # fixed BN statistics: both orders see the same function
        batches = iter(search._batches("train", augment=False, shuffle=False, stream=0))
        (x, y), (xv, yv) = next(batches), next(batches)
        if order == "first":
            loss = torch.nn.functional.cross_entropy(search.model(xv), yv)
            return torch.autograd.grad(loss, search.model.arch_parameters())
        return search.architect._unrolled_grads(x, y, xv, yv, 0.0, search.weight_optimizer)

    for a, b in zip(grads("first"), grads("second")):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
