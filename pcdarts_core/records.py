"""What one search epoch produces, as a plain value that serialises to JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from .genotype import Genotype


@dataclass(frozen=True)
class EpochRecord:
    """One search epoch. ``epoch`` counts from 1.

    ``train_*`` are averaged over the epoch's weight steps; ``valid_*`` are measured after
    the epoch on the architecture half, unaugmented, in eval mode. ``images_per_s`` counts
    training images per second of the epoch's training phase. ``peak_memory_bytes`` is the
    peak CUDA memory allocated during the epoch on a GPU, and the process's peak resident
    size so far on the CPU. α are softmaxed per edge; β (``None`` without edge
    normalisation) are softmaxed per node.
    """

    epoch: int
    lr: float
    arch_frozen: bool
    train_loss: float
    train_acc: float
    valid_loss: float
    valid_acc: float
    epoch_time_s: float
    images_per_s: float
    peak_memory_bytes: int
    genotype: Genotype
    alphas_normal: list[list[float]]
    alphas_reduce: list[list[float]]
    betas_normal: Optional[list[float]]
    betas_reduce: Optional[list[float]]

    SCALARS = (
        "epoch",
        "lr",
        "arch_frozen",
        "train_loss",
        "train_acc",
        "valid_loss",
        "valid_acc",
        "epoch_time_s",
        "images_per_s",
        "peak_memory_bytes",
    )

    def scalars(self) -> dict[str, float | int | bool]:
        """The numeric fields, e.g. for a metrics table."""
        return {name: getattr(self, name) for name in self.SCALARS}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["genotype"] = self.genotype.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochRecord:
        return cls(**{**data, "genotype": Genotype.from_dict(data["genotype"])})
