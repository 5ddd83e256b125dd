"""Shared fixtures: a tiny search configuration that runs in seconds on a 2-core CPU, and the environment of a
study driver the tests start."""

from __future__ import annotations

import os
import shutil
import tempfile

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


@pytest.fixture
def ray_env():
    """The environment of a study driver (and of the Ray it starts): a short Ray folder of its own (Ray's socket
    paths must stay short; removed afterwards), no usage reports, unbuffered output, and none of the fault hooks'
    variables (tests/fault_hooks.py) a test may have set for itself."""
    from fault_hooks import HOOK_VARIABLES

    short = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": short, "PYTHONUNBUFFERED": "1"}
    for name in HOOK_VARIABLES:
        env.pop(name, None)
    yield env
    shutil.rmtree(short, ignore_errors=True)
