"""Checks before a new study writes anything: the folder is free and writable, the data loads, and a
tracking server given in the spec answers."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from pcdarts_core import load_dataset
from pcdarts_core.errors import DataError, UserInputError

from .errors import SpecError
from .spec import StudySpec
from .study_files import STATE_FILE
from .tracking import StudyTracker

#: Bytes the write check writes (and removes): a full disk fails here, not in the middle of a stage.
PROBE_BYTES = 1 << 16


def preflight(spec: StudySpec, folder: Path) -> None:
    """All the checks, in this order; each raises one clear error."""
    check_free(folder)
    check_writable(folder)
    check_data(spec)
    if spec.tracking.uri is not None:
        StudyTracker.connect(spec.tracking.uri, spec.experiment_name(), None)


def check_free(folder: Path) -> None:
    """``folder`` holds no study yet."""
    if (folder / STATE_FILE).exists():
        raise UserInputError(
            f"--out {folder}: already holds a study; pass --resume to continue it or choose another --out"
        )


def check_data(spec: StudySpec) -> None:
    """Load the dataset once on the driver before any trial: a missing or malformed dataset is one
    clear error instead of every trial failing, and CIFAR is downloaded once, not by each trial."""
    d = spec.dataset
    try:
        data = load_dataset(d.name, d.root, download=d.download, image_size=d.image_size)
    except DataError as err:
        raise SpecError("dataset", str(err)) from None
    if data.test is None:
        raise SpecError(
            "dataset.root", f"{d.root}: has no test split (val/ or test/), which the retrain stage reports; add one"
        )


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
