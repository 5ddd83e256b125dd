"""Generated image folders for the tests: class folders of noisy images under ``train/`` and ``val/``, each class
tinted its own colour so that a search can tell them apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


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
