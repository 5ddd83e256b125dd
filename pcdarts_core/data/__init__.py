"""Datasets as in-memory uint8 tensors (or streamed image files), batched augmentation and device-side batching.

The names below are imported on first use (see :mod:`pcdarts_core.lazy_exports`): ``DATASETS``
comes without torch.
"""

from pcdarts_core.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".augment": ("cutout", "normalize", "random_crop", "random_hflip", "random_resized_crop"),
        ".batches": ("Batches", "DeviceBatches", "split_indices"),
        ".datasets": ("DatasetBundle", "ImageFiles", "ImageTensors", "dataset_shape", "load_dataset"),
        ".idx": ("read_idx", "read_idx_images", "read_idx_labels"),
        ".names": ("DATASETS",),
        ".stream": ("FileBatches", "FileLoader"),
    },
)
