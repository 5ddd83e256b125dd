"""Typed settings, validated once when they are made; this module does not import torch.

``StrictConfig`` is the base of every settings object: frozen, unknown keys
rejected, and every invalid value raised as one
:class:`~pcdarts_core.errors.ConfigError` naming the field and the fix.
``RunSettings`` holds what searches and retrainings share (data, seed, device and the speed
options of :mod:`pcdarts_core.speed`).
``SearchConfig`` adds the search, with the PC-DARTS CIFAR-10 protocol (Xu et al.,
2020, and the authors' ``train_search.py``) as defaults; ``SearchConfig.protocol("imagenet")`` gives
the settings of their ImageNet search (``train_search_imagenet.py``: the ImageNet supernet with K=2,
50 epochs of batch 1024, lr 0.5 with 5 warm-up epochs, arch_lr 6e-3, α/β frozen for 35 epochs,
random-resized crops, on the per-class subset that :mod:`pcdarts_core.data.subset` writes).
``TrainConfig`` adds the retraining of a genotype, with the CIFAR-10 evaluation protocol of DARTS
and PC-DARTS as defaults (600 epochs, batch 96, SGD lr 0.025 cosine to 0, momentum 0.9, weight
decay 3e-4, C=36, 20 layers, auxiliary head weighted 0.4, cutout 16, drop path 0.3, gradient clip
5); ``TrainConfig.protocol("imagenet")`` gives the PC-DARTS ImageNet protocol (250 epochs, batch
1024, lr 0.5 with 5 warm-up epochs and the script's linear decay, weight decay 3e-5, label
smoothing 0.1, C=48, 14 layers). Both ``protocol`` methods are one mechanism: the settings a published
protocol changes from the field defaults (:data:`SEARCH_PROTOCOLS`, :data:`PROTOCOLS`), whose fields
can then still be changed.

The schedule settings (``epochs``, ``batch_size``, ``augment``, ``cutout``, ...) are declared in each of the two
configs, with its own protocol's defaults and in its own field order (the order of ``config.json``
and of the command-line flags); :class:`~pcdarts_core.runner.EpochRunner` is typed against both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .data.names import DATASETS
from .errors import ConfigError, UserInputError
from .search_space import check_supernet_shape


class StrictConfig(BaseModel):
    """A frozen, validated settings object: unknown keys and bad values raise one
    :class:`~pcdarts_core.errors.ConfigError` naming the field and the fix."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise _config_error(err, type(self)) from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**data)

    def replace(self, **changes: Any) -> Self:
        """A validated copy with some fields changed."""
        return type(self)(**{**self.model_dump(), **changes})

    @classmethod
    def for_resume(cls, saved: dict[str, Any], requested: dict[str, Any], allowed: frozenset[str]) -> Self:
        """The settings of a resumed run: ``saved`` (from its checkpoint) with ``requested`` applied.
        Only the fields in ``allowed`` may differ; repeating a saved value is fine. A setting missing from
        ``saved`` (added after the checkpoint was written) had its default value, the old behaviour."""
        config = cls(**{**saved, **requested})
        new = config.model_dump()
        before = {k: saved[k] if k in saved else cls.model_fields[k].default for k in new}
        bad = sorted(k for k in new if new[k] != before[k] and k not in allowed)
        if bad:
            raise UserInputError(
                f"resume: {', '.join(bad)} cannot change when resuming (the checkpoint has "
                f"{', '.join(f'{k}={before[k]!r}' for k in bad)}); only {', '.join(sorted(allowed))} can, "
                "or start a new run"
            )
        return config


#: The published protocols (see :data:`SEARCH_PROTOCOLS` and :data:`PROTOCOLS`), and the two network layouts.
ProtocolName = Literal["cifar", "imagenet"]
#: How a run augments its training batches (:class:`~pcdarts_core.data.DeviceBatches`).
AugmentName = Literal["cifar", "imagenet"]

