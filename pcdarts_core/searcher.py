"""The search loop: alternate architecture and weight steps, one record per epoch.

``Search`` owns the complete state of one search (supernet, both optimisers,
the learning-rate schedule, the train/valid split, the epoch counter and the
RNG states) and can save it to and restore it from one checkpoint file, so a
resumed search continues exactly where it stopped. ``Search.epochs()`` runs the
remaining epochs and yields an :class:`EpochRecord` after each; ``run_search``
is the one-call form with a callback hook.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import torch
import torch.nn.functional as F

from .architect import Architect
from .checkpoint import load_checkpoint, save_checkpoint
from .config import SearchConfig
from .data import DatasetBundle, DeviceBatches, load_dataset, split_indices
from .errors import UserInputError
from .genotype import Genotype
from .seeding import capture_rng_state, derived_seed, restore_rng_state, seed_everything
from .supernet import SearchNetwork

CHECKPOINT_FORMAT = 1


class SearchDiverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, loss: float) -> None:
        self.epoch = epoch
        super().__init__(f"search diverged in epoch {epoch}: training loss is {loss}")


@dataclass(frozen=True)
class EpochRecord:
    """What one search epoch produced. ``epoch`` counts from 1."""

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


EpochCallback = Callable[[EpochRecord, "Search"], None]
StepCallback = Callable[[int, int], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserInputError(f"device={name!r}: not a device; use 'auto', 'cpu' or 'cuda[:N]'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"device={name!r}: CUDA is not available here; use 'auto' or 'cpu'")
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
        self.device = resolve_device(config.device) if device is None else torch.device(device)
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
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.weight_optimizer, T_max=config.epochs, eta_min=config.lr_min
        )
        self.architect = Architect(self.model, config)
        train_idx, valid_idx = split_indices(len(data.train), config.train_portion, config.seed)
        if config.train_subset is not None and config.train_subset < len(data.train):
            keep = round(config.train_subset * config.train_portion)
            train_idx, valid_idx = train_idx[:keep], valid_idx[: config.train_subset - keep]
        if len(train_idx) == 0 or len(valid_idx) == 0:
            raise UserInputError(
                f"train_portion={config.train_portion}: leaves an empty half of the {len(data.train)} training images"
            )
        self.split = {"train": train_idx, "valid": valid_idx}
        self.epoch = 0
        self.history: list[EpochRecord] = []
        self._place_data()

    def _place_data(self) -> None:
        """Hold both halves of the training set on the training device."""
        images, labels = self.data.train.images, self.data.train.labels
        self._halves = {
            name: (images[idx].to(self.device), labels[idx].to(self.device)) for name, idx in self.split.items()
        }

    def _batches(self, half: str, *, augment: bool, shuffle: bool, stream: int) -> DeviceBatches:
        images, labels = self._halves[half]
        generator = torch.Generator(device=self.device)
        generator.manual_seed(derived_seed(self.config.seed, self.epoch, stream))
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
        cfg = self.config
        arch_frozen = self.epoch < cfg.warmup_epochs
        lr = self.scheduler.get_last_lr()[0]
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        train_loss, train_acc, seen = self._train_epoch(arch_frozen, lr, on_step)
        train_time = time.perf_counter() - start
        self.scheduler.step()
        valid_loss, valid_acc = self._evaluate()
        epoch_time = time.perf_counter() - start
        self.epoch += 1
        if not torch.isfinite(torch.tensor(train_loss)):
            raise SearchDiverged(self.epoch, train_loss)
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
        valid = None if arch_frozen else _cycle(lambda: self._batches("valid", augment=True, shuffle=True, stream=1))
        weights = model.weight_parameters()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        total = len(train)
        for step, (x, y) in enumerate(train, start=1):
            if valid is not None:
                x_valid, y_valid = next(valid)
                self.architect.step(x, y, x_valid, y_valid, lr, self.weight_optimizer)
            self.weight_optimizer.zero_grad(set_to_none=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(weights, cfg.grad_clip)
            self.weight_optimizer.step()
            # Accumulate on the device: no host synchronisation inside the step.
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.detach().argmax(dim=1) == y).sum()
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
            "scheduler": self.scheduler.state_dict(),
            "split": dict(self.split),
            "rng": capture_rng_state(),
            "history": [r.to_dict() for r in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise UserInputError(f"checkpoint format {state.get('format')!r} is not supported (expected {CHECKPOINT_FORMAT})")
        self.model.load_state_dict(state["model"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.architect.optimizer.load_state_dict(state["arch_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.split = {name: idx.cpu() for name, idx in state["split"].items()}
        self._place_data()
        self.epoch = int(state["epoch"])
        self.history = [EpochRecord.from_dict(r) for r in state["history"]]
        restore_rng_state(state["rng"])

    def save(self, path: str | os.PathLike) -> None:
        """Write the complete search state to ``path`` atomically."""
        save_checkpoint(self.state_dict(), path)

    @classmethod
    def resume(
        cls,
        path: str | os.PathLike,
        data: DatasetBundle | None = None,
        device: str | torch.device | None = None,
        **overrides: Any,
    ) -> Search:
        """Rebuild a search from its checkpoint. ``overrides`` may change settings that do not
        alter the search itself (``data_root``, ``download``, ``device``, ``epochs`` to extend it)."""
        state = load_checkpoint(path)
        allowed = {"data_root", "download", "device", "epochs", "deterministic"}
        bad = sorted(set(overrides) - allowed)
        if bad:
            raise UserInputError(f"resume: {', '.join(bad)} cannot change when resuming; only {', '.join(sorted(allowed))} can")
        config = SearchConfig(**{**state["config"], **overrides})
        search = cls(config, data=data, device=device)
        search.load_state_dict(state)
        if "epochs" in overrides and overrides["epochs"] != state["config"]["epochs"]:
            # A longer schedule: keep the progress, anneal to the new end.
            search.scheduler.T_max = config.epochs
        return search


def _cycle(make: Callable[[], DeviceBatches]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches, a fresh pass (new order) each time one ends."""
    while True:
        yield from make()


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
    search = Search.resume(resume_from, data=data) if resume_from is not None else Search(config, data=data)
    for record in search.epochs(on_step):
        if on_epoch is not None:
            on_epoch(record, search)
    return SearchResult(genotype=search.genotype(), history=list(search.history), config=search.config)
