"""Retraining a genotype from scratch: the evaluation protocol of DARTS and PC-DARTS.

``Training`` owns the complete state of one retraining (network, optimiser, the data
split, the epoch counter, the RNG states) and saves it to and restores it from one
checkpoint file, so a resumed retraining continues where it stopped: exactly (bit for bit)
on the CPU, and on a GPU with ``deterministic=True``.
``Training.epochs()`` runs the remaining epochs and yields a :class:`TrainRecord`
after each; ``run_training`` is the one-call form with the same callback hook as
``run_search``. ``python -m pcdarts_core.train`` runs one retraining from the command line
(:mod:`pcdarts_core.cli.train`, run by this package's ``__main__``).

Model selection is honest: the reported accuracy is the *final* epoch's test
accuracy. The test set is evaluated every epoch for the record, but nothing here
picks an epoch by it; ``valid_portion`` holds out part of the training set for a
validation accuracy that may be used for decisions instead.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..cost import NetworkCost, network_cost
from ..data import Batches, DatasetBundle
from ..devices import peak_memory_bytes, reset_peak_memory
from ..distributed import Ranks
from ..errors import DataError, Diverged, UserInputError
from ..genotype import Genotype
from ..network import NetworkCIFAR, NetworkImageNet
from ..records import TrainRecord
from ..runner import EpochRunner, StepCallback, Totals, split_training_set
from ..schedules import learning_rate, linear_ramp
from ..speed import check_memory_format, load_optimizer_state, optimizer_kernels, speed_options

__all__ = [
    "Training",
    "TrainingDiverged",
    "TrainResult",
    "build_network",
    "run_training",
    "speed_options",
    "train_step",
]


class TrainingDiverged(Diverged):
    """The retraining's loss became NaN or infinite."""

    def __init__(self, epoch: int, loss: float, what: str = "training loss") -> None:
        super().__init__("training", epoch, loss, what)


EpochCallback = Callable[[TrainRecord, "Training"], None]


def build_network(
    config: TrainConfig, genotype: Genotype, num_classes: int, in_channels: int
) -> NetworkCIFAR | NetworkImageNet:
    """The evaluation network ``config.network`` for a genotype."""
    cls = NetworkImageNet if config.network == "imagenet" else NetworkCIFAR
    return cls(config.init_channels, num_classes, config.layers, config.auxiliary, genotype, in_channels=in_channels)


def train_step(
    model: NetworkCIFAR | NetworkImageNet,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    auxiliary_weight: float,
    label_smoothing: float,
    grad_clip: float,
    autocast: contextlib.AbstractContextManager,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on the training objective (cross entropy of the main head, plus the
    auxiliary head's weighted by ``auxiliary_weight`` when the model has one).
    Returns the objective and the main head's logits, detached."""
    optimizer.zero_grad(set_to_none=True)
    with autocast:
        logits, aux_logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
        if aux_logits is not None and auxiliary_weight > 0:
            loss = loss + auxiliary_weight * F.cross_entropy(aux_logits.float(), y, label_smoothing=label_smoothing)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], grad_clip)
    optimizer.step()
    return loss.detach(), logits.detach()