#: The settings each published search protocol changes from the :class:`SearchConfig` defaults (the
#: CIFAR-10 protocol). "imagenet" is the authors' ``train_search_imagenet.py``; docs/core.md ("The
#: ImageNet search") says where each value comes from and where we differ.
SEARCH_PROTOCOLS: Mapping[str, dict[str, Any]] = MappingProxyType(
    {
        "cifar": {},
        "imagenet": {
            "network": "imagenet",
            "dataset": "imagefolder",
            "image_size": 224,
            "data_split": "folders",
            "train_portion": 0.8,
            "k": 2,
            "epochs": 50,
            "warmup_epochs": 35,
            "batch_size": 1024,
            "lr": 0.5,
            "lr_min": 0.0,
            "lr_warmup_epochs": 5,
            "weight_decay": 3e-4,
            "arch_lr": 6e-3,
            "arch_weight_decay": 1e-3,
            "arch_grad_clip": 5.0,
            "augment": "imagenet",
            "cutout": 0,
        },
    }
)

#: The settings each published retraining protocol changes from the :class:`TrainConfig` defaults.
PROTOCOLS: Mapping[str, dict[str, Any]] = MappingProxyType(
    {
        "cifar": {},
        "imagenet": {
            "network": "imagenet",
            "dataset": "imagefolder",
            "image_size": 224,
            "epochs": 250,
            "batch_size": 1024,
            "lr": 0.5,
            "lr_schedule": "pcdarts_linear",
            "warmup_epochs": 5,
            "weight_decay": 3e-5,
            "label_smoothing": 0.1,
            "init_channels": 48,
            "layers": 14,
            "cutout": 0,
            "drop_path_prob": 0.0,
        },
    }
)


class RunSettings(StrictConfig):
    """Settings every run has, search or retraining: the data, the seed and the device."""

    #: The published protocols of this kind of run: the settings each changes from the field defaults.
    PUBLISHED: ClassVar[Mapping[str, dict[str, Any]]] = MappingProxyType({})

    dataset: str = Field("cifar10", description=f"one of {', '.join(DATASETS)}")
    data_root: str | None = Field(None, description="dataset folder (default: the dataset's standard place)")
    download: bool = Field(True, description="download CIFAR when it is not under data_root")
    image_size: int | None = Field(
        None, ge=1, description="resize images to this size (default: the dataset's own; imagefolder: 32)"
    )
    train_subset: int | None = Field(
        None,
        ge=2,
        description="use only this many training images (a seeded sample, split like the full set); for quick runs",
    )
    data_loading: Literal["memory", "stream"] = Field(
        "memory",
        description="'memory': decode every image once and hold them on the device; 'stream' (imagefolder): "
        "decode each batch from the files in loader_workers processes",
    )
    loader_workers: int = Field(
        4, ge=0, description="with data_loading 'stream': decoding processes per part of the data (0: in the run's own)"
    )
    seed: int = Field(0, ge=0)
    deterministic: bool = Field(False, description="deterministic kernels (slower on a GPU)")
    device: str = Field("auto", description="'auto' (CUDA if available), 'cpu', 'cuda' or 'cuda:N'")
    # speed: kernels only (see pcdarts_core.speed); a run may resume with other values
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="'bf16': bfloat16 autocast; 'auto': bf16 on a GPU, fp32 on the CPU"
    )
    channels_last: bool | None = Field(None, description="channels-last memory format (default: on a GPU only)")

    @classmethod
    def protocol(cls, name: str, **changes: Any) -> Self:
        """The settings of a published protocol ("cifar" or "imagenet"), with ``changes`` applied."""
        if name not in cls.PUBLISHED:
            raise ConfigError("protocol", name, f"unknown protocol; use one of {', '.join(cls.PUBLISHED)}")
        return cls(**{**cls.PUBLISHED[name], **changes})

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ConfigError("device", value, "use 'auto', 'cpu', 'cuda' or 'cuda:N'")
        return value

    @field_validator("dataset")
    @classmethod
    def _check_dataset(cls, value: str) -> str:
        if value not in DATASETS:
            raise ConfigError("dataset", value, f"unknown dataset; use one of {', '.join(DATASETS)}")
        return value

    @model_validator(mode="after")
    def _check_loading(self) -> Self:
        if self.data_loading == "stream" and self.dataset != "imagefolder":
            raise ConfigError(
                "data_loading",
                self.data_loading,
                f"streams the files of an image folder, {self.dataset} has none; use data_loading='memory' or "
                "dataset='imagefolder'",
            )
        if self.data_loading == "stream" and self.data_root is None:
            raise ConfigError(
                "data_root",
                self.data_root,
                "data_loading='stream' reads the images from a folder: pass --data-root (data_root=) a folder with "
                "one sub-folder per class",
            )
        return self


