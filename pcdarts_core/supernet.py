"""The PC-DARTS supernet: partial-channel mixed edges, edge normalisation, genotype derivation.

Layout of a cell's edges (shared by the forward pass and by genotype derivation
through :func:`node_edge_slices`): node ``i`` has ``i + 2`` incoming edges, one
from each earlier state (the two cell inputs, then nodes ``0..i-1``), and the
edges of all nodes are stored one node after the other. With 4 nodes that makes
2 + 3 + 4 + 5 = 14 edges, the rows of ``alphas_*`` and the entries of ``betas_*``.

The CIFAR and the ImageNet supernets are one :class:`SearchNetwork`: they differ only in the
stem (:mod:`pcdarts_core.operations`) and in the first cell reading the ImageNet stem's older,
twice as large output through a factorized reduce.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .genotype import Edge, Genotype
from .operations import build_op, cell_preprocessing, conv_stem, imagenet_stems
from .search_space import PRIMITIVES, check_supernet_shape

ChannelSelection = Literal["first", "random"]
NetworkName = Literal["cifar", "imagenet"]
_NONE = PRIMITIVES.index("none")


def node_edge_slices(steps: int) -> list[slice]:
    """For each intermediate node, the slice of the flat edge list holding its incoming edges."""
    slices, start = [], 0
    for node in range(steps):
        slices.append(slice(start, start + node + 2))
        start += node + 2
    return slices


def num_edges(steps: int) -> int:
    return node_edge_slices(steps)[-1].stop


def edge_normalization(betas: torch.Tensor, steps: int) -> torch.Tensor:
    """Softmax the edge-normalisation parameters β separately over each node's incoming edges."""
    return torch.cat([F.softmax(betas[s], dim=-1) for s in node_edge_slices(steps)])


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` equal channel groups: with 16 channels and 4 groups the
    output holds input channels 0, 4, 8, 12, 1, 5, 9, 13, ..."""
    n, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"channel_shuffle: {c} channels do not split into {groups} groups")
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _concat_shuffled(mixed: torch.Tensor, rest: torch.Tensor, k: int) -> torch.Tensor:
    """``channel_shuffle(torch.cat([mixed, rest], 1), k)`` in one copy instead of two: output
    channel ``j*k + g`` is channel ``j`` of group ``g`` (group 0 = ``mixed``, then ``rest`` in k-1 groups)."""
    n, part, h, w = mixed.shape
    groups = [mixed, *rest.reshape(n, k - 1, part, h, w).unbind(1)]
    return torch.stack(groups, dim=2).flatten(1, 2)  # a view unless stack kept a channels-last layout


class PartialChannelMixedOp(nn.Module):
    """One edge of the supernet: the α-weighted sum of all candidate operations,
    applied to 1/K of the channels.

    ``selection="first"`` is the authors' published behaviour: the first C/K
    channels go through the operations, the rest bypass them (max-pooled on a
    reduction edge), the two parts are concatenated and the channels shuffled so
    the next cell sees a different subset. ``selection="random"`` draws a fresh
    random subset on every forward pass, as the paper describes; the processed
    channels are written back in place, so no shuffle is needed. ``k == 1`` is
    the DARTS mixed op.
    """

    def __init__(self, channels: int, stride: int, k: int, selection: ChannelSelection = "first") -> None:
        super().__init__()
        self.k = k
        self.selection = selection
        part = channels // k
        ops = []
        for name in PRIMITIVES:
            op = build_op(name, part, stride, affine=False)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(part, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)
        # The bypassed channels must shrink with the processed ones on a reduction edge.
        self.bypass_pool = nn.MaxPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()

    def _mix(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # ``none`` contributes w * 0: skipping it changes neither the output nor any gradient.
        terms = (w * op(x) for i, (w, op) in enumerate(zip(weights, self.ops)) if i != _NONE)
        total = next(terms)
        for term in terms:
            total = total + term
        return total

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.k == 1:
            return self._mix(x, weights)
        part = x.shape[1] // self.k
        if self.selection == "random":
            order = torch.randperm(x.shape[1], device=x.device)
            mixed = self._mix(x[:, order[:part]], weights)
            rest = self.bypass_pool(x[:, order[part:]])
            return torch.cat([mixed, rest], dim=1)[:, torch.argsort(order)]
        mixed = self._mix(x[:, :part], weights)
        rest = self.bypass_pool(x[:, part:])
        return _concat_shuffled(mixed, rest, self.k)


class SearchCell(nn.Module):
    """A cell of the supernet: two preprocessed inputs, ``steps`` nodes, every earlier state
    connected to every node through a mixed edge."""

    def __init__(
        self,
        steps: int,
        multiplier: int,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
        k: int,
        selection: ChannelSelection,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.steps = steps
        self.multiplier = multiplier
        self.preprocess0, self.preprocess1 = cell_preprocessing(
            c_prev_prev, c_prev, channels, reduction_prev, affine=False
        )
        self.edges = nn.ModuleList(
            PartialChannelMixedOp(channels, 2 if reduction and source < 2 else 1, k, selection)
            for node in range(steps)
            for source in range(node + 2)
        )

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        op_weights: torch.Tensor,
        edge_weights: torch.Tensor | None,
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for edges in node_edge_slices(self.steps):
            total = 0
            for source, e in enumerate(range(edges.start, edges.stop)):
                out = self.edges[e](states[source], op_weights[e])
                total = total + (out if edge_weights is None else edge_weights[e] * out)
            states.append(total)
        return torch.cat(states[-self.multiplier :], dim=1)


class SearchNetwork(nn.Module):
    """The PC-DARTS supernet.

    ``network="cifar"``: a 3x3 conv stem to ``stem_multiplier * C`` channels at the input's
    resolution, as the authors' ``model_search.py``. ``network="imagenet"``: the stems of their
    ``model_search_imagenet.py``, three stride-2 3x3 convs to ``stem_multiplier * C`` channels
    (which must be even; 224x224 in, 28x28 into the first cell), whose first cell reads the
    older input, ``stem0``'s 56x56 output, through a factorized reduce. Cells, edges, α/β and
    the genotype are the same for both.

    Reduction cells sit at ``layers // 3`` and ``2 * layers // 3``. ``k`` must divide
    ``C``; ``k == 1`` is DARTS. With ``edge_norm=False`` the β parameters exist (so
    checkpoints have one shape) but take part in nothing: not the forward pass, not
    the genotype, not :meth:`arch_parameters`.
    """

    def __init__(
        self,
        C: int = 16,
        num_classes: int = 10,
        layers: int = 8,
        k: int = 4,
        edge_norm: bool = True,
        in_channels: int = 3,
        steps: int = 4,
        multiplier: int = 4,
        stem_multiplier: int = 3,
        channel_selection: ChannelSelection = "first",
        network: NetworkName = "cifar",
    ) -> None:
        super().__init__()
        check_supernet_shape(C=C, k=k, layers=layers, steps=steps, multiplier=multiplier)
        if channel_selection not in ("first", "random"):
            raise ConfigError(
                "channel_selection", channel_selection, "use 'first' (published code) or 'random' (paper)"
            )
        self.C, self.k, self.layers, self.steps, self.multiplier = C, k, layers, steps, multiplier
        self.edge_norm = edge_norm
        self.num_classes = num_classes
        self.network = network

        c_stem = stem_multiplier * C
        # True for the ImageNet stem: the first cell's older input is twice the size of its other one.
        reduction_prev = self._build_stems(in_channels, c_stem)
        c_prev_prev, c_prev, c_cell = c_stem, c_stem, C
        reduction_at = {layers // 3, 2 * layers // 3}
        cells = []
        for i in range(layers):
            reduction = i in reduction_at
            if reduction:
                c_cell *= 2
            cells.append(
                SearchCell(
                    steps, multiplier, c_prev_prev, c_prev, c_cell, reduction, reduction_prev, k, channel_selection
                )
            )
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, multiplier * c_cell
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

        edges, n_ops = num_edges(steps), len(PRIMITIVES)
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(edges, n_ops))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(edges, n_ops))
        self.betas_normal = nn.Parameter(1e-3 * torch.randn(edges))
        self.betas_reduce = nn.Parameter(1e-3 * torch.randn(edges))

    def _build_stems(self, in_channels: int, channels: int) -> bool:
        """Create the stem of ``self.network``; return whether it halves the first cell's older input."""
        if self.network == "cifar":
            self.stem = conv_stem(in_channels, channels)
            return False
        if self.network != "imagenet":
            raise ConfigError("network", self.network, "use 'cifar' (3x3 conv stem) or 'imagenet' (stride-2 stems)")
        if channels % 2:
            raise ConfigError(
                "init_channels",
                self.C,
                f"the ImageNet stem halves its stem_multiplier x C = {channels} channels; use an even init_channels",
            )
        self.stem0, self.stem1 = imagenet_stems(in_channels, channels)
        return True

    def _stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first cell's two inputs."""
        if self.network == "cifar":
            s = self.stem(x)
            return s, s
        s0 = self.stem0(x)
        return s0, self.stem1(s0)

    # --- parameters -------------------------------------------------------------
    ARCH_NAMES = ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce")

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture parameters that take part in the search."""
        params = [self.alphas_normal, self.alphas_reduce]
        if self.edge_norm:
            params += [self.betas_normal, self.betas_reduce]
        return params

    def named_weight_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Every parameter except α and β, with its name."""
        return [(name, p) for name, p in self.named_parameters() if name not in self.ARCH_NAMES]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except α and β."""
        return [p for _, p in self.named_weight_parameters()]

    def arch_weights(self) -> dict[str, torch.Tensor]:
        """Softmaxed α per edge and, with edge normalisation, β softmaxed per node (detached)."""
        with torch.no_grad():
            weights = {
                "alphas_normal": F.softmax(self.alphas_normal, dim=-1),
                "alphas_reduce": F.softmax(self.alphas_reduce, dim=-1),
            }
            if self.edge_norm:
                weights["betas_normal"] = edge_normalization(self.betas_normal, self.steps)
                weights["betas_reduce"] = edge_normalization(self.betas_reduce, self.steps)
        return weights

    # --- forward ----------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op_weights = {False: F.softmax(self.alphas_normal, dim=-1), True: F.softmax(self.alphas_reduce, dim=-1)}
        edge_weights: dict[bool, torch.Tensor | None] = {False: None, True: None}
        if self.edge_norm:
            edge_weights = {
                False: edge_normalization(self.betas_normal, self.steps),
                True: edge_normalization(self.betas_reduce, self.steps),
            }
        s0, s1 = self._stems(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, op_weights[cell.reduction], edge_weights[cell.reduction])
        return self.classifier(self.global_pooling(s1).flatten(1))

    # --- derivation ---------------------------------------------------------------
    def genotype(self) -> Genotype:
        weights = self.arch_weights()
        concat = list(range(2 + self.steps - self.multiplier, self.steps + 2))
        return Genotype(
            normal=derive_cell(weights["alphas_normal"], weights.get("betas_normal"), self.steps),
            normal_concat=concat,
            reduce=derive_cell(weights["alphas_reduce"], weights.get("betas_reduce"), self.steps),
            reduce_concat=concat,
        )


def derive_cell(op_weights: torch.Tensor, edge_weights: torch.Tensor | None, steps: int) -> list[Edge]:
    """Discretise one cell: per node, keep the two incoming edges whose strongest
    non-``none`` operation weight (times the edge's β weight, if any) is largest,
    each with that operation. Ties go to the earlier edge/operation."""
    scores = op_weights.detach().float().cpu()
    if edge_weights is not None:
        scores = scores * edge_weights.detach().float().cpu()[:, None]
    rows = scores.tolist()
    cell: list[Edge] = []
    for edges in node_edge_slices(steps):
        candidates = []
        for source, row in enumerate(rows[edges]):
            best_op = max((i for i in range(len(row)) if i != _NONE), key=lambda i: (row[i], -i))
            candidates.append((row[best_op], source, best_op))
        candidates.sort(key=lambda c: (-c[0], c[1]))
        cell.extend((PRIMITIVES[op], source) for _, source, op in candidates[:2])
    return cell
