"""Shared fixtures: a tiny search configuration that runs in seconds on a 2-core CPU."""

from __future__ import annotations

import pytest

from pcdarts_core import SearchConfig, load_dataset

TINY = dict(
    dataset="fashion_mnist_mini",
    init_channels=4,
    layers=3,
    batch_size=50,
    train_subset=200,
    epochs=3,
    warmup_epochs=1,
    device="cpu",
)


@pytest.fixture(scope="session")
def mini_data():
    return load_dataset("fashion_mnist_mini")


@pytest.fixture
def tiny_config() -> SearchConfig:
    return SearchConfig(**TINY)
