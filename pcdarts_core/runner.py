"""What a search and a retraining share: an epoch-by-epoch run with exact resume.

``EpochRunner`` holds the parts every run has (the checked device, the dataset and
the parts of it on the device, or with ``data_loading="stream"`` their files and the
loader workers that decode them, seeded batches, the epoch counter, the history of
records, divergence, and the checkpoint) so that :class:`~pcdarts_core.search.Search`
and :class:`~pcdarts_core.train.Training` only add their own model, optimisers
and epoch. A checkpoint holds everything a run depends on (model, optimisers, data
split, RNG states, history), so a resumed run continues exactly where it stopped.
It is typed against the two settings and record classes, which declare what it reads
(``epochs``, ``batch_size``, ``augment``, ``cutout``; ``to_dict``) each with its own defaults.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Generic, Self, TypeVar

import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunSettings, SearchConfig, TrainConfig
from .data import Batches, DatasetBundle, DeviceBatches, ImageFiles, ImageTensors, load_dataset, split_indices
from .data.stream import FileBatches, FileLoader
from .devices import resolve_device
from .distributed import SINGLE, Ranks
from .errors import ConfigError, Diverged, UserInputError
from .records import EpochRecord, TrainRecord
from .seeding import capture_rng_state, derived_seed, restore_rng_state, seed_everything

ConfigT = TypeVar("ConfigT", SearchConfig, TrainConfig)
RecordT = TypeVar("RecordT", EpochRecord, TrainRecord)
StepCallback = Callable[[int, int], None]
#: A part of the data as a run holds it: (its uint8 images on the device, or the loader of its files; its labels
#: on the device).
Part = tuple[torch.Tensor | FileLoader, torch.Tensor]


class Totals:
    """Loss and accuracy summed over an epoch on the device: no host synchronisation until read."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen = 0

    def add(self, mean_loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add one batch: its mean loss, its logits and its labels."""
        self.loss += mean_loss.detach() * labels.shape[0]
        self.correct += (logits.detach().argmax(dim=1) == labels).sum()
        self.seen += labels.shape[0]

    def means(self) -> tuple[float, float]:
        """(mean loss, accuracy) over everything added."""
        return (self.loss / self.seen).item(), (self.correct.float() / self.seen).item()

    def gather(self, ranks: Ranks) -> None:
        """Sum each total over the processes of a run on several (the whole batch's figures on every process)."""
        if not ranks.several:
            return
        seen = torch.tensor(float(self.seen), dtype=torch.float64, device=self.loss.device)
        total = ranks.sum(torch.stack([self.loss.double(), self.correct.double(), seen]))
        self.loss, self.correct, self.seen = total[0], total[1].long(), int(total[2].item())


class EpochRunner(Generic[ConfigT, RecordT]):
    """Base of one run (search or retraining). Subclasses set the class attributes and implement
    :meth:`run_epoch`, :meth:`_model_state` and :meth:`_load_model_state`."""

    #: "search" or "training": names the run in messages and in its checkpoint.
    KIND: ClassVar[str]
    CONFIG: ClassVar[type[SearchConfig] | type[TrainConfig]]
    #: The record class, rebuilt from the checkpoint's history with ``from_dict``.
    RECORD: ClassVar[Any]
    #: The error raised when the run diverges: ``DIVERGED(epoch, loss, what)``.
    DIVERGED: ClassVar[Callable[..., Diverged]]
    #: Settings that may differ from the checkpoint's when resuming: they do not change the run
    #: (a new precision or memory format changes the kernels, like a new device).
    RESUMABLE_CHANGES: ClassVar[frozenset[str]] = frozenset(
        {"data_root", "download", "device", "epochs", "deterministic", "precision", "channels_last", "loader_workers"}
    )
    CHECKPOINT_FORMAT: ClassVar[int] = 1

    def __init__(self, config: ConfigT, data: DatasetBundle | None, ranks: Ranks = SINGLE) -> None:
        self.config: ConfigT = config
        #: The processes this run is data parallel over (:mod:`pcdarts_core.distributed`); one by default.
        self.ranks = ranks
        self.device = resolve_device(config.device)
        if data is None:
            data = run_dataset(config)
        _check_loading(config.data_loading, data)
        self.data = data
        seed_everything(config.seed, config.deterministic)
        self.epoch = 0
        self.history: list[RecordT] = []
        self.diverged: Diverged | None = None
        self.split: dict[str, torch.Tensor] = {}
        self._parts: dict[str, Part] = {}
        self._data_facts = data_facts(data)  # hashed once: the data never changes during a run

    # --- data -----------------------------------------------------------------------
    def _place_training_split(self, split: dict[str, torch.Tensor]) -> None:
        """Hold the given index sets of the training images (:meth:`_split_source`) as named parts."""
        self.split = dict(split)
        for name, idx in self.split.items():
            self._place(name, self._split_source(name), idx)

    def _place(self, name: str, source: ImageTensors | ImageFiles, idx: torch.Tensor | None = None) -> None:
        """Hold the images of ``source`` at ``idx`` (default: all) as part ``name``: on the device, or when
        streamed as a loader of their files; the labels on the device."""
        self._close_part(name)
        labels = source.labels if idx is None else source.labels[idx]
        images: torch.Tensor | FileLoader
        if isinstance(source, ImageFiles):
            files = source if idx is None else source.subset(idx)
            images = FileLoader(files, workers=self.config.loader_workers, pin_memory=self.device.type == "cuda")
        else:
            images = (source.images if idx is None else source.images[idx]).to(self.device)
        self._parts[name] = (images, labels.to(self.device))

    def _split_source(self, part: str) -> ImageTensors | ImageFiles:
        """The images a part of the split indexes: the training set (a search may take one part elsewhere)."""
        return self.data.train

    def _close_part(self, name: str) -> None:
        images = self._parts.get(name, (None,))[0]
        if isinstance(images, FileLoader):
            images.close()

    def close(self) -> None:
        """Stop the loader workers of a streamed run (a later pass starts them again); nothing for data in
        memory. :meth:`epochs` calls it when it ends, as does leaving a ``with`` block."""
        for name in self._parts:
            self._close_part(name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _batches(
        self, part: str, *, augment: bool, shuffle: bool, stream: int, pass_: int = 0, drop_last: bool = False
    ) -> Batches:
        """One pass over a part; order and augmentation drawn from a seed fixed by (seed, epoch, stream, pass),
        the same whether the part is in memory or streamed."""
        images, labels = self._parts[part]
        generator = torch.Generator(device=self.device)
        generator.manual_seed(derived_seed(self.config.seed, self.epoch, stream, pass_))
        options: dict[str, Any] = dict(
            batch_size=self.config.batch_size,
            mean=self.data.mean,
            std=self.data.std,
            augment=augment,
            augment_style=self.config.augment,
            cutout=self.config.cutout if augment else 0,
            shuffle=shuffle,
            drop_last=drop_last,
            generator=generator,
            shard=(self.ranks.rank, self.ranks.world_size),
        )
        if isinstance(images, FileLoader):
            return FileBatches(images, labels, device=self.device, **options)
        return DeviceBatches(images, labels, **options)

    @torch.no_grad()
    def _evaluate(
        self, part: str, logits_of: Callable[[torch.Tensor], torch.Tensor], stream: int
    ) -> tuple[float, float]:
        """Loss and accuracy of ``logits_of`` on a part, unaugmented, in the given order (no shuffle).
        Sums stay on the device until the end: one host synchronisation per evaluation."""
        totals = Totals(self.device)
        for x, y in self._batches(part, augment=False, shuffle=False, stream=stream):
            logits = logits_of(x).float()
            totals.add(F.cross_entropy(logits, y), logits, y)
        totals.gather(self.ranks)
        return totals.means()

    # --- running --------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.epoch >= self.config.epochs

    @property
    def steps_per_epoch(self) -> int:
        return len(self._batches("train", augment=False, shuffle=False, stream=0))

    def epochs(self, on_step: StepCallback | None = None) -> Iterator[RecordT]:
        """Run the remaining epochs, yielding a record after each; then (or when the loop is left) stop the
        loader workers (:meth:`close`)."""
        try:
            while not self.done:
                yield self.run_epoch(on_step)
        finally:
            self.close()

    def run_epoch(self, on_step: StepCallback | None = None) -> RecordT:
        raise NotImplementedError

    def _fail_if_diverged(self, **losses: float | None) -> None:
        """After an epoch's training and evaluation: a non-finite loss makes this run unusable (no save,
        no more epochs). The evaluation losses catch weights that the epoch's last step made non-finite."""
        for what, loss in losses.items():
            if loss is not None and not math.isfinite(loss):
                self.diverged = self.DIVERGED(self.epoch + 1, loss, what.replace("_", " "))
                raise self.diverged

    def _check_not_diverged(self) -> None:
        if self.diverged is not None:
            raise RuntimeError(
                f"{self.diverged}; this {self.KIND}'s state is unusable: resume from its last checkpoint"
            )

    # --- state ----------------------------------------------------------------------
    def _model_state(self) -> dict[str, Any]:
        """The subclass's own state: model and optimisers (and anything else it needs)."""
        raise NotImplementedError

    def _load_model_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": self.CHECKPOINT_FORMAT,
            "kind": self.KIND,
            "world_size": self.ranks.world_size,
            "config": self.config.model_dump(),
            "epoch": self.epoch,
            "data": self._data_facts,
            "split": dict(self.split),
            "rng": capture_rng_state(self.device),
            "history": [r.to_dict() for r in self.history],
            **self._model_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_checkpoint(state, self.KIND, self.CHECKPOINT_FORMAT)
        _check_world_size(state.get("world_size", 1), self.ranks.world_size, self.KIND)
        if state["data"] != self._data_facts:
            raise UserInputError(
                f"resume: the checkpoint was written for data {state['data']} but the data given is "
                f"{self._data_facts}; pass the same dataset the {self.KIND} started with"
            )
        self._load_model_state(state)
        self._place_training_split({name: idx.cpu() for name, idx in state["split"].items()})
        self.epoch = int(state["epoch"])
        self.history = [self.RECORD.from_dict(r) for r in state["history"]]
        restore_rng_state(state["rng"], self.device)

    def save(self, path: str | os.PathLike) -> None:
        """Write the complete state to ``path`` atomically (on several processes, the main one writes; they all
        hold the same state)."""
        self._check_not_diverged()
        state = self.state_dict()
        if self.ranks.main:
            save_checkpoint(state, path)

    @classmethod
    def _from_checkpoint(
        cls, config: Any, state: dict[str, Any], data: DatasetBundle | None, ranks: Ranks
    ) -> EpochRunner:
        """A fresh run with the checkpoint's settings, before its state is loaded."""
        return cls(config, data=data, ranks=ranks)  # type: ignore[call-arg]

    @classmethod
    def resume(
        cls,
        path: str | os.PathLike,
        data: DatasetBundle | None = None,
        config: RunSettings | None = None,
        ranks: Ranks = SINGLE,
        **changes: Any,
    ) -> Any:
        """Rebuild a run from its checkpoint, to continue it.

        Settings may differ from the checkpoint's only where :attr:`RESUMABLE_CHANGES` allows,
        given as keyword ``changes`` or as a whole ``config``; settings repeated with the same
        value are fine. With only ``data_root``/``download`` changed the run continues exactly
        as if uninterrupted; a new ``device`` or ``deterministic`` changes the kernels (and on a
        GPU the batch order); a larger ``epochs`` extends the run, its schedules then running
        to the new end from where the run stands. A run on several processes (``ranks``) resumes on
        as many as it ran on.
        """
        state = load_checkpoint(path)
        _check_checkpoint(state, cls.KIND, cls.CHECKPOINT_FORMAT)
        _check_world_size(state.get("world_size", 1), ranks.world_size, cls.KIND)
        requested = {**(config.model_dump() if config is not None else {}), **changes}
        new_config = cls.CONFIG.for_resume(state["config"], requested, cls.RESUMABLE_CHANGES)
        if new_config.epochs < state["epoch"]:
            raise UserInputError(
                f"epochs={new_config.epochs}: the {cls.KIND} already ran {state['epoch']} epochs; use at least that"
            )
        run = cls._from_checkpoint(new_config, state, data, ranks)
        run.load_state_dict(state)
        return run


def _check_checkpoint(state: dict[str, Any], kind: str, expected_format: int) -> None:
    if state.get("kind", "search") != kind:
        raise UserInputError(
            f"checkpoint: written by a {state.get('kind')}, not a {kind}; resume it with the matching command"
        )
    if state.get("format") != expected_format:
        raise UserInputError(
            f"checkpoint format {state.get('format')!r} is not supported by this version (expected "
            f"{expected_format}): resume it with the version that wrote it, or start a new {kind}"
        )


def _check_world_size(saved: int, now: int, kind: str) -> None:
    """A run resumes on as many processes as it ran on: their number decides how every batch is split and
    which images each process's BatchNorm normalises together."""
    if saved != now:
        how = f"torchrun --nproc_per_node {saved}" if saved > 1 else "one process (without torchrun)"
        raise UserInputError(
            f"resume: the checkpoint was written by a {kind} on {saved} process(es), this one runs on {now}: "
            f"resume it with {how}, or start a new {kind}"
        )


def run_dataset(config: RunSettings) -> DatasetBundle:
    """The dataset a run's settings name, loaded (or, with ``data_loading="stream"``, listed) as they say."""
    return load_dataset(
        config.dataset,
        config.data_root,
        download=config.download,
        image_size=config.image_size,
        loading=config.data_loading,
    )


def _check_loading(loading: str, data: DatasetBundle) -> None:
    """The data given must be held as ``data_loading`` says."""
    streamed = isinstance(data.train, ImageFiles)
    if streamed != (loading == "stream"):
        held = "lists image files (loading='stream')" if streamed else "holds decoded images (loading='memory')"
        raise ConfigError(
            "data_loading",
            loading,
            f"the data given {held}: load it with load_dataset(..., loading={loading!r}) or pass data=None",
        )


def data_facts(data: DatasetBundle) -> dict[str, Any]:
    """What identifies the training data: name, size, and a hash of the labels and of a sample of the images."""
    return {
        "name": data.name,
        "train_images": len(data.train),
        "num_classes": data.num_classes,
        "fingerprint": fingerprint(data.train),
    }


def fingerprint(split: ImageTensors | ImageFiles) -> str:
    """A hash of a split's labels and of a sample of its images (decoded, when the split is streamed: the same
    hash as in memory)."""
    digest = hashlib.sha1(split.labels.numpy().tobytes())
    step = max(1, len(split) // 256)
    sample = split.images[::step] if isinstance(split, ImageTensors) else split.read(range(0, len(split), step))
    digest.update(sample.contiguous().numpy().tobytes())
    return digest.hexdigest()


def split_training_set(n: int, portion: float, seed: int, subset: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``n`` training images, in a seeded random order, into a first part of share ``portion``
    and the rest. With ``subset``, only that many images are used, split in the same proportion."""
    first, rest = split_indices(n, portion, seed)
    if subset is not None and subset < n:
        keep = round(subset * portion)
        first, rest = first[:keep], rest[: subset - keep]
    return first, rest


def split_given(
    n_first: int, n_rest: int, portion: float, seed: int, subset: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A split that is given (two folders of ``n_first`` and ``n_rest`` images): the indices of each, in a
    seeded random order. With ``subset``, only that many images are used: a share ``portion`` of them
    from the first, the rest from the second (as far as each has images)."""
    gen = torch.Generator().manual_seed(seed)
    first, rest = torch.randperm(n_first, generator=gen), torch.randperm(n_rest, generator=gen)
    if subset is not None and subset < n_first + n_rest:
        keep = min(round(subset * portion), n_first)
        first, rest = first[:keep], rest[: subset - keep]
    return first, rest
