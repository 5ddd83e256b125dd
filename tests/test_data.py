"""Tests for pcdarts_core.data: datasets, IDX reader, augmentation and batching (CPU, fast)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pcdarts_core.data import (
    DATASETS,
    DeviceBatches,
    cutout,
    dataset_shape,
    load_dataset,
    normalize,
    random_crop,
    random_hflip,
    read_idx,
    read_idx_images,
    read_idx_labels,
    split_indices,
)
from pcdarts_core.errors import DataError


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write a uint8 array as an IDX file, independently of the reader under test."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


# --- datasets ------------------------------------------------------------------


def test_fashion_mnist_mini_shapes_and_balance():
    b = load_dataset("fashion_mnist_mini")
    assert (b.name, b.num_classes, b.in_channels, b.image_size) == ("fashion_mnist_mini", 10, 1, 28)
    assert b.train.images.shape == (2000, 1, 28, 28) and b.train.images.dtype == torch.uint8
    assert b.test is not None and b.test.images.shape == (500, 1, 28, 28)
    assert b.train.labels.dtype == torch.int64 and b.test.labels.dtype == torch.int64
    assert torch.bincount(b.train.labels, minlength=10).tolist() == [200] * 10
    assert torch.bincount(b.test.labels, minlength=10).tolist() == [50] * 10
    assert b.mean == (0.2860,) and b.std == (0.3530,)
    assert b.train.images.float().std() > 10  # real images, not blank


def test_fixed_size_dataset_is_resized_on_request():
    full = load_dataset("fashion_mnist_mini")
    small = load_dataset("fashion_mnist_mini", image_size=14)
    assert small.image_size == 14 and small.train.images.shape == (len(full.train), 1, 14, 14)
    assert small.test.images.shape == (len(full.test), 1, 14, 14) and small.train.images.dtype == torch.uint8
    assert torch.equal(small.train.labels, full.train.labels)
    # a resized image is still the same picture: its mean brightness barely moves
    assert abs(small.train.images.float().mean() - full.train.images.float().mean()) < 2.0


def test_unknown_dataset_names_value_and_choices():
    with pytest.raises(DataError) as info:
        load_dataset("mnist3d")
    assert "mnist3d" in str(info.value)
    assert all(name in str(info.value) for name in DATASETS)


@pytest.mark.parametrize(("name", "folder"), [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_cifar_missing_root_without_download(tmp_path, name, folder):
    with pytest.raises(DataError) as info:
        load_dataset(name, root=tmp_path / "nothing", download=False)
    msg = str(info.value)
    assert name in msg and str(tmp_path / "nothing" / folder) in msg and "download=True" in msg


def test_fashion_mnist_missing_files_lists_places(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("fashion_mnist", root=tmp_path)
    msg = str(info.value)
    assert str(tmp_path) in msg and "FashionMNIST" in msg and "apt-get install dataset-fashion-mnist" in msg


def test_fashion_mnist_from_torchvision_layout(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), compress=True)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    b = load_dataset("fashion_mnist", root=tmp_path)
    assert b.train.images.shape == (6, 1, 28, 28) and b.test.images.shape == (4, 1, 28, 28)
    assert b.train.labels.tolist() == [0, 1, 2, 3, 4, 5]


def _png(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_imagefolder_train_val(tmp_path):
    colors = {"cat": (255, 0, 0), "dog": (0, 255, 0), "frog": (0, 0, 255)}
    for cls, color in colors.items():
        for i in range(2):
            _png(tmp_path / "train" / cls / f"{i}.png", (20 + 5 * i, 30), color)
    _png(tmp_path / "val" / "dog" / "0.png", (12, 12), colors["dog"])
    _png(tmp_path / "val" / "frog" / "0.png", (40, 16), colors["frog"])
    b = load_dataset("imagefolder", root=tmp_path, image_size=16)
    assert (b.num_classes, b.in_channels, b.image_size) == (3, 3, 16)
    assert b.train.images.shape == (6, 3, 16, 16) and b.train.images.dtype == torch.uint8
    assert sorted(b.train.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert b.test is not None and sorted(b.test.labels.tolist()) == [1, 2]  # mapped to train indices
    for img, label in zip(b.test.images, b.test.labels):
        assert img[int(label)].min() > 200  # dog is green (channel 1), frog blue (channel 2)
    assert len(b.mean) == 3 and all(abs(m - 1 / 3) < 0.01 for m in b.mean)
    # the shape a network for it needs, read without loading an image
    assert dataset_shape("imagefolder", tmp_path, 16) == (3, 3, 16) == (b.num_classes, b.in_channels, b.image_size)


def test_dataset_shape_of_the_named_datasets_is_what_loading_gives():
    mini = load_dataset("fashion_mnist_mini", image_size=14)
    assert dataset_shape("fashion_mnist_mini", image_size=14) == (mini.num_classes, mini.in_channels, mini.image_size)
    assert dataset_shape("cifar100") == (100, 3, 32) and dataset_shape("cifar10", image_size=24) == (10, 3, 24)
    with pytest.raises(DataError, match="unknown"):
        dataset_shape("mnist")


def test_imagefolder_flat_root_has_no_test(tmp_path):
    for cls in ("a", "b"):
        _png(tmp_path / cls / "x.png", (8, 8), (10, 20, 30))
    b = load_dataset("imagefolder", root=tmp_path)
    assert b.test is None and b.num_classes == 2 and b.train.images.shape == (2, 3, 32, 32)


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataError, match="root"):
        load_dataset("imagefolder")
    with pytest.raises(DataError) as info:
        load_dataset("imagefolder", root=tmp_path / "missing")
    assert str(tmp_path / "missing") in str(info.value)
    with pytest.raises(DataError) as info:
        load_dataset("imagefolder", root=tmp_path)  # exists but empty
    assert str(tmp_path) in str(info.value)


# --- IDX reader ------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    images = np.random.default_rng(1).integers(0, 256, (3, 5, 4)).astype(np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    suffix = ".gz" if compress else ""
    got_images = read_idx_images(_write_idx(tmp_path / f"img{suffix}", images, compress))
    got_labels = read_idx_labels(_write_idx(tmp_path / f"lab{suffix}", labels, compress))
    assert got_images.dtype == np.uint8 and np.array_equal(got_images, images)
    assert got_labels.dtype == np.uint8 and np.array_equal(got_labels, labels)


def test_idx_malformed(tmp_path):
    bad_magic = tmp_path / "bad_magic"
    bad_magic.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 2) + b"\x00\x01")
    truncated = _write_idx(tmp_path / "truncated", np.zeros((2, 3, 3), np.uint8))
    truncated.write_bytes(truncated.read_bytes()[:-1])
    labels = _write_idx(tmp_path / "labels", np.zeros(4, np.uint8))
    bad_gz = tmp_path / "bad.gz"
    bad_gz.write_bytes(b"\x1f\x8b" + b"junk" * 4)
    for path in (bad_magic, truncated, bad_gz):
        with pytest.raises(DataError, match=str(path.name)):
            read_idx(path)
    with pytest.raises(DataError, match="2049 is not 2051"):
        read_idx_images(labels)


# --- augmentation ----------------------------------------------------------------


def _shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[i, j] = img[i + dy, j + dx], zero outside (reference implementation)."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    for i in range(h):
        for j in range(w):
            if 0 <= i + dy < h and 0 <= j + dx < w:
                out[..., i, j] = img[..., i + dy, j + dx]
    return out


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_random_crop_shifts_each_sample(dtype):
    n, pad = 12, 4
    base = (torch.arange(64).view(1, 1, 8, 8) + 1).to(dtype)  # unique, non-zero values
    x = base.expand(n, 2, 8, 8).clone()
    out = random_crop(x, pad, _gen(3))
    assert out.shape == x.shape and out.dtype == dtype
    offsets = []
    for k in range(n):
        matches = [
            (dy, dx)
            for dy in range(-pad, pad + 1)
            for dx in range(-pad, pad + 1)
            if torch.equal(out[k], _shifted(x[k], dy, dx))
        ]
        assert len(matches) == 1
        offsets.append(matches[0])
    assert len(set(offsets)) > 1  # samples get their own offsets
    assert torch.equal(out, random_crop(x, pad, _gen(3)))  # reproducible


def test_random_crop_covers_all_offsets():
    x = torch.ones(2000, 1, 9, 9, dtype=torch.uint8)
    out = random_crop(x, 2, _gen(0))
    zero_rows = (out[:, 0].sum(dim=2) == 0).sum(dim=1)  # rows fully in the padding
    assert set(zero_rows.tolist()) == {0, 1, 2}


def test_random_hflip_about_half():
    x = torch.arange(10, dtype=torch.float32).expand(1000, 1, 3, 10).clone()
    out = random_hflip(x, _gen(0))
    flipped = (out == x.flip(-1)).flatten(1).all(dim=1)
    kept = (out == x).flatten(1).all(dim=1)
    assert bool((flipped ^ kept).all())
    assert 0.4 < flipped.float().mean().item() < 0.6


def test_normalize_values():
    x = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = normalize(x, (0.5, 0.5, 0.2), (0.25, 0.5, 0.1))
    assert out.dtype == torch.float32
    assert torch.allclose(out[:, :, 0, 0], torch.tensor([[-2.0, 1.0, 0.0]] * 2), atol=1e-6)


def test_cutout_square():
    n, length = 300, 8
    out = cutout(torch.ones(n, 3, 32, 32), length, _gen(0))
    hole = out == 0
    assert torch.equal(hole, hole[:, :1].expand_as(hole))  # same hole in every channel
    sizes = []
    for m in hole[:, 0]:
        rows, cols = m.any(dim=1), m.any(dim=0)
        assert torch.equal(m, rows[:, None] & cols[None, :])  # a rectangle
        r, c = int(rows.sum()), int(cols.sum())
        assert 1 <= r <= length and 1 <= c <= length
        sizes.append(r * c)
    assert sizes.count(length * length) > n // 3  # interior holes are full squares
    assert min(sizes) < length * length  # border holes are clipped


# --- batching --------------------------------------------------------------------


def _indexed_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose pixels all equal their index (mod 256), labels = index."""
    images = (torch.arange(n) % 256).to(torch.uint8).view(n, 1, 1, 1).expand(n, 3, 8, 8).contiguous()
    return images, torch.arange(n)


