"""Build pcdarts_core/data/fashion_mnist_mini.npz, a small balanced Fashion-MNIST subset.

The subset holds 200 training images per class (2,000) drawn from
``train-images-idx3-ubyte`` and 50 test images per class (500) drawn from
``t10k-images-idx3-ubyte``, chosen with ``numpy.random.default_rng(0)``, so a
rebuild from the same files gives the same bytes of array data.

The source files come from Debian's ``dataset-fashion-mnist`` package. Either
install it (``apt-get install dataset-fashion-mnist``; the files land in
/usr/share/datasets/fashion-mnist) or unpack it without installing::

    apt-get download dataset-fashion-mnist
    dpkg-deb -x dataset-fashion-mnist_*.deb /tmp/fm
    python scripts/build_fashion_mnist_mini.py --source /tmp/fm/usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
try:
    from pcdarts_core.data.datasets import DEBIAN_FASHION_MNIST, find_fashion_mnist_files
    from pcdarts_core.data.idx import read_idx_images, read_idx_labels
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))
    from pcdarts_core.data.datasets import DEBIAN_FASHION_MNIST, find_fashion_mnist_files
    from pcdarts_core.data.idx import read_idx_images, read_idx_labels

SEED = 0
TRAIN_PER_CLASS = 200
TEST_PER_CLASS = 50
NUM_CLASSES = 10


def balanced_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` random samples of each class, in a random order."""
    chosen = []
    for c in range(NUM_CLASSES):
        pool = np.flatnonzero(labels == c)
        if pool.size < per_class:
            raise SystemExit(f"class {c} has only {pool.size} samples, need {per_class}")
        chosen.append(np.sort(rng.choice(pool, size=per_class, replace=False)))
    return rng.permutation(np.concatenate(chosen))


def build(source: Path, out: Path) -> dict[str, np.ndarray]:
    """Read the IDX files in ``source``, pick the subset and save it to ``out``."""
    files = find_fashion_mnist_files(source)
    if files is None:
        raise SystemExit(
            f"{source}: the four Fashion-MNIST IDX files are not there: pass --source <directory with them>"
        )
    rng = np.random.default_rng(SEED)
    arrays: dict[str, np.ndarray] = {}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        images = read_idx_images(files[f"{split}_images"])
        labels = read_idx_labels(files[f"{split}_labels"])
        index = balanced_subset(labels, per_class, rng)
        arrays[f"{split}_images"] = images[index]
        arrays[f"{split}_labels"] = labels[index].astype(np.uint8)
        arrays[f"{split}_source_index"] = index.astype(np.int32)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return arrays


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=DEBIAN_FASHION_MNIST,
        help="directory with the four Fashion-MNIST IDX files (plain or .gz)",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "pcdarts_core" / "data" / "fashion_mnist_mini.npz", help="output .npz path"
    )
    args = parser.parse_args(argv)
    arrays = build(args.source, args.out)
    size = args.out.stat().st_size
    print(
        f"wrote {args.out} ({size:,} bytes): train {arrays['train_images'].shape}, test {arrays['test_images'].shape}"
    )


if __name__ == "__main__":
    main()
