"""Whole datasets as in-memory uint8 tensors plus their normalisation constants; or, for an image folder
with ``loading="stream"``, its file paths and labels, the images decoded batch by batch while a run
reads them (:mod:`pcdarts_core.data.stream`)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from pcdarts_core.data.idx import read_idx_images, read_idx_labels
from pcdarts_core.data.names import DATASETS
from pcdarts_core.errors import DataError

__all__ = ["DatasetBundle", "ImageFiles", "ImageTensors", "dataset_shape", "load_dataset"]

DEFAULT_ROOT = Path("~/.cache/pcdarts/data")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MINI_NPZ = "fashion_mnist_mini.npz"
#: A streamed image folder's mean/std come from this many of its training images (a seeded sample).
STREAM_STATS_IMAGES = 2048

_CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
_CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
_CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
_CIFAR100_STD = (0.2673, 0.2564, 0.2762)
_FASHION_MEAN = (0.2860,)
_FASHION_STD = (0.3530,)

_FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class ImageTensors:
    """One split: uint8 images N×C×H×W and int64 labels N, on the CPU."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class ImageFiles:
    """One split of an image folder that is not decoded up front: file paths and int64 labels N. Images
    are decoded on request (:meth:`read`) exactly as the in-memory loader decodes them, to uint8 3×S×S."""

    paths: tuple[str, ...]
    labels: torch.Tensor
    image_size: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def read(self, indices: Iterable[int]) -> torch.Tensor:
        """The images at ``indices`` as one uint8 tensor N×3×S×S; a file that does not decode is a DataError."""
        transform = imagefolder_transform(self.image_size)
        images = [read_image(self.paths[i], transform) for i in indices]
        if not images:
            return torch.empty((0, 3, self.image_size, self.image_size), dtype=torch.uint8)
        return torch.stack(images)

    def subset(self, indices: torch.Tensor) -> ImageFiles:
        """The files at ``indices``, in that order."""
        order = indices.tolist()
        return ImageFiles(tuple(self.paths[i] for i in order), self.labels[indices], self.image_size)


#: A split as a dataset holds it: decoded in memory, or as files decoded when read.
Split = ImageTensors | ImageFiles


