"""The search loop: alternate architecture and weight steps, one record per epoch.

``Search`` owns the complete state of one search (supernet, both optimisers,
the learning-rate schedule, the train/valid split, the epoch counter and the
RNG states) and can save it to and restore it from one checkpoint file, so a
resumed search continues exactly where it stopped. ``Search.epochs()`` runs the
remaining epochs and yields an :class:`EpochRecord` after each; ``run_search``
is the one-call form with a callback hook.
"""

from __future__ import annotations

import hashlib
import math
import os
import resource
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from .architect import Architect
from .checkpoint import load_checkpoint, save_checkpoint
from .config import SearchConfig
from .data import DatasetBundle, DeviceBatches, load_dataset, split_indices
from .errors import UserInputError
from .genotype import Genotype
from .records import EpochRecord
from .seeding import capture_rng_state, derived_seed, restore_rng_state, seed_everything
from .supernet import SearchNetwork

CHECKPOINT_FORMAT = 1


class SearchDiverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, loss: float) -> None:
        self.epoch = epoch
        super().__init__(
            f"search diverged in epoch {epoch}: training loss is {loss}; try a lower lr or grad_clip, or another seed"
        )


EpochCallback = Callable[[EpochRecord, "Search"], None]
StepCallback = Callable[[int, int], None]


