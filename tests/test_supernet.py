"""The supernet: partial-channel mixed ops, edge normalisation, genotype derivation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pcdarts_core import PRIMITIVES, ConfigError, SearchNetwork, channel_shuffle, edge_normalization, node_edge_slices
from pcdarts_core.supernet import PartialChannelMixedOp, derive_cell


def test_channel_shuffle_order_16_channels_4_groups():
    x = torch.arange(16.0).view(1, 16, 1, 1)
    order = channel_shuffle(x, 4).flatten().tolist()
    assert order == [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15]


def test_channel_shuffle_is_a_permutation_and_groups_1_is_identity():
    x = torch.randn(2, 8, 3, 3)
    assert torch.equal(channel_shuffle(x, 1), x)
    assert sorted(channel_shuffle(x, 4)[0, :, 0, 0].tolist()) == sorted(x[0, :, 0, 0].tolist())


@pytest.mark.parametrize("stride", [1, 2])
def test_k1_mixed_op_is_the_softmax_weighted_sum_of_all_ops(stride):
    torch.manual_seed(0)
    op = PartialChannelMixedOp(channels=8, stride=stride, k=1).eval()
    x = torch.randn(2, 8, 8, 8)
    weights = F.softmax(torch.randn(len(PRIMITIVES)), dim=-1)
    expected = sum(w * o(x) for w, o in zip(weights, op.ops))
    out = op(x, weights)
    assert out.shape == (2, 8, 8 // stride, 8 // stride)
    torch.testing.assert_close(out, expected)


def test_partial_channel_op_runs_ops_on_one_kth_of_channels_and_keeps_the_rest():
    torch.manual_seed(0)
    op = PartialChannelMixedOp(channels=16, stride=1, k=4).eval()
    # The ops are built for C/K channels.
    assert op.ops[PRIMITIVES.index("sep_conv_3x3")][0][1].in_channels == 4
    x = torch.randn(2, 16, 6, 6)
    weights = F.softmax(torch.randn(len(PRIMITIVES)), dim=-1)
    out = op(x, weights)
    assert out.shape == x.shape
    # Undo the shuffle: the first 4 channels are the mixed ones, the other 12 bypass unchanged.
    unshuffled = channel_shuffle(out, 4)  # shuffling 16 channels by 4 groups twice is the identity
    torch.testing.assert_close(unshuffled[:, 4:], x[:, 4:])
    torch.testing.assert_close(unshuffled[:, :4], sum(w * o(x[:, :4]) for w, o in zip(weights, op.ops)))


def test_reduction_edge_max_pools_the_bypassed_channels():
    torch.manual_seed(0)
    op = PartialChannelMixedOp(channels=8, stride=2, k=4).eval()
    x = torch.randn(1, 8, 8, 8)
    out = op(x, F.softmax(torch.zeros(len(PRIMITIVES)), dim=-1))
    assert out.shape == (1, 8, 4, 4)
    unshuffled = channel_shuffle(out, 2)  # inverse of shuffling 8 channels into 4 groups
    torch.testing.assert_close(unshuffled[:, 2:], F.max_pool2d(x[:, 2:], 2))


def test_random_channel_selection_draws_a_fresh_subset_each_pass():
    torch.manual_seed(0)
    op = PartialChannelMixedOp(channels=16, stride=1, k=4, selection="random").eval()
    x = torch.randn(1, 16, 5, 5)
    weights = torch.zeros(len(PRIMITIVES))
    weights[PRIMITIVES.index("avg_pool_3x3")] = 1.0
    changed = [
        tuple((op(x, weights) - x).abs().sum(dim=(0, 2, 3)).gt(1e-6).nonzero().flatten().tolist()) for _ in range(5)
    ]
    assert all(len(c) == 4 for c in changed)  # 1/K of the channels processed, the rest untouched in place
    assert len(set(changed)) > 1


def test_node_edge_slices_group_14_edges_for_4_nodes():
    slices = node_edge_slices(4)
    assert [(s.start, s.stop) for s in slices] == [(0, 2), (2, 5), (5, 9), (9, 14)]


def test_edge_normalization_sums_to_one_per_node_and_betas_get_gradients():
    torch.manual_seed(0)
    net = SearchNetwork(C=8, layers=3, k=2, num_classes=10)
    weights = edge_normalization(net.betas_normal, net.steps)
    for s in node_edge_slices(net.steps):
        assert weights[s].sum().item() == pytest.approx(1.0)
    F.cross_entropy(net(torch.randn(4, 3, 16, 16)), torch.randint(0, 10, (4,))).backward()
    for name in ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce"):
        grad = getattr(net, name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_arch_parameters_are_named_shaped_and_separate_from_weights():
    net = SearchNetwork()
    assert net.alphas_normal.shape == net.alphas_reduce.shape == (14, 8)
    assert net.betas_normal.shape == net.betas_reduce.shape == (14,)
    state = net.state_dict()
    for name in ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce"):
        assert name in state
    arch_ids = {id(p) for p in net.arch_parameters()}
    assert len(arch_ids) == 4
    assert not arch_ids & {id(p) for p in net.weight_parameters()}
    assert len(net.weight_parameters()) + 4 == len(list(net.parameters()))
    assert net.alphas_normal.abs().max() < 1e-2  # 1e-3 * N(0, 1)


def test_without_edge_norm_betas_take_part_in_nothing():
    torch.manual_seed(0)
    net = SearchNetwork(C=8, layers=3, k=2, edge_norm=False).eval()
    assert {id(p) for p in net.arch_parameters()} == {id(net.alphas_normal), id(net.alphas_reduce)}
    x = torch.randn(2, 3, 16, 16)
    before_out, before_geno = net(x), net.genotype()
    with torch.no_grad():
        net.betas_normal.copy_(torch.randn(14) * 10)
        net.betas_reduce.copy_(torch.randn(14) * 10)
    torch.testing.assert_close(net(x), before_out)
    assert net.genotype() == before_geno
    F.cross_entropy(net(x), torch.tensor([0, 1])).backward()
    assert net.betas_normal.grad is None


def test_k_must_divide_c():
    with pytest.raises(ConfigError, match=r"k=3: K must divide C=16; use one of 1, 2, 4, 8, 16"):
        SearchNetwork(C=16, k=3)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_forward_shapes_and_reduction_positions(k):
    net = SearchNetwork(C=8, layers=5, k=k, in_channels=1, num_classes=7)
    assert [c.reduction for c in net.cells] == [False, True, False, True, False]
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 7)


def test_none_is_never_chosen_even_when_it_dominates():
    alphas = torch.full((14, 8), -5.0)
    alphas[:, PRIMITIVES.index("none")] = 10.0
    alphas[:, PRIMITIVES.index("dil_conv_5x5")] = 0.0
    cell = derive_cell(F.softmax(alphas, dim=-1), None, steps=4)
    assert len(cell) == 8
    assert all(op == "dil_conv_5x5" for op, _ in cell)


def test_betas_rerank_edges_but_never_change_an_edges_op():
    torch.manual_seed(0)
    op_weights = F.softmax(torch.randn(14, 8) * 3, dim=-1)
    plain = derive_cell(op_weights, None, steps=4)
    ops_per_edge = {}
    for node, s in enumerate(node_edge_slices(4)):
        for source in range(s.stop - s.start):
            row = op_weights[s.start + source].clone()
            row[PRIMITIVES.index("none")] = -1
            ops_per_edge[(node, source)] = PRIMITIVES[int(row.argmax())]
    # Give node 3 a strong preference for the edge that α ranks last.
    node3 = node_edge_slices(4)[3]
    plain_sources = {src for _, src in plain[6:8]}
    loser = next(src for src in range(5) if src not in plain_sources)
    edge_weights = torch.full((14,), 0.2)
    edge_weights[node3.start + loser] = 0.99
    reranked = derive_cell(op_weights, edge_weights, steps=4)
    assert loser in {src for _, src in reranked[6:8]}
    assert reranked != plain
    for i, (op, src) in enumerate(reranked):
        assert op == ops_per_edge[(i // 2, src)]


def test_genotype_of_a_fresh_supernet_is_valid():
    geno = SearchNetwork(C=8, layers=3).genotype()
    assert len(geno.normal) == len(geno.reduce) == 8
    assert list(geno.normal_concat) == [2, 3, 4, 5]
    for i, (op, src) in enumerate(geno.normal + geno.reduce):
        assert op != "none" and 0 <= src < (i % 8) // 2 + 2
    # The two edges of a node come from different inputs.
    for cell in (geno.normal, geno.reduce):
        for node in range(4):
            assert cell[2 * node][1] != cell[2 * node + 1][1]


def test_one_copy_concat_shuffle_equals_cat_then_shuffle():
    from pcdarts_core.supernet import _concat_shuffled

    mixed, rest = torch.randn(2, 3, 4, 4), torch.randn(2, 9, 4, 4)
    assert torch.equal(_concat_shuffled(mixed, rest, 4), channel_shuffle(torch.cat([mixed, rest], dim=1), 4))
