"""Networks built from a genotype: the CIFAR and ImageNet evaluation networks of DARTS/PC-DARTS.

A network stacks ``layers`` cells; the cells at ``layers // 3`` and ``2 * layers // 3``
are reduction cells (stride 2 on their input edges, twice the channels), and a cell
that follows a reduction reads its older input through a factorized reduce. Every
BatchNorm is affine. The optional auxiliary head sits after cell ``2 * layers // 3``
and is used in training only. Drop path (:func:`torchvision.ops.stochastic_depth`,
one Bernoulli draw per sample) is applied to every operation except the identity,
with the probability held in ``network.drop_path_prob`` (the training loop ramps it
over the epochs).

``forward`` returns ``(logits, aux_logits)``; ``aux_logits`` is ``None`` in eval mode
or without the auxiliary head.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import stochastic_depth

from .errors import ConfigError
from .genotype import Genotype
from .operations import build_op, cell_preprocessing, conv_stem, imagenet_stems


class Cell(nn.Module):
    """One cell of a genotype: two preprocessed inputs, each node the sum of its two edges."""

    def __init__(
        self,
        genotype: Genotype,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = cell_preprocessing(
            c_prev_prev, c_prev, channels, reduction_prev, affine=True
        )
        cell = "reduce" if reduction else "normal"
        ops, inputs = [], []
        for pair in genotype.nodes(cell):
            for name, source in pair:
                stride = 2 if reduction and source < 2 else 1
                ops.append(build_op(name, channels, stride, affine=True))
                inputs.append(source)
        self.ops = nn.ModuleList(ops)
        self.inputs = tuple(inputs)
        self.concat = tuple(getattr(genotype, f"{cell}_concat"))
        # Drop path skips the identity: dropping a skip connection would remove the signal itself.
        self.droppable = tuple(not isinstance(op, nn.Identity) for op in ops)
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        drop = self.training and drop_prob > 0
        for node in range(len(self.ops) // 2):
            total = None
            for e in (2 * node, 2 * node + 1):
                h = self.ops[e](states[self.inputs[e]])
                if drop and self.droppable[e]:
                    h = stochastic_depth(h, drop_prob, mode="row", training=True)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """The auxiliary classifier of DARTS: ReLU, 5x5 average pool, 1x1 conv to 128, 2x2 conv to 768, linear.

    ``pool_stride`` is 3 for CIFAR (8x8 features in, 2x2 out) and 2 for ImageNet (7x7 in).
    When the features are too small for the fixed pool to leave 2x2 (e.g. 7x7 features of
    28x28 images in the CIFAR network), they are average-pooled adaptively to 2x2 instead.
    The ImageNet head has no BatchNorm after the 2x2 convolution, as in the published code.
    """

    def __init__(self, channels: int, num_classes: int, pool_stride: int, bn_after_conv2: bool) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False)
        self.pool_stride = pool_stride
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768) if bn_after_conv2 else nn.Identity(),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        size = min(x.shape[-2:])
        x = self.pool(x) if (size - 5) // self.pool_stride + 1 >= 2 else F.adaptive_avg_pool2d(x, 2)
        x = self.features(x)
        # A feature map larger than 1x1 after the 2x2 convolution (images larger than the protocol's) is averaged.
        return self.classifier(x.mean(dim=(2, 3)))


class _Network(nn.Module):
    """Stem, cells, auxiliary head and classifier; the CIFAR and ImageNet networks differ only in
    their stem (:meth:`_build_stems`, :meth:`_stems`) and the auxiliary head's pooling."""

    #: Whether the stem halves the resolution of the first cell's older input (a factorized reduce follows).
    STEM_REDUCES: ClassVar[bool]
    AUX_POOL_STRIDE: ClassVar[int]
    AUX_BN: ClassVar[bool]

    def __init__(
        self,
        C: int,
        num_classes: int,
        layers: int,
        auxiliary: bool,
        genotype: Genotype,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        _check_shape(C, num_classes, layers)
        if not isinstance(genotype, Genotype):
            raise TypeError(
                f"genotype must be a Genotype, got {type(genotype).__name__}: use load_genotype() or parse_genotype()"
            )
        self.genotype = genotype
        self.layers = layers
        self.drop_path_prob = 0.0
        self._aux_after = 2 * layers // 3
        c_stem = self._build_stems(in_channels, C)
        reduction_at = {layers // 3, 2 * layers // 3}
        c_prev_prev, c_prev, c_cell = c_stem, c_stem, C
        reduction_prev = self.STEM_REDUCES
        cells = []
        c_aux = c_prev
        for i in range(layers):
            reduction = i in reduction_at
            if reduction:
                c_cell *= 2
            cell = Cell(genotype, c_prev_prev, c_prev, c_cell, reduction, reduction_prev)
            cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c_cell
            if i == self._aux_after:
                c_aux = c_prev
        self.cells = nn.ModuleList(cells)
        self.auxiliary_head = (
            AuxiliaryHead(c_aux, num_classes, self.AUX_POOL_STRIDE, self.AUX_BN) if auxiliary else None
        )
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def _build_stems(self, in_channels: int, C: int) -> int:
        """Create the stem layers; return the channels they hand to the first cell."""
        raise NotImplementedError

    def _stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first cell's two inputs."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s0, s1 = self._stems(x)
        aux_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self._aux_after and self.auxiliary_head is not None and self.training:
                aux_logits = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits, aux_logits


class NetworkCIFAR(_Network):
    """``NetworkCIFAR(C, num_classes, layers, auxiliary, genotype, in_channels=3)``: a 3x3 conv stem to
    ``3 * C`` channels, then the cells (C=36, 20 layers in the papers)."""

    STEM_REDUCES = False
    AUX_POOL_STRIDE = 3  # 8x8 features of 32x32 images -> 2x2
    AUX_BN = True

    def _build_stems(self, in_channels: int, C: int) -> int:
        self.stem = conv_stem(in_channels, 3 * C)
        return 3 * C

    def _stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.stem(x)
        return s, s


class NetworkImageNet(_Network):
    """``NetworkImageNet(C, num_classes, layers, auxiliary, genotype, in_channels=3)``: three stride-2
    3x3 convs (224x224 in, 28x28 into the first cell), then the cells (C=48, 14 layers in the papers)."""

    STEM_REDUCES = True
    AUX_POOL_STRIDE = 2  # 7x7 features of 224x224 images -> 2x2
    AUX_BN = False  # as in the published code

    def _build_stems(self, in_channels: int, C: int) -> int:
        if C % 2:
            raise ConfigError("init_channels", C, "the ImageNet stem halves C in its first convolution; use an even C")
        self.stem0, self.stem1 = imagenet_stems(in_channels, C)
        return C

    def _stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


def _check_shape(C: int, num_classes: int, layers: int) -> None:
    for field, value in (("init_channels", C), ("num_classes", num_classes), ("layers", layers)):
        if value < 1:
            raise ConfigError(field, value, "must be a positive integer")
