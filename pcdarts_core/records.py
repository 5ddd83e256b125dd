"""What one epoch of a search or a retraining produces, as plain values that serialise to JSON and CSV."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    betas_normal: list[float] | None
    betas_reduce: list[float] | None

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


@dataclass(frozen=True)
class TrainRecord:
    """One retraining epoch. ``epoch`` counts from 1.

    ``lr`` and ``drop_path_prob`` are the values the epoch trained with. ``train_loss`` is the
    objective averaged over the epoch's steps (augmented images; the main head's cross entropy,
    label-smoothed if configured, plus the weighted auxiliary loss), ``train_acc`` the main head's
    accuracy on those batches; ``test_*`` are measured after the epoch on the test set, unaugmented, in eval
    mode; ``valid_*`` likewise on the held-out validation split, ``None`` without one.
    ``images_per_s`` and ``peak_memory_bytes`` are as in :class:`EpochRecord`.
    """

    epoch: int
    lr: float
    drop_path_prob: float
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    valid_loss: float | None
    valid_acc: float | None
    epoch_time_s: float
    images_per_s: float
    peak_memory_bytes: int

    SCALARS = (
        "epoch",
        "lr",
        "drop_path_prob",
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "valid_loss",
        "valid_acc",
        "epoch_time_s",
        "images_per_s",
        "peak_memory_bytes",
    )

    def scalars(self) -> dict[str, float | int | None]:
        return {name: getattr(self, name) for name in self.SCALARS}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainRecord:
        return cls(**data)


def records_csv(
    records: Sequence[EpochRecord | TrainRecord], record_type: type[EpochRecord] | type[TrainRecord]
) -> str:
    """One CSV row per record: the scalar fields (and, for search records, the genotype's text form)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    with_genotype = record_type is EpochRecord
    writer.writerow([*record_type.SCALARS, *(["genotype"] if with_genotype else [])])
    for record in records:
        row = ["" if v is None else v for v in record.scalars().values()]
        if with_genotype:
            row.append(record.genotype.to_text())  # type: ignore[union-attr]
        writer.writerow(row)
    return buffer.getvalue()
