"""The names of the datasets :func:`~pcdarts_core.data.load_dataset` knows, without importing torch
(the settings are checked against them)."""

from __future__ import annotations

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "fashion_mnist", "fashion_mnist_mini", "imagefolder")
