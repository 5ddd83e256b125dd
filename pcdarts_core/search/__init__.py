"""The search loop: alternate architecture and weight steps, one record per epoch.

``Search`` owns the complete state of one search (supernet, both optimisers,
the learning-rate schedule, the train/valid split, the epoch counter and the
RNG states) and can save it to and restore it from one checkpoint file, so a
resumed search continues exactly where it stopped. ``Search.epochs()`` runs the
remaining epochs and yields an :class:`EpochRecord` after each; ``run_search``
is the one-call form with a callback hook. ``python -m pcdarts_core.search`` runs one search from
the command line (:mod:`pcdarts_core.cli.search`, run by this package's ``__main__``).

The speed options (:mod:`pcdarts_core.speed`: bf16 autocast, channels-last, fused optimisers, and
``compile``) change kernels only; the loop never reads a tensor on the host inside an epoch (the
losses and accuracies are summed on the device and read once per epoch).
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..activation_memory import activation_bytes_per_image
from ..arch_budget import ArchitectureBudgetWarning, budget_warning
from ..architect import Architect
from ..config import SearchConfig
from ..data import Batches, DatasetBundle, ImageFiles, ImageTensors
from ..devices import peak_memory_bytes, reset_peak_memory
from ..distributed import SINGLE, Ranks
from ..errors import DataError, Diverged, UserInputError
from ..genotype import Genotype
from ..records import EpochRecord
from ..runner import EpochRunner, StepCallback, Totals, fingerprint, split_given, split_training_set
from ..schedules import learning_rate
from ..speed import check_memory_format, full_precision, load_optimizer_state, optimizer_kernels, speed_options
from ..supernet import SearchNetwork

__all__ = ["Search", "SearchDiverged", "SearchResult", "cosine_factor", "run_search", "search_step"]


class SearchDiverged(Diverged):
    """The search's training loss became NaN or infinite."""

    def __init__(self, epoch: int, loss: float, what: str = "training loss") -> None:
        super().__init__("search", epoch, loss, what)


EpochCallback = Callable[[EpochRecord, "Search"], None]