class Training(EpochRunner[TrainConfig, TrainRecord]):
    """One retraining of ``genotype``. Construct, then iterate :meth:`epochs`; see :meth:`resume`."""

    KIND = "training"
    CONFIG = TrainConfig
    RECORD = TrainRecord
    DIVERGED = TrainingDiverged

    def __init__(self, config: TrainConfig, genotype: Genotype, data: DatasetBundle | None = None) -> None:
        if not isinstance(genotype, Genotype):
            raise TypeError(f"genotype must be a Genotype, got {type(genotype).__name__}: use load_genotype()")
        super().__init__(config, data)
        data = self.data
        if data.test is None:
            raise DataError(
                f"{data.name}: has no test split, which retraining reports: for imagefolder give a root with "
                "train/ and val/ (or test/) class folders"
            )
        self._genotype = genotype
        self.speed = speed_options(config, self.device)
        self.bf16, self.channels_last = self.speed
        check_memory_format(self.speed, self.device, data.in_channels)
        self._memory_format = self.speed.memory_format
        model = build_network(config, genotype, data.num_classes, data.in_channels)
        self.cost: NetworkCost = network_cost(model, (data.in_channels, data.image_size, data.image_size))
        self.model = model.to(self.device, memory_format=self._memory_format)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            **optimizer_kernels(self.device),
        )
        train_idx, valid_idx = split_training_set(
            len(data.train), 1 - config.valid_portion, config.seed, config.train_subset
        )
        if len(train_idx) == 0 or (config.valid_portion > 0 and len(valid_idx) == 0):
            raise UserInputError(
                f"valid_portion={config.valid_portion}: leaves an empty train or validation split of the "
                f"{len(data.train)} training images (train_subset={config.train_subset}); use more images or another "
                "portion"
            )
        self._place_training_split({"train": train_idx, **({"valid": valid_idx} if config.valid_portion > 0 else {})})
        self._place("test", data.test)

    # --- running --------------------------------------------------------------------
    def genotype(self) -> Genotype:
        """The genotype being retrained (a method, as :meth:`Search.genotype`)."""
        return self._genotype

    def _autocast(self) -> contextlib.AbstractContextManager:
        return self.speed.autocast(self.device)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.model(x.contiguous(memory_format=self._memory_format))[0]

    def lr_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based)."""
        cfg = self.config
        return learning_rate(
            epoch,
            lr=cfg.lr,
            lr_min=cfg.lr_min,
            epochs=cfg.epochs,
            schedule=cfg.lr_schedule,
            warmup_epochs=cfg.warmup_epochs,
        )

    def drop_path_at(self, epoch: int) -> float:
        """The drop-path probability of epoch ``epoch`` (0-based): 0 first, ramped linearly toward the
        configured value."""
        return linear_ramp(epoch, self.config.epochs, self.config.drop_path_prob)

    def evaluate_test(self) -> tuple[float, float]:
        """Loss and accuracy of the network as it is now on the test set: the evaluation every epoch ends
        with (eval mode, unaugmented, the same batches in the same order). Leaves the model in eval mode."""
        self.model.eval()
        return self._evaluate("test", self._logits, stream=2)

    def run_epoch(self, on_step: StepCallback | None = None) -> TrainRecord:
        """Train one epoch, then evaluate on the test set (and the validation split, if any)."""
        self._check_not_diverged()
        lr, drop = self.lr_at(self.epoch), self.drop_path_at(self.epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.drop_path_prob = drop
        reset_peak_memory(self.device)
        start = time.perf_counter()
        train_loss, train_acc, seen = self._train_epoch(on_step)
        train_time = time.perf_counter() - start
        test_loss, test_acc = self.evaluate_test()
        valid_loss: float | None = None
        valid_acc: float | None = None
        if "valid" in self._parts:
            valid_loss, valid_acc = self._evaluate("valid", self._logits, stream=3)
        # The weights are no longer those of the last good epoch: this object may not save or go on.
        self._fail_if_diverged(training_loss=train_loss, test_loss=test_loss, validation_loss=valid_loss)
        self.epoch += 1
        record = TrainRecord(
            epoch=self.epoch,
            lr=lr,
            drop_path_prob=drop,
            train_loss=train_loss,
            train_acc=train_acc,
            test_loss=test_loss,
            test_acc=test_acc,
            valid_loss=valid_loss,
            valid_acc=valid_acc,
            epoch_time_s=time.perf_counter() - start,
            images_per_s=seen / train_time if train_time > 0 else float("nan"),
            peak_memory_bytes=peak_memory_bytes(self.device),
        )
        self.history.append(record)
        return record

    def _train_epoch(self, on_step: StepCallback | None) -> tuple[float, float, int]:
        cfg = self.config
        self.model.train()
        batches = self._train_batches()
        totals = Totals(self.device)
        for step, (x, y) in enumerate(batches, start=1):
            loss, logits = train_step(
                self.model,
                self.optimizer,
                x.contiguous(memory_format=self._memory_format),
                y,
                auxiliary_weight=cfg.auxiliary_weight,
                label_smoothing=cfg.label_smoothing,
                grad_clip=cfg.grad_clip,
                autocast=self._autocast(),
            )
            totals.add(loss, logits, y)
            if on_step is not None:
                on_step(step, len(batches))
        return (*totals.means(), totals.seen)

    def _train_batches(self) -> Batches:
        """One shuffled, augmented pass over the training split. A last batch of a single image is
        dropped: batch norm cannot normalise the 1x1 maps of the auxiliary head (or of the last
        cells on small images) over one sample."""
        single_last = len(self.split["train"]) % self.config.batch_size == 1
        return self._batches("train", augment=True, shuffle=True, stream=0, drop_last=single_last)

    @property
    def steps_per_epoch(self) -> int:
        return len(self._train_batches())

    def result(self) -> TrainResult:
        """What the retraining reports so far: the last epoch's accuracies, the cost, the history."""
        return TrainResult(genotype=self._genotype, config=self.config, cost=self.cost, history=list(self.history))

    # --- state ----------------------------------------------------------------------
    def _model_state(self) -> dict[str, Any]:
        return {
            "genotype": self._genotype.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def _load_model_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        load_optimizer_state(self.optimizer, state["optimizer"])

    @classmethod
    def _from_checkpoint(
        cls, config: TrainConfig, state: dict[str, Any], data: DatasetBundle | None, ranks: Ranks
    ) -> Training:
        if ranks.several:
            raise UserInputError("a retraining runs on one process; resume it without torchrun")
        return cls(config, Genotype.from_dict(state["genotype"]), data=data)


@dataclass(frozen=True)
class TrainResult:
    """A retraining's outcome. ``test_acc`` is the final epoch's test accuracy: the figure to report."""

    genotype: Genotype
    config: TrainConfig
    cost: NetworkCost
    history: list[TrainRecord]

    @property
    def final(self) -> TrainRecord:
        if not self.history:
            raise ValueError("the retraining has not finished an epoch yet")
        return self.history[-1]

    @property
    def test_acc(self) -> float:
        return self.final.test_acc

    @property
    def valid_acc(self) -> float | None:
        return self.final.valid_acc

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: final-epoch metrics, cost, time and the settings."""
        final = self.final
        return {
            "genotype": self.genotype.to_dict(),
            "genotype_text": self.genotype.to_text(),
            "epochs": final.epoch,
            "epochs_planned": self.config.epochs,
            "finished": final.epoch >= self.config.epochs,
            "reported": "last epoch run (the test set never selects an epoch); final once finished is true",
            "test_acc": final.test_acc,
            "test_loss": final.test_loss,
            "valid_acc": final.valid_acc,
            "valid_loss": final.valid_loss,
            "train_acc": final.train_acc,
            "train_loss": final.train_loss,
            **self.cost.to_dict(),
            "train_time_s": sum(r.epoch_time_s for r in self.history),
            "images_per_s": final.images_per_s,
            "peak_memory_bytes": max(r.peak_memory_bytes for r in self.history),
            "config": self.config.model_dump(),
        }


def run_training(
    config: TrainConfig,
    genotype: Genotype | None = None,
    *,
    data: DatasetBundle | None = None,
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
    resume_from: str | os.PathLike | None = None,
) -> TrainResult:
    """Retrain ``genotype`` (or finish the retraining saved at ``resume_from``), calling
    ``on_epoch(record, training)`` after every epoch: the place to report progress and save checkpoints."""
    if resume_from is not None:
        training = Training.resume(resume_from, data=data, config=config)
        if genotype is not None and genotype != training.genotype():
            raise UserInputError(
                f"resume: the checkpoint retrains {training.genotype().to_text()}, not the genotype given; "
                "leave the genotype out or start a new retraining"
            )
    elif genotype is None:
        raise UserInputError("run_training: give a genotype (or resume_from a checkpoint)")
    else:
        training = Training(config, genotype, data=data)
    for record in training.epochs(on_step):
        if on_epoch is not None:
            on_epoch(record, training)
    return training.result()
