"""Saved-activation memory per image (pcdarts_core.activation_memory, Search.activation_bytes_per_image):
what PC-DARTS's partial channels save, measured without disturbing the search."""

from __future__ import annotations

import pytest
import torch

from pcdarts_core import Search


def _state(search: Search) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in search.model.state_dict().items()}


def test_measuring_leaves_the_search_exactly_where_it_was(tiny_config, mini_data):
    config = tiny_config.replace(epochs=2, channel_selection="random")  # random selection draws numbers
    measured = Search(config, data=mini_data)
    before = _state(measured)
    saved = measured.activation_bytes_per_image()
    assert saved > 0 and measured.activation_bytes_per_image() == saved  # no state: measured again, the same
    assert all(torch.equal(before[name], t) for name, t in measured.model.state_dict().items())
    a = next(measured.epochs())
    # the epoch is the one it would have been: same losses and α as the same search never measured
    b = next(Search(config, data=mini_data).epochs())
    assert (a.train_loss, a.valid_loss, a.alphas_normal) == (b.train_loss, b.valid_loss, b.alphas_normal)


@pytest.mark.slow  # ~15 s for both: four supernets and a doubled batch
@pytest.mark.parametrize("edge_norm", [True, False])
def test_four_partial_channels_save_about_a_third_of_the_activations(tiny_config, mini_data, edge_norm):
    config = tiny_config.replace(edge_norm=edge_norm)
    per_image = {k: Search(config.replace(k=k), data=mini_data).activation_bytes_per_image() for k in (1, 4)}
    # only a quarter of each edge's channels go through the operations; the rest (stems, cells' inputs,
    # the skipped channels' shuffle) stays, so the ratio is a little above 1/4 (bench: 0.31 on CIFAR sizes)
    assert 0.25 < per_image[4] / per_image[1] < 0.4, per_image
    # per image: a batch twice as large saves twice the bytes, within the few per-batch tensors
    doubled = Search(config.replace(k=4, batch_size=2 * config.batch_size), data=mini_data)
    assert doubled.activation_bytes_per_image() == pytest.approx(per_image[4], rel=0.02)
