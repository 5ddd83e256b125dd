"""Datasets as in-memory uint8 tensors, batched augmentation and device-side batching."""

from pcdarts_core.data.augment import cutout, normalize, random_crop, random_hflip
from pcdarts_core.data.batches import DeviceBatches, split_indices
from pcdarts_core.data.datasets import DATASETS, DatasetBundle, ImageTensors, load_dataset
from pcdarts_core.data.idx import read_idx, read_idx_images, read_idx_labels

__all__ = [
    "DATASETS",
    "DatasetBundle",
    "DeviceBatches",
    "ImageTensors",
    "cutout",
    "load_dataset",
    "normalize",
    "random_crop",
    "random_hflip",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "split_indices",
]