def search_step(
    model: SearchNetwork,
    architect: Architect,
    weight_optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    valid_batch: tuple[torch.Tensor, torch.Tensor] | None,
    lr: float,
    grad_clip: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One search step: an architecture step on ``valid_batch`` (unless ``None``: warm-up),
    then a weight step on ``(x, y)``. Returns the weight step's loss and logits, detached."""
    if valid_batch is not None:
        architect.step(x, y, *valid_batch, lr, weight_optimizer)
    weight_optimizer.zero_grad(set_to_none=True)
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    # Clip what the optimiser steps (the weights), without re-filtering the model's parameters each step.
    torch.nn.utils.clip_grad_norm_([p for group in weight_optimizer.param_groups for p in group["params"]], grad_clip)
    weight_optimizer.step()
    return loss.detach(), logits.detach()


def cosine_factor(epoch: int, config: SearchConfig) -> float:
    """Weight learning rate at ``epoch`` as a multiple of ``config.lr``: cosine from lr to lr_min.
    Closed form, so a search extended to more epochs follows the new schedule from where it is."""
    floor = config.lr_min / config.lr
    return floor + (1 - floor) * (1 + math.cos(math.pi * min(epoch, config.epochs) / config.epochs)) / 2


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserInputError(f"device={name!r}: not a device; use 'auto', 'cpu' or 'cuda[:N]'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"device={name!r}: CUDA is not available here; use 'auto' or 'cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UserInputError(f"device={name!r}: this machine has {count} GPU(s); use cuda:0 .. cuda:{count - 1}")
    return device


class Search:
    """One PC-DARTS search. Construct, then iterate :meth:`epochs`; see :meth:`resume`."""

    def __init__(
        self,
        config: SearchConfig,
        data: DatasetBundle | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.config = config
        self.device = resolve_device(config.device if device is None else str(device))
        if data is None:
            data = load_dataset(config.dataset, config.data_root, download=config.download, image_size=config.image_size)
        self.data = data
        seed_everything(config.seed, config.deterministic)
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
        ).to(self.device)
        self.weight_optimizer = torch.optim.SGD(
            self.model.weight_parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        self.architect = Architect(self.model, config)
        train_idx, valid_idx = split_indices(len(data.train), config.train_portion, config.seed)
        if config.train_subset is not None and config.train_subset < len(data.train):
            keep = round(config.train_subset * config.train_portion)
            train_idx, valid_idx = train_idx[:keep], valid_idx[: config.train_subset - keep]
        if len(train_idx) == 0 or len(valid_idx) == 0:
            raise UserInputError(
                f"train_portion={config.train_portion}: leaves an empty half of the {len(data.train)} training images "
                f"(train_subset={config.train_subset}); use more images or a portion nearer 0.5"
            )
        self.split = {"train": train_idx, "valid": valid_idx}
        self.epoch = 0
        self.history: list[EpochRecord] = []
        self.diverged: SearchDiverged | None = None
        self._data_facts = _data_facts(data)  # hashed once: the data never changes during a search
        self._place_data()

    def _place_data(self) -> None:
        """Hold both halves of the training set on the training device."""
        images, labels = self.data.train.images, self.data.train.labels
        self._halves = {
            name: (images[idx].to(self.device), labels[idx].to(self.device)) for name, idx in self.split.items()
        }

    def _batches(self, half: str, *, augment: bool, shuffle: bool, stream: int, pass_: int = 0) -> DeviceBatches:
        """One pass over a half; order and augmentation drawn from a seed fixed by (seed, epoch, stream, pass)."""
        images, labels = self._halves[half]
        generator = torch.Generator(device=self.device)
        generator.manual_seed(derived_seed(self.config.seed, self.epoch, stream, pass_))
        return DeviceBatches(
            images,
            labels,
            batch_size=self.config.batch_size,
            mean=self.data.mean,
            std=self.data.std,
            augment=augment,
            cutout=self.config.cutout if augment else 0,
            shuffle=shuffle,
            generator=generator,
        )

    # --- running ------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.epoch >= self.config.epochs

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.split["train"]) // self.config.batch_size)

    def genotype(self) -> Genotype:
        return self.model.genotype()

    def epochs(self, on_step: StepCallback | None = None) -> Iterator[EpochRecord]:
        """Run the remaining epochs, yielding a record after each."""
        while not self.done:
            yield self.run_epoch(on_step)

    def run_epoch(self, on_step: StepCallback | None = None) -> EpochRecord:
        """Run one epoch: weight (and, after the warm-up, architecture) steps, then evaluation."""
        self._check_not_diverged()
        cfg = self.config
        arch_frozen = self.epoch < cfg.warmup_epochs
        lr = cfg.lr * cosine_factor(self.epoch, cfg)
        for group in self.weight_optimizer.param_groups:
            group["lr"] = lr
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        train_loss, train_acc, seen = self._train_epoch(arch_frozen, lr, on_step)
        train_time = time.perf_counter() - start
        valid_loss, valid_acc = self._evaluate()
        epoch_time = time.perf_counter() - start
        if not math.isfinite(train_loss):
            # The weights are no longer those of the last good epoch: this object may not save or go on.
            self.diverged = SearchDiverged(self.epoch + 1, train_loss)
            raise self.diverged
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
            peak_memory_bytes=self._peak_memory(),
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
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        total = len(train)
        for step, (x, y) in enumerate(train, start=1):
            valid_batch = next(valid) if valid is not None else None
            loss, logits = search_step(model, self.architect, self.weight_optimizer, x, y, valid_batch, lr, cfg.grad_clip)
            # Accumulate on the device: no host synchronisation inside the step.
            loss_sum += loss * y.shape[0]
            correct += (logits.argmax(dim=1) == y).sum()
            seen += y.shape[0]
            if on_step is not None:
                on_step(step, total)
        return (loss_sum / seen).item(), (correct.float() / seen).item(), seen

    @torch.no_grad()
    def _evaluate(self) -> tuple[float, float]:
        """Loss and accuracy on the validation half, unaugmented, in eval mode."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        for x, y in self._batches("valid", augment=False, shuffle=False, stream=2):
            logits = self.model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(dim=1) == y).sum()
            seen += y.shape[0]
        return (loss_sum / seen).item(), (correct.float() / seen).item()

    def _peak_memory(self) -> int:
        """Peak CUDA memory allocated this epoch; on the CPU the process's peak resident size."""
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

    # --- state ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.model_dump(),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "arch_optimizer": self.architect.optimizer.state_dict(),
            "data": self._data_facts,
            "split": dict(self.split),
            "rng": capture_rng_state(self.device),
            "history": [r.to_dict() for r in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise UserInputError(
                f"checkpoint format {state.get('format')!r} is not supported by this version (expected "
                f"{CHECKPOINT_FORMAT}): resume it with the version that wrote it, or start a new search"
            )
        if state["data"] != self._data_facts:
            raise UserInputError(
                f"resume: the checkpoint was written for data {state['data']} but the data given is "
                f"{self._data_facts}; pass the same dataset the search started with"
            )
        self.model.load_state_dict(state["model"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.architect.optimizer.load_state_dict(state["arch_optimizer"])
        self.split = {name: idx.cpu() for name, idx in state["split"].items()}
        self._place_data()
        self.epoch = int(state["epoch"])
        self.history = [EpochRecord.from_dict(r) for r in state["history"]]
        restore_rng_state(state["rng"], self.device)

    def save(self, path: str | os.PathLike) -> None:
        """Write the complete search state to ``path`` atomically."""
        self._check_not_diverged()
        save_checkpoint(self.state_dict(), path)

    def _check_not_diverged(self) -> None:
        if self.diverged is not None:
            raise RuntimeError(f"{self.diverged}; this search's state is unusable: resume from its last checkpoint")

    #: Settings that may differ from the checkpoint's when resuming: they do not change the search.
    RESUMABLE_CHANGES = frozenset({"data_root", "download", "device", "epochs", "deterministic"})

    @classmethod
    def resume(
        cls,
        path: str | os.PathLike,
        data: DatasetBundle | None = None,
        config: SearchConfig | None = None,
        **changes: Any,
    ) -> Search:
        """Rebuild a search from its checkpoint and continue it.

        Settings may differ from the checkpoint's only where :attr:`RESUMABLE_CHANGES` allows,
        given as keyword ``changes`` or as a whole ``config``; settings repeated with the same
        value are fine. With only ``data_root``/``download`` changed the search continues exactly
        as if uninterrupted; a new ``device`` or ``deterministic`` changes the kernels (and on a
        GPU the batch order); a larger ``epochs`` extends the search, the cosine schedule then
        running to the new end from where the search stands.
        """
        state = load_checkpoint(path)
        saved = state["config"]
        requested = {**(config.model_dump() if config is not None else {}), **changes}
        new_config = SearchConfig(**{**saved, **requested})
        new = new_config.model_dump()
        bad = sorted(k for k in new if new[k] != saved.get(k) and k not in cls.RESUMABLE_CHANGES)
        if bad:
            raise UserInputError(
                f"resume: {', '.join(bad)} cannot change when resuming (the checkpoint has "
                f"{', '.join(f'{k}={saved.get(k)!r}' for k in bad)}); only {', '.join(sorted(cls.RESUMABLE_CHANGES))} can, "
                "or start a new search"
            )
        if new_config.epochs < state["epoch"]:
            raise UserInputError(f"epochs={new_config.epochs}: the search already ran {state['epoch']} epochs; use at least that")
        search = cls(new_config, data=data)
        search.load_state_dict(state)
        return search


def _data_facts(data: DatasetBundle) -> dict[str, Any]:
    """What identifies the training data: name, size, and a hash of the labels and of a sample of the images."""
    train = data.train
    digest = hashlib.sha1(train.labels.numpy().tobytes())
    digest.update(train.images[:: max(1, len(train) // 256)].contiguous().numpy().tobytes())
    return {
        "name": data.name,
        "train_images": len(train),
        "num_classes": data.num_classes,
        "fingerprint": digest.hexdigest(),
    }


def _cycle(make: Callable[[int], DeviceBatches]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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
) -> SearchResult:
    """Run a whole search (or the rest of one, from a checkpoint), calling ``on_epoch(record, search)``
    after every epoch: the place to report progress and save checkpoints."""
    if resume_from is not None:
        search = Search.resume(resume_from, data=data, config=config)
    else:
        search = Search(config, data=data)
    for record in search.epochs(on_step):
        if on_epoch is not None:
            on_epoch(record, search)
    return SearchResult(genotype=search.genotype(), history=list(search.history), config=search.config)