def search_step(
    model: SearchNetwork,
    architect: Architect,
    weight_optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    valid_batch: tuple[torch.Tensor, torch.Tensor] | None,
    lr: float,
    grad_clip: float,
    logits_of: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ranks: Ranks = SINGLE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One search step: an architecture step on ``valid_batch`` (unless ``None``: warm-up),
    then a weight step on ``(x, y)``. ``logits_of`` computes a batch's logits as the search is
    configured (autocast, compiled model; default: ``model``); the loss is taken in float32.
    On several processes (``ranks``) the weight gradients are averaged over them before clipping,
    as the architect averages its own. Returns the weight step's loss and logits, detached."""
    logits_of = logits_of or model
    if valid_batch is not None:
        architect.step(x, y, *valid_batch, lr, weight_optimizer, logits_of=logits_of)
    weight_optimizer.zero_grad(set_to_none=True)
    logits = full_precision(logits_of(x))
    loss = F.cross_entropy(logits, y)
    loss.backward()
    # Clip what the optimiser steps (the weights), without re-filtering the model's parameters each step.
    weights = [p for group in weight_optimizer.param_groups for p in group["params"]]
    ranks.average([p.grad for p in weights if p.grad is not None])
    torch.nn.utils.clip_grad_norm_(weights, grad_clip)
    weight_optimizer.step()
    return loss.detach(), logits.detach()


def cosine_factor(epoch: int, config: SearchConfig) -> float:
    """Weight learning rate at ``epoch`` as a multiple of ``config.lr``: cosine from lr to lr_min, scaled by
    ``(epoch + 1) / lr_warmup_epochs`` in the first ``lr_warmup_epochs`` epochs (none by default)."""
    rate = learning_rate(
        epoch, lr=config.lr, lr_min=config.lr_min, epochs=config.epochs, warmup_epochs=config.lr_warmup_epochs
    )
    return rate / config.lr


class Search(EpochRunner[SearchConfig, EpochRecord]):
    """One PC-DARTS search. Construct, then iterate :meth:`epochs`; see :meth:`resume`."""

    KIND = "search"
    CONFIG = SearchConfig
    RECORD = EpochRecord
    DIVERGED = SearchDiverged
    #: Compiling changes how the same operations run, like the other speed options.
    RESUMABLE_CHANGES = EpochRunner.RESUMABLE_CHANGES | {"compile"}

    def __init__(
        self,
        config: SearchConfig,
        data: DatasetBundle | None = None,
        device: str | torch.device | None = None,
        ranks: Ranks = SINGLE,
    ) -> None:
        if device is not None:
            config = config.replace(device=str(device))
        _check_ranks(config, ranks)
        super().__init__(config, data, ranks)
        data = self.data
        self.speed = speed_options(config, self.device)
        check_memory_format(self.speed, self.device, data.in_channels)
        self.model = SearchNetwork(
            C=config.init_channels,
            num_classes=data.num_classes,
            layers=config.layers,
            k=config.k,
            edge_norm=config.edge_norm,
            in_channels=data.in_channels,
            steps=config.steps,
            multiplier=config.multiplier,
            stem_multiplier=config.stem_multiplier,
            channel_selection=config.channel_selection,
            network=config.network,
        ).to(self.device, memory_format=self.speed.memory_format)
        if ranks.several:
            self._share_model(config)
        # The module that runs the forward passes; self.model stays the plain one (checkpoints, genotype).
        self._forward = torch.compile(self.model) if config.compile else self.model
        kernels = optimizer_kernels(self.device)
        self.weight_optimizer = torch.optim.SGD(
            self.model.weight_parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            **kernels,
        )
        self.architect = Architect(self.model, config, optimizer_options=kernels, ranks=ranks)
        train_idx, valid_idx = _halves(config, data)
        if ranks.several and min(len(train_idx), len(valid_idx)) < ranks.world_size:
            raise UserInputError(
                f"train_subset/train_portion: a half of {min(len(train_idx), len(valid_idx))} images cannot be split "
                f"over {ranks.world_size} processes; use at least {ranks.world_size} images in each half"
            )
        if data.test is not None and config.data_split == "folders":
            # The architecture half's images identify the data too: a resume must find the same ones.
            self._data_facts = {**self._data_facts, "valid_images": len(data.test), "valid": fingerprint(data.test)}
        self._place_training_split({"train": train_idx, "valid": valid_idx})
        if (message := budget_warning(config, len(data.train))) is not None:
            warnings.warn(message, ArchitectureBudgetWarning, stacklevel=2)

    def _split_source(self, part: str) -> ImageTensors | ImageFiles:
        if part == "valid" and self.config.data_split == "folders":
            assert self.data.test is not None  # checked by _halves
            return self.data.test
        return self.data.train

    def _share_model(self, config: SearchConfig) -> None:
        """On several processes: all start from the main one's supernet (seeded alike, they already agree), and
        with ``sync_bn`` their BatchNorm layers normalise the whole batch together."""
        if config.sync_bn:
            if self.device.type != "cuda":
                raise UserInputError(
                    f"sync_bn: SyncBatchNorm runs on GPUs only, this search runs on {self.device}; leave sync_bn off "
                    "(each process then normalises its own share, as the authors' DataParallel search did)"
                )
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.ranks.broadcast([*self.model.parameters(), *self.model.buffers()])

    # --- running ------------------------------------------------------------------
    def genotype(self) -> Genotype:
        return self.model.genotype()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The supernet's full-precision logits of a batch, computed as configured (memory format,
        autocast, compile)."""
        with self.speed.autocast(self.device):
            return full_precision(self._forward(x.contiguous(memory_format=self.speed.memory_format)))

    def activation_bytes_per_image(self) -> float:
        """Bytes of activations one training forward pass of the supernet saves for backward, per image
        of a batch of ``batch_size`` (:mod:`pcdarts_core.activation_memory`), as configured (memory
        format, autocast) but not compiled. It is the same on every device; the search's state, its
        random generators included, is left as it was. On several processes each measures its share
        of a batch, and every one must call it (with ``sync_bn`` the pass is a collective one)."""
        data, was_training = self.data, self.model.training
        batch = self.config.batch_size // self.ranks.world_size
        shape = (batch, data.in_channels, data.image_size, data.image_size)

        def forward(x: torch.Tensor) -> torch.Tensor:
            with self.speed.autocast(self.device):
                return self.model(x.contiguous(memory_format=self.speed.memory_format))

        self.model.train()
        try:
            return activation_bytes_per_image(self.model, shape, forward)
        finally:
            self.model.train(was_training)

    def run_epoch(self, on_step: StepCallback | None = None) -> EpochRecord:
        """Run one epoch: weight (and, after the warm-up, architecture) steps, then evaluation."""
        self._check_not_diverged()
        cfg = self.config
        arch_frozen = self.epoch < cfg.warmup_epochs
        lr = cfg.lr * cosine_factor(self.epoch, cfg)
        for group in self.weight_optimizer.param_groups:
            group["lr"] = lr
        reset_peak_memory(self.device)
        start = time.perf_counter()
        train_loss, train_acc, seen = self._train_epoch(arch_frozen, lr, on_step)
        train_time = time.perf_counter() - start
        if self.ranks.several:
            # A diverged step leaves NaN weights, which never compare equal: say it diverged, not that they differ.
            self._fail_if_diverged(training_loss=train_loss)
            self.ranks.check_same(self.model.named_parameters(), "supernet weights or α/β")
            # Evaluate, and save, the main process's BatchNorm statistics (DataParallel keeps its first replica's).
            self.ranks.broadcast(self.model.buffers())
        self.model.eval()
        valid_loss, valid_acc = self._evaluate("valid", self.logits, stream=2)
        epoch_time = time.perf_counter() - start
        # The weights are no longer those of the last good epoch: this object may not save or go on.
        self._fail_if_diverged(training_loss=train_loss, validation_loss=valid_loss)
        self.epoch += 1
        weights = {name: w.cpu().tolist() for name, w in self.model.arch_weights().items()}
        record = EpochRecord(
            epoch=self.epoch,
            lr=lr,
            arch_frozen=arch_frozen,
            train_loss=train_loss,
            train_acc=train_acc,
            valid_loss=valid_loss,
            valid_acc=valid_acc,
            epoch_time_s=epoch_time,
            images_per_s=seen / train_time if train_time > 0 else float("nan"),
            peak_memory_bytes=peak_memory_bytes(self.device),
            genotype=self.model.genotype(),
            alphas_normal=weights["alphas_normal"],
            alphas_reduce=weights["alphas_reduce"],
            betas_normal=weights.get("betas_normal"),
            betas_reduce=weights.get("betas_reduce"),
        )
        self.history.append(record)
        return record

    def _train_epoch(self, arch_frozen: bool, lr: float, on_step: StepCallback | None) -> tuple[float, float, int]:
        cfg, model = self.config, self.model
        model.train()
        train = self._batches("train", augment=True, shuffle=True, stream=0)
        # No validation batch is drawn while the architecture is frozen.
        valid = None
        if not arch_frozen:
            valid = _cycle(lambda n: self._batches("valid", augment=True, shuffle=True, stream=1, pass_=n))
        totals = Totals(self.device)
        for step, (x, y) in enumerate(train, start=1):
            valid_batch = next(valid) if valid is not None else None
            loss, logits = search_step(
                model,
                self.architect,
                self.weight_optimizer,
                x,
                y,
                valid_batch,
                lr,
                cfg.grad_clip,
                logits_of=self.logits,
                ranks=self.ranks,
            )
            totals.add(loss, logits, y)
            if on_step is not None:
                on_step(step, len(train))
        totals.gather(self.ranks)
        return (*totals.means(), totals.seen)

    # --- state ------------------------------------------------------------------
    def _model_state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "arch_optimizer": self.architect.optimizer.state_dict(),
        }

    def _load_model_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        load_optimizer_state(self.weight_optimizer, state["weight_optimizer"])
        load_optimizer_state(self.architect.optimizer, state["arch_optimizer"])


def _check_ranks(config: SearchConfig, ranks: Ranks) -> None:
    """Every batch must split evenly over the processes (each takes batch_size / world_size images of it), and each
    process takes the GPU of its own local rank."""
    if ranks.several and re.fullmatch(r"cuda:\d+", config.device):
        raise UserInputError(
            f"device={config.device}: on {ranks.world_size} processes each takes the GPU of its local rank; use "
            "device 'auto' or 'cuda'"
        )
    if ranks.several and config.batch_size % ranks.world_size:
        raise UserInputError(
            f"batch_size={config.batch_size}: cannot be split over {ranks.world_size} processes; use a multiple of "
            f"{ranks.world_size} (the batch of the whole search, of which each process takes an equal share)"
        )


def _halves(config: SearchConfig, data: DatasetBundle) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight half and the architecture half: a seeded split of the training images, or with
    ``data_split="folders"`` the training images and the test split (an image folder's train/ and val/)."""
    if config.data_split == "folders":
        if data.test is None:
            raise DataError(
                f"data_split='folders': {config.data_root or data.name} has no val/ (or test/) folder for the "
                "architecture half; give a root with train/ and val/ (python -m pcdarts_core.data.subset writes "
                "one) or use data_split='random'"
            )
        halves = split_given(len(data.train), len(data.test), config.train_portion, config.seed, config.train_subset)
        where = f"train/ ({len(data.train)} images) and val/ ({len(data.test)})"
    else:
        halves = split_training_set(len(data.train), config.train_portion, config.seed, config.train_subset)
        where = f"the {len(data.train)} training images"
    if min(len(h) for h in halves) == 0:
        raise UserInputError(
            f"train_portion={config.train_portion}: leaves an empty half of {where} "
            f"(train_subset={config.train_subset}); use more images or a portion nearer 0.5"
        )
    return halves


def _cycle(make: Callable[[int], Batches]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches: pass 0, 1, 2, ... each with its own order and augmentation."""
    n = 0
    while True:
        yield from make(n)
        n += 1


@dataclass(frozen=True)
class SearchResult:
    genotype: Genotype
    history: list[EpochRecord]
    config: SearchConfig


def run_search(
    config: SearchConfig,
    *,
    data: DatasetBundle | None = None,
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
    resume_from: str | os.PathLike | None = None,
    ranks: Ranks = SINGLE,
) -> SearchResult:
    """Run a whole search (or the rest of one, from a checkpoint), calling ``on_epoch(record, search)``
    after every epoch: the place to report progress and save checkpoints. ``ranks``: this process's place
    when the search runs on several (:mod:`pcdarts_core.distributed`)."""
    if resume_from is not None:
        search = Search.resume(resume_from, data=data, config=config, ranks=ranks)
    else:
        search = Search(config, data=data, ranks=ranks)
    for record in search.epochs(on_step):
        if on_epoch is not None:
            on_epoch(record, search)
    return SearchResult(genotype=search.genotype(), history=list(search.history), config=search.config)