class SearchConfig(RunSettings):
    """One PC-DARTS search (defaults: the paper's CIFAR-10 protocol; ``SearchConfig.protocol("imagenet")``
    for the ImageNet search)."""

    PUBLISHED = SEARCH_PROTOCOLS

    data_split: Literal["random", "folders"] = Field(
        "random",
        description="'random': a seeded split of the training images at train_portion; 'folders' (imagefolder): "
        "the weights train on root/train, α/β on root/val (as python -m pcdarts_core.data.subset writes them)",
    )
    train_portion: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="share of the training images that trains the weights, the rest trains α/β (with "
        "data_split 'folders': the share of train_subset taken from root/train)",
    )
    # supernet
    network: ProtocolName = Field(
        "cifar", description="'cifar' (3x3 conv stem) or 'imagenet' (three stride-2 conv stem) supernet"
    )
    init_channels: int = Field(16, ge=1, description="C, the channels of the first cell")
    layers: int = Field(8, ge=1, description="number of cells")
    k: int = Field(
        4, ge=1, description="partial-channel proportion K: 1/K of the channels enter the mixed ops (1 = DARTS)"
    )
    edge_norm: bool = Field(True, description="learn edge-normalisation weights β")
    channel_selection: Literal["first", "random"] = Field(
        "first",
        description="'first': the first C/K channels (published code); 'random': a fresh subset each pass (paper)",
    )
    steps: int = Field(4, ge=1, description="intermediate nodes per cell")
    multiplier: int = Field(4, ge=1, description="nodes concatenated into the cell output")
    stem_multiplier: int = Field(3, ge=1, description="stem width as a multiple of C")
    # schedule
    epochs: int = Field(50, ge=1, description="search epochs")
    warmup_epochs: int = Field(15, ge=0, description="epochs with α/β frozen at the start")
    batch_size: int = Field(256, ge=1, description="images per weight step (and per architecture step)")
    lr: float = Field(0.1, gt=0, description="weight SGD learning rate (cosine-annealed)")
    lr_min: float = Field(0.0, ge=0, description="final weight learning rate")
    lr_warmup_epochs: int = Field(
        0, ge=0, description="epochs of linear warm-up of the weight learning rate at the start (0 = none)"
    )
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(3e-4, ge=0)
    grad_clip: float = Field(5.0, gt=0, description="max gradient norm of the weights")
    arch_lr: float = Field(6e-4, gt=0, description="Adam learning rate of α/β")
    arch_beta1: float = Field(0.5, ge=0, lt=1)
    arch_beta2: float = Field(0.999, ge=0, lt=1)
    arch_weight_decay: float = Field(1e-3, ge=0)
    arch_grad_clip: float | None = Field(None, gt=0, description="max gradient norm of α/β (None: no clipping)")
    order: Literal["first", "second"] = Field(
        "first", description="architecture gradient: first order or unrolled second order"
    )
    augment: AugmentName = Field(
        "cifar",
        description="training augmentation: 'cifar' (4-pixel padded random crop, flip) or 'imagenet' "
        "(random-resized crop, flip)",
    )
    cutout: int = Field(0, ge=0, description="cutout length on training batches (0 = off)")
    compile: bool = Field(
        False, description="torch.compile the supernet's forward pass (pays on a GPU; the first steps compile)"
    )
    sync_bn: bool = Field(
        False,
        description="on several processes (torchrun), normalise BatchNorm over the whole batch (GPUs only); off: "
        "each process over its share, as the authors' DataParallel search",
    )

    @model_validator(mode="after")
    def _check(self) -> SearchConfig:
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(
                "warmup_epochs",
                self.warmup_epochs,
                f"the architecture would never be trained in {self.epochs} epochs; use warmup_epochs < epochs",
            )
        if self.lr_min > self.lr:
            raise ConfigError("lr_min", self.lr_min, f"must not exceed lr={self.lr}")
        if self.lr_warmup_epochs >= self.epochs:
            raise ConfigError("lr_warmup_epochs", self.lr_warmup_epochs, f"must be less than epochs={self.epochs}")
        if self.network == "imagenet" and (self.stem_multiplier * self.init_channels) % 2:
            raise ConfigError(
                "init_channels",
                self.init_channels,
                f"the ImageNet stem halves its stem_multiplier x C = {self.stem_multiplier * self.init_channels} "
                "channels; use an even init_channels",
            )
        check_supernet_shape(
            C=self.init_channels, k=self.k, layers=self.layers, steps=self.steps, multiplier=self.multiplier
        )
        if self.data_split == "folders" and self.dataset != "imagefolder":
            raise ConfigError(
                "data_split",
                self.data_split,
                f"'folders' takes the two halves from an imagefolder root's train/ and val/, not from {self.dataset}; "
                "use data_split='random' or dataset='imagefolder'",
            )
        return self


