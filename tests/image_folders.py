"""Generated image folders for the tests: class folders of noisy images under ``train/`` and ``val/``, each class
tinted its own colour so that a search can tell them apart; and a tiny search of such a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pcdarts_core import SearchConfig


def write_image_folder(root: Path, *, classes: int = 3, train: int = 12, val: int = 4, size=(30, 40)) -> Path:
    """``root/train/class<c>/im<i>.png`` (``train`` per class) and ``root/val/...`` (``val`` per class), RGB of
    ``size`` (height, width); returns ``root``."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        for c in range(classes):
            (root / split / f"class{c}").mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 160, (*size, 3), dtype=np.uint8)
                pixels[..., c % 3] += 90
                Image.fromarray(pixels).save(root / split / f"class{c}" / f"im{i}.png")
    return root


def folder_search_config(folder: Path, **changes) -> SearchConfig:
    """A tiny search of ``folder`` on the CPU: 16x16 images, C=4, 3 cells, K=2, batches of 8, 2 epochs."""
    settings = dict(
        dataset="imagefolder",
        data_root=str(folder),
        image_size=16,
        init_channels=4,
        layers=3,
        k=2,
        batch_size=8,
        epochs=2,
        warmup_epochs=1,
        arch_lr=0.05,
        device="cpu",
    )
    return SearchConfig(**{**settings, **changes})