@dataclass(frozen=True)
class DatasetBundle:
    """A loaded dataset: splits, shape facts and per-channel mean/std for [0, 1] images."""

    name: str
    train: Split
    test: Split | None
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    download: bool = True,
    image_size: int | None = None,
    loading: str = "memory",
) -> DatasetBundle:
    """Load dataset ``name`` (one of ``DATASETS``) into memory as uint8 CPU tensors; with ``loading="stream"``
    (``imagefolder`` only) list its files instead, to be decoded batch by batch (:class:`ImageFiles`)."""
    if name not in DATASETS:
        raise DataError(f"dataset {name!r} is unknown: use one of {', '.join(DATASETS)}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"image_size={image_size!r}: must be a positive integer (or None for the default)")
    if loading not in ("memory", "stream"):
        raise DataError(f"loading={loading!r}: use 'memory' or 'stream'")
    if loading == "stream" and name != "imagefolder":
        raise DataError(f"loading='stream' reads image files, {name} has none: use dataset 'imagefolder' or 'memory'")
    if name in ("cifar10", "cifar100"):
        bundle = _load_cifar(name, root, download)
    elif name == "fashion_mnist":
        bundle = _load_fashion_mnist(root)
    elif name == "fashion_mnist_mini":
        bundle = _load_fashion_mnist_mini()
    else:
        return _load_imagefolder(root, 32 if image_size is None else image_size, stream=loading == "stream")
    if image_size is not None and image_size != bundle.image_size:
        bundle = _resized(bundle, image_size)
    return bundle


#: (classes, input channels, image size) of the datasets with a fixed shape.
_SHAPES = {
    "cifar10": (10, 3, 32),
    "cifar100": (100, 3, 32),
    "fashion_mnist": (10, 1, 28),
    "fashion_mnist_mini": (10, 1, 28),
}


def dataset_shape(
    name: str, root: str | os.PathLike | None = None, image_size: int | None = None
) -> tuple[int, int, int]:
    """(classes, input channels, image size) of dataset ``name`` as :func:`load_dataset` would load it, without
    reading its images: what a network built for it needs (an image folder's classes are its sub-folders)."""
    if name not in DATASETS:
        raise DataError(f"dataset {name!r} is unknown: use one of {', '.join(DATASETS)}")
    if name == "imagefolder":
        from torchvision.datasets.folder import find_classes

        train_dir, _ = _imagefolder_dirs(root)
        try:
            classes, _ = find_classes(str(train_dir))
        except FileNotFoundError as err:
            raise DataError(f"imagefolder: {train_dir}: {err}") from None
        return len(classes), 3, 32 if image_size is None else image_size
    classes, channels, size = _SHAPES[name]
    return classes, channels, size if image_size is None else image_size


def _resized(bundle: DatasetBundle, size: int) -> DatasetBundle:
    """The dataset with every image resized to size×size (bilinear, antialiased, still uint8):
    e.g. smaller images for a quick study on a CPU."""
    from torchvision.transforms.v2 import functional as TF

    def resize(split: ImageTensors | None) -> ImageTensors | None:
        if split is None:
            return None
        return ImageTensors(TF.resize(split.images, [size, size], antialias=True).contiguous(), split.labels)

    return dataclasses.replace(bundle, train=resize(bundle.train), test=resize(bundle.test), image_size=size)


def _tensors(images: np.ndarray, labels: np.ndarray | list[int]) -> ImageTensors:
    """Wrap N×H×W or N×H×W×C uint8 arrays as N×C×H×W tensors with int64 labels."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return ImageTensors(images=x.contiguous(), labels=y)


# --- CIFAR -----------------------------------------------------------------


def _load_cifar(name: str, root: str | os.PathLike | None, download: bool) -> DatasetBundle:
    """CIFAR-10/100 through torchvision: local files first, then (optionally) a download."""
    from torchvision import datasets as tvd

    cls, folder, title = {
        "cifar10": (tvd.CIFAR10, "cifar-10-batches-py", "CIFAR-10"),
        "cifar100": (tvd.CIFAR100, "cifar-100-python", "CIFAR-100"),
    }[name]
    base = Path(root if root is not None else DEFAULT_ROOT).expanduser()
    try:
        splits = [cls(str(base), train=t, download=False) for t in (True, False)]
    except RuntimeError:
        splits = _download_cifar(cls, name, title, base, folder, download)
    train, test = (_tensors(s.data, s.targets) for s in splits)
    mean, std = (_CIFAR10_MEAN, _CIFAR10_STD) if name == "cifar10" else (_CIFAR100_MEAN, _CIFAR100_STD)
    return DatasetBundle(name, train, test, len(splits[0].classes), 3, 32, mean, std)


def _download_cifar(cls: type, name: str, title: str, base: Path, folder: str, download: bool) -> list:
    """Download CIFAR into ``base`` or raise a DataError that names both options."""
    missing = f"{name}: no {title} data under {base} (expected {base / folder})"
    if not download:
        raise DataError(f"{missing} and download=False: put the files there or pass download=True")
    try:
        return [cls(str(base), train=t, download=True) for t in (True, False)]
    except Exception as err:  # network, disk and checksum failures all end here
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(
            f"{missing} and download failed ({reason}): put the files there "
            "or run where the network allows downloading (download=True)"
        ) from None


# --- Fashion-MNIST -----------------------------------------------------------


def _find_idx(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` or ``directory/stem.gz``, whichever exists (plain first)."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _fashion_dirs(root: str | os.PathLike | None) -> list[Path]:
    """Directories searched for the Fashion-MNIST IDX files: the root (or the default root) in
    both the flat and torchvision's layout, then Debian's dataset-fashion-mnist package."""
    base = Path(root if root is not None else DEFAULT_ROOT).expanduser()
    return [base, base / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST]


def find_fashion_mnist_files(directory: Path) -> dict[str, Path] | None:
    """The four Fashion-MNIST IDX files in ``directory`` (plain or .gz), or None if any is missing."""
    files = {key: _find_idx(directory, stem) for key, stem in _FASHION_FILES.items()}
    return files if all(files.values()) else None  # type: ignore[return-value]


def _load_fashion_mnist(root: str | os.PathLike | None) -> DatasetBundle:
    """Fashion-MNIST from its four IDX files."""
    dirs = _fashion_dirs(root)
    for d in dirs:
        files = find_fashion_mnist_files(d)
        if files is not None:
            arrays = {key: _read_fashion_file(key, path) for key, path in files.items()}
            return _fashion_bundle("fashion_mnist", arrays)
    looked = ", ".join(str(d) for d in dirs)
    raise DataError(
        f"fashion_mnist: the four IDX files ({', '.join(_FASHION_FILES.values())}, optionally .gz) "
        f"are not in {looked}: pass root=<directory holding them> or `apt-get install dataset-fashion-mnist`"
    )


def _read_fashion_file(key: str, path: Path) -> np.ndarray:
    """Read one Fashion-MNIST IDX file."""
    return read_idx_images(path) if key.endswith("images") else read_idx_labels(path)


def _fashion_bundle(name: str, arrays: dict[str, np.ndarray]) -> DatasetBundle:
    """Check Fashion-MNIST arrays and wrap them in a bundle."""
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{name}: {split} images {images.shape} and labels {labels.shape} are not N×28×28 and N: "
                "re-download or rebuild the files"
            )
        if labels.size and int(labels.max()) >= 10:
            raise DataError(f"{name}: {split} label {int(labels.max())} is not in 0..9: re-download the files")
    train = _tensors(arrays["train_images"], arrays["train_labels"])
    test = _tensors(arrays["test_images"], arrays["test_labels"])
    return DatasetBundle(name, train, test, 10, 1, 28, _FASHION_MEAN, _FASHION_STD)


def _load_fashion_mnist_mini() -> DatasetBundle:
    """The balanced Fashion-MNIST subset shipped with the package."""
    resource = resources.files("pcdarts_core.data").joinpath(MINI_NPZ)
    try:
        with resources.as_file(resource) as path, np.load(path, allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key]) for key in _FASHION_FILES}
    except (OSError, KeyError, ValueError) as err:
        raise DataError(
            f"fashion_mnist_mini: cannot read the packaged {MINI_NPZ} ({err}): reinstall pcdarts_core "
            "or rebuild it with scripts/build_fashion_mnist_mini.py"
        ) from None
    return _fashion_bundle("fashion_mnist_mini", arrays)


# --- ImageFolder -------------------------------------------------------------


def _imagefolder_dirs(root: str | os.PathLike | None) -> tuple[Path, Path | None]:
    """(train directory, test directory or None) for an ImageFolder root."""
    if root is None:
        raise DataError(
            "imagefolder: data_root is not set: pass --data-root (data_root=) a folder with one sub-folder per class"
        )
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"imagefolder: root {base} is not a directory: pass a folder with one sub-folder per class")
    if not (base / "train").is_dir():
        return base, None
    for name in ("val", "test"):
        if (base / name).is_dir():
            return base / "train", base / name
    return base / "train", None


def imagefolder_transform(image_size: int):
    """What an image folder's images become, in memory or streamed: the shorter side resized to
    ``image_size``, the centre square cut out, as a uint8 3×S×S tensor."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(image_size), T.CenterCrop(image_size), T.PILToTensor()])


def read_image(path: str, transform) -> torch.Tensor:
    """One image file, decoded as torchvision's ImageFolder decodes it (RGB), through ``transform``."""
    from torchvision.datasets.folder import default_loader

    try:
        return transform(default_loader(path))
    except OSError as err:
        raise DataError(f"imagefolder: cannot decode {path} ({err}): remove or replace the file") from None


def _open_imagefolder(directory: Path, image_size: int):
    """torchvision ImageFolder over ``directory`` producing uint8 3×S×S tensors."""
    from torchvision import datasets as tvd

    try:
        return tvd.ImageFolder(str(directory), transform=imagefolder_transform(image_size))
    except FileNotFoundError as err:
        raise DataError(
            f"imagefolder: {directory} has no usable class folders ({err}): "
            "put each class's images in its own sub-folder (root/<class>/<image>)"
        ) from None


def _read_all(folder, image_size: int, label_map: list[int] | None = None) -> ImageTensors:
    """Decode every image of ``folder`` into one uint8 tensor N×3×S×S."""
    n = len(folder)
    images = torch.empty((n, 3, image_size, image_size), dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.long)
    for i, (path, y) in enumerate(folder.samples):
        images[i] = read_image(path, folder.transform)
        labels[i] = y if label_map is None else label_map[y]
    return ImageTensors(images=images, labels=labels)


def _list_files(folder, image_size: int, label_map: list[int] | None = None) -> ImageFiles:
    """The files of ``folder`` and their labels, in the order :func:`_read_all` decodes them."""
    paths = tuple(path for path, _ in folder.samples)
    labels = [y if label_map is None else label_map[y] for _, y in folder.samples]
    return ImageFiles(paths, torch.tensor(labels, dtype=torch.long), image_size)


def _test_label_map(train_classes: list[str], test_classes: list[str], test_dir: Path) -> list[int]:
    """Map test class indices onto the train class indices (by folder name)."""
    index = {c: i for i, c in enumerate(train_classes)}
    unknown = [c for c in test_classes if c not in index]
    if unknown:
        raise DataError(
            f"imagefolder: {test_dir} has classes not in the train folder ({', '.join(unknown)}): "
            "use the same class folder names in both"
        )
    return [index[c] for c in test_classes]


#: Images per chunk of the mean/std sums.
_STATS_CHUNK = 4096


def _mean_std(chunks: Iterable[torch.Tensor]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 N×C×H×W images scaled to [0, 1], summed chunk by chunk."""
    total = total_sq = torch.zeros((), dtype=torch.float64)
    count = 0
    for images in chunks:
        x = images.to(torch.float64) / 255.0
        total = total + x.sum(dim=(0, 2, 3))
        total_sq = total_sq + (x * x).sum(dim=(0, 2, 3))
        count += images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0.0).sqrt().clamp_min(1e-6)
    return tuple(mean.tolist()), tuple(std.tolist())


def _chunks(images: torch.Tensor) -> Iterable[torch.Tensor]:
    return (images[start : start + _STATS_CHUNK] for start in range(0, images.shape[0], _STATS_CHUNK))


def _stats_sample(n: int, size: int = STREAM_STATS_IMAGES) -> Sequence[int]:
    """The training images a streamed folder's mean/std come from: all of them up to ``size`` (so a small
    folder gets the in-memory loader's figures), else ``size`` of them drawn with seed 0, in file order."""
    if n <= size:
        return range(n)
    return sorted(torch.randperm(n, generator=torch.Generator().manual_seed(0))[:size].tolist())


def _load_imagefolder(root: str | os.PathLike | None, image_size: int, stream: bool = False) -> DatasetBundle:
    """An ImageFolder tree (optionally with train/ and val/ or test/) resized to image_size; with ``stream``
    only its file list, mean/std from a sample of at most :data:`STREAM_STATS_IMAGES` training images."""
    train_dir, test_dir = _imagefolder_dirs(root)
    read = _list_files if stream else _read_all
    train_folder = _open_imagefolder(train_dir, image_size)
    train = read(train_folder, image_size)
    test = None
    if test_dir is not None:
        test_folder = _open_imagefolder(test_dir, image_size)
        label_map = _test_label_map(train_folder.classes, test_folder.classes, test_dir)
        test = read(test_folder, image_size, label_map)
    if isinstance(train, ImageFiles):
        sample = list(_stats_sample(len(train)))
        chunks = (train.read(sample[s : s + _STATS_CHUNK]) for s in range(0, len(sample), _STATS_CHUNK))
        mean, std = _mean_std(chunks)
    else:
        mean, std = _mean_std(_chunks(train.images))
    return DatasetBundle("imagefolder", train, test, len(train_folder.classes), 3, image_size, mean, std)