class TrainConfig(RunSettings):
    """One retraining run of a genotype from scratch (defaults: the CIFAR-10 protocol)."""

    PUBLISHED = PROTOCOLS

    network: ProtocolName = Field(
        "cifar", description="'cifar' (3x3 conv stem) or 'imagenet' (three stride-2 conv stem) network"
    )
    valid_portion: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="hold out this share of the training set as a validation split, reported each epoch (0 = none)",
    )
    # network
    init_channels: int = Field(36, ge=1, description="C, the channels of the first cell")
    layers: int = Field(20, ge=1, description="number of cells")
    auxiliary: bool = Field(True, description="train with the auxiliary head after cell 2*layers//3")
    auxiliary_weight: float = Field(0.4, ge=0, description="weight of the auxiliary head's loss")
    drop_path_prob: float = Field(
        0.3, ge=0, lt=1, description="final drop-path probability, ramped linearly from 0 over the epochs"
    )
    # schedule
    epochs: int = Field(600, ge=1, description="training epochs")
    batch_size: int = Field(96, ge=1, description="images per step")
    lr: float = Field(0.025, gt=0, description="SGD learning rate at the start of the schedule")
    lr_schedule: Literal["cosine", "linear", "pcdarts_linear"] = Field(
        "cosine",
        description="decay from lr to lr_min: cosine, linear, or pcdarts_linear (linear to lr_min 5 epochs before the "
        "end, "
        "then a 5x gentler slope: the PC-DARTS ImageNet script)",
    )
    lr_min: float = Field(0.0, ge=0, description="final learning rate")
    warmup_epochs: int = Field(0, ge=0, description="epochs of linear learning-rate warm-up at the start")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(3e-4, ge=0)
    grad_clip: float = Field(5.0, gt=0, description="max gradient norm")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the training loss")
    augment: AugmentName = Field(
        "cifar",
        description="training augmentation: 'cifar' (4-pixel padded random crop, flip) or 'imagenet' "
        "(random-resized crop, flip)",
    )
    cutout: int = Field(16, ge=0, description="cutout length on training batches (0 = off)")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.lr_min > self.lr:
            raise ConfigError("lr_min", self.lr_min, f"must not exceed lr={self.lr}")
        if self.warmup_epochs >= self.epochs:
            raise ConfigError("warmup_epochs", self.warmup_epochs, f"must be less than epochs={self.epochs}")
        if self.network == "imagenet" and self.init_channels % 2:
            raise ConfigError("init_channels", self.init_channels, "the ImageNet stem halves C; use an even number")
        return self


def _config_error(err: ValidationError, model: type[BaseModel]) -> ConfigError:
    """The first problem of a pydantic error as a one-line ConfigError naming the field."""
    first = err.errors()[0]
    own = first.get("ctx", {}).get("error")
    if isinstance(own, ConfigError):  # raised by our own checks, already names field and fix
        return own
    field = ".".join(str(p) for p in first["loc"]) or model.__name__
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(model.model_fields)
        return ConfigError(field, first["input"], f"unknown setting; known settings: {allowed}")
    return ConfigError(field, first["input"], first["msg"])