def _pass(batches: DeviceBatches) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(batches)


def test_device_batches_cover_every_sample_once():
    images, labels = _indexed_images(103)
    db = DeviceBatches(images, labels, batch_size=10, mean=(0.5,) * 3, std=(0.5,) * 3, augment=False, generator=_gen(0))
    assert len(db) == 11
    out = _pass(db)
    assert len(out) == 11 and out[-1][1].shape == (3,)
    seen = torch.cat([y for _, y in out])
    assert sorted(seen.tolist()) == list(range(103)) and seen.tolist() != list(range(103))
    x, y = out[0]
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (10, 3, 8, 8)
    assert torch.allclose(x[:, 0, 0, 0], (y.float() / 255 - 0.5) / 0.5)  # images follow their labels
    dropped = DeviceBatches(
        images, labels, batch_size=10, mean=(0.5,) * 3, std=(0.5,) * 3, augment=False, drop_last=True
    )
    assert len(dropped) == 10 and len(_pass(dropped)) == 10


def test_device_batches_no_shuffle_in_order():
    images, labels = _indexed_images(7)
    db = DeviceBatches(images, labels, batch_size=3, mean=(0,) * 3, std=(1,) * 3, augment=False, shuffle=False)
    assert torch.cat([y for _, y in db]).tolist() == list(range(7))


