"""Checks before a new study writes anything: the folder is free and writable, the data loads, and a
tracking server given in the spec answers; and the warnings worth reading before hours are spent (a
search whose α cannot move)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from pcdarts_core import load_dataset
from pcdarts_core.arch_budget import budget_warning
from pcdarts_core.errors import DataError, UserInputError

from .errors import SpecError
from .spec import DatasetSpec, StudySpec, retrain_config, retrain_dataset, setting_label
from .study_files import STATE_FILE
from .tracking import StudyTracker

#: Bytes the write check writes (and removes): a full disk fails here, not in the middle of a stage.
PROBE_BYTES = 1 << 16


def preflight(spec: StudySpec, folder: Path) -> list[str]:
    """All the checks, in this order; each raises one clear error. Returns the warnings, one line each."""
    check_free(folder)
    check_writable(folder)
    train_images = check_data(spec)
    if spec.tracking.uri is not None:
        StudyTracker.connect(spec.tracking.uri, spec.experiment_name(), None)
    return architecture_budget_warnings(spec, train_images)


def check_free(folder: Path) -> None:
    """``folder`` holds no study yet."""
    if (folder / STATE_FILE).exists():
        raise UserInputError(
            f"--out {folder}: already holds a study; pass --resume to continue it or choose another --out"
        )


def check_data(spec: StudySpec) -> int:
    """Load the dataset once on the driver before any trial: a missing or malformed dataset is one
    clear error instead of every trial failing, and CIFAR is downloaded once, not by each trial. So is
    the retraining's own data (``retrain.dataset``), which needs the test split the retraining reports.
    Returns the number of training images of the search's data. Data the trials stream
    (``data_loading: stream``) is listed, not decoded."""
    streamed = any(config.data_loading == "stream" for _, config in spec.grid)
    train_images = _check_dataset(spec.dataset, "dataset", "stream" if streamed else "memory")
    if spec.transfer:
        _check_dataset(retrain_dataset(spec), "retrain.dataset", retrain_config(spec, seed=0).data_loading)
    return train_images


def _check_dataset(d: DatasetSpec, where: str, loading: str) -> int:
    try:
        data = load_dataset(d.name, d.root, download=d.download, image_size=d.image_size, loading=loading)
    except DataError as err:
        raise SpecError(where, str(err)) from None
    if data.test is None:
        raise SpecError(
            f"{where}.root", f"{d.root}: has no test split (val/ or test/), which the retrain stage reports; add one"
        )
    return len(data.train)


def architecture_budget_warnings(spec: StudySpec, train_images: int) -> list[str]:
    """One line per distinct warning, naming the settings (:func:`~orchestrator.spec.setting_label`, seeds
    aside) whose α cannot move far; see :mod:`pcdarts_core.arch_budget`."""
    found: dict[str, list[str]] = {}
    labels: list[str] = []
    for values, config in spec.grid:
        label = setting_label(values)
        labels.append(label)
        if (message := budget_warning(config, train_images)) is not None and label not in found.get(message, []):
            found.setdefault(message, []).append(label)
    every = set(labels)
    return [
        f"{'every search' if set(where) == every else 'searches ' + '; '.join(where)}: {message}"
        for message, where in found.items()
    ]


def check_writable(folder: Path) -> None:
    """``folder`` can be created and written (a probe file is written, synced and removed). Folders
    made for the check are removed again, so a refused study leaves nothing behind."""
    made: list[Path] = []
    place = folder.absolute()
    while not place.exists() and place != place.parent:
        made.append(place)
        place = place.parent
    if not place.is_dir():
        raise UserInputError(f"--out {folder}: {place} is a file, not a folder; choose another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".write-check-") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        raise UserInputError(
            f"--out {folder}: cannot write there ({err.strerror or err}); choose another --out, or free space / "
            "fix the permissions there"
        ) from None
    finally:
        for path in made:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()
