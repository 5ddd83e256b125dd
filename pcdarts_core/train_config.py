"""The typed settings of one retraining of a genotype, validated once when they are made.

The defaults are the CIFAR-10 evaluation protocol of DARTS and PC-DARTS (600 epochs, batch 96,
SGD lr 0.025 cosine to 0, momentum 0.9, weight decay 3e-4, C=36, 20 layers, auxiliary head
weighted 0.4, cutout 16, drop path 0.3, gradient clip 5). ``TrainConfig.protocol("imagenet")``
gives the PC-DARTS ImageNet protocol (250 epochs, batch 1024, lr 0.5 with 5 warm-up epochs and
the script's linear decay, weight decay 3e-5, label smoothing 0.1, C=48, 14 layers); any field can then
still be changed.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Literal

from pydantic import Field, model_validator

from .config import RunSettings
from .errors import ConfigError

Protocol = Literal["cifar", "imagenet"]


class TrainConfig(RunSettings):
    """One retraining run of a genotype from scratch (defaults: the CIFAR-10 protocol)."""

    network: Protocol = Field("cifar", description="'cifar' (3x3 conv stem) or 'imagenet' (three stride-2 conv stem) network")
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
    drop_path_prob: float = Field(0.3, ge=0, lt=1, description="final drop-path probability, ramped linearly from 0 over the epochs")
    # schedule
    epochs: int = Field(600, ge=1, description="training epochs")
    batch_size: int = Field(96, ge=1, description="images per step")
    lr: float = Field(0.025, gt=0, description="SGD learning rate at the start of the schedule")
    lr_schedule: Literal["cosine", "linear", "pcdarts_linear"] = Field(
        "cosine",
        description="decay from lr to lr_min: cosine, linear, or pcdarts_linear (linear to lr_min 5 epochs before the end, "
        "then a 5x gentler slope: the PC-DARTS ImageNet script)",
    )
    lr_min: float = Field(0.0, ge=0, description="final learning rate")
    warmup_epochs: int = Field(0, ge=0, description="epochs of linear learning-rate warm-up at the start")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(3e-4, ge=0)
    grad_clip: float = Field(5.0, gt=0, description="max gradient norm")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the training loss")
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

    @classmethod
    def protocol(cls, name: str, **changes: Any) -> TrainConfig:
        """The settings of a published protocol ("cifar" or "imagenet"), with ``changes`` applied."""
        if name not in PROTOCOLS:
            raise ConfigError("protocol", name, f"unknown protocol; use one of {', '.join(PROTOCOLS)}")
        return cls(**{**PROTOCOLS[name], **changes})


#: The settings each published protocol changes from the field defaults.
PROTOCOLS: MappingProxyType[str, dict[str, Any]] = MappingProxyType(
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