def test_device_batches_reproducible_by_seed():
    images = torch.randint(0, 256, (40, 3, 12, 12), dtype=torch.uint8, generator=_gen(9))
    labels = torch.arange(40)

    def run(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        db = DeviceBatches(
            images,
            labels,
            batch_size=16,
            mean=(0.5,) * 3,
            std=(0.25,) * 3,
            augment=True,
            cutout=4,
            generator=_gen(seed),
        )
        return _pass(db) + _pass(db)  # two passes

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))
    assert not torch.equal(a[0][1], a[3][1])  # the second pass has a new order
    assert a[0][0].shape == (16, 3, 12, 12) and a[0][0].dtype == torch.float32


def test_split_indices():
    first, rest = split_indices(11, 0.5, seed=4)
    assert len(first) == round(11 * 0.5) and len(first) + len(rest) == 11
    assert sorted(torch.cat([first, rest]).tolist()) == list(range(11))
    again = split_indices(11, 0.5, seed=4)
    assert torch.equal(first, again[0]) and torch.equal(rest, again[1])
    other = split_indices(11, 0.5, seed=5)
    assert not torch.equal(first, other[0])
    with pytest.raises(ValueError, match="portion"):
        split_indices(10, 1.5, seed=0)


def test_one_channel_batches_have_standard_strides(mini_data):
    # A permuted one-channel batch counts as contiguous but keeps channels-last strides; those sent
    # a oneDNN weight-gradient kernel into a near-endless loop on an AVX2 CPU. Batches must be plain NCHW.
    batches = DeviceBatches(
        mini_data.train.images[:8],
        mini_data.train.labels[:8],
        batch_size=8,
        mean=mini_data.mean,
        std=mini_data.std,
        augment=True,
    )
    x, _ = next(iter(batches))
    assert x.stride() == (28 * 28, 28 * 28, 28, 1)
