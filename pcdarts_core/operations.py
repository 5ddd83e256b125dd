"""The candidate operations of the DARTS search space, as modules.

Their names, in the column order of α, are :data:`~pcdarts_core.search_space.PRIMITIVES`.
``build_op`` makes one operation for a given channel count and stride. ``affine`` is False
inside the supernet (the DARTS convention: the BN layers of the search have no learnable
scale/shift) and True in networks built from a genotype. The layers before the first cell
(:func:`conv_stem`, :func:`imagenet_stems`) and the cells' input preprocessing
(:func:`cell_preprocessing`) are shared by the supernet and the networks built from a genotype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .search_space import PRIMITIVES


class Zero(nn.Module):
    """The ``none`` operation: a zero output of the right (possibly strided) shape."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class ReLUConvBN(nn.Sequential):
    """ReLU, a bias-free convolution, BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise (optionally dilated) convolution, pointwise convolution, BatchNorm."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                c_in,
                c_in,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=c_in,
                bias=False,
            ),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable blocks; only the first one strides."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel_size, stride, padding, dilation=1, affine=affine),
            DilConv(c_in, c_out, kernel_size, 1, padding, dilation=1, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convolutions, concatenated."""

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # The second branch samples the odd rows and columns. Padding the shifted input back
        # to the original size changes nothing for even sizes and makes odd sizes line up.
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _pool(kind: str, stride: int) -> nn.Module:
    if kind == "max":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


_BUILDERS: dict[str, Callable[[int, int, bool], nn.Module]] = {
    "none": lambda c, stride, affine: Zero(stride),
    "max_pool_3x3": lambda c, stride, affine: _pool("max", stride),
    "avg_pool_3x3": lambda c, stride, affine: _pool("avg", stride),
    "skip_connect": lambda c, stride, affine: nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine=affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine=affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine=affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine=affine),
}


def build_op(name: str, channels: int, stride: int, affine: bool) -> nn.Module:
    """Make the operation ``name`` on ``channels`` channels with the given stride."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown operation {name!r}: use one of {', '.join(PRIMITIVES)}") from None
    return builder(channels, stride, affine)


def cell_preprocessing(
    c_prev_prev: int, c_prev: int, channels: int, reduction_prev: bool, affine: bool
) -> tuple[nn.Module, nn.Module]:
    """The layers that bring a cell's two inputs to ``channels`` channels: the older input is
    halved in size by a factorized reduce when the previous cell was a reduction cell."""
    if reduction_prev:
        first: nn.Module = FactorizedReduce(c_prev_prev, channels, affine=affine)
    else:
        first = ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine=affine)
    return first, ReLUConvBN(c_prev, channels, 1, 1, 0, affine=affine)


def conv_stem(in_channels: int, channels: int) -> nn.Sequential:
    """The CIFAR stem: a 3x3 convolution to ``channels`` and an affine BatchNorm, at the input's resolution."""
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))


def imagenet_stems(in_channels: int, channels: int) -> tuple[nn.Sequential, nn.Sequential]:
    """The ImageNet stems, three stride-2 3x3 convolutions in all (224x224 in, 28x28 out), as two modules:
    ``stem0`` (conv to ``channels // 2``, BN, ReLU, conv to ``channels``, BN; a quarter of the input's size)
    and ``stem1`` (ReLU, conv, BN; half of that). The first cell reads both: ``stem0``'s output through a
    factorized reduce, ``stem1``'s as it is. Every BatchNorm is affine."""
    if channels % 2:
        raise ValueError(f"imagenet_stems: the first convolution halves {channels} channels; use an even number")
    stem0 = nn.Sequential(
        nn.Conv2d(in_channels, channels // 2, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(channels // 2),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(channels),
    )
    stem1 = nn.Sequential(
        nn.ReLU(inplace=False),  # stem0's output is also the first cell's older input
        nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(channels),
    )
    return stem0, stem1
