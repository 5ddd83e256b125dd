"""How a stage's Tune experiment keeps its state and its trials' checkpoints, so that what it writes grows
linearly with trials x epochs.

Ray Tune snapshots the whole experiment (every trial's state) into the storage. With
``CheckpointConfig(num_to_keep=n)`` it forces a snapshot whenever a trial has saved ``n`` checkpoints since
the last one, so that the snapshot never names a checkpoint it has deleted: with one checkpoint an epoch,
that is a snapshot of all N trials per epoch of any trial, N² x epochs in all. Here instead:

- Tune keeps every checkpoint (``num_to_keep=None``: no forced snapshots), remembers only the newest one's
  metrics (``TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE``, so a trial's state does not grow with its
  epochs) and snapshots on its own clock, ``TUNE_GLOBAL_CHECKPOINT_S`` = :func:`snapshot_period_s`, which
  grows with the number of trials, so the snapshots' bytes grow with the study's duration, not its square
  (:func:`tune_environment`).
- :class:`CheckpointPruner` deletes a trial's older checkpoints once two later snapshots have named newer
  ones. Tune calls every callback's ``get_state`` while it writes a snapshot, so at snapshot k the pruner
  deletes what is older than the checkpoints snapshot k-2 named: snapshot k-1's upload to the storage may
  still be running (Tune then skips the next one), k-2's has had a whole period to end. This relies on
  when Ray 2.60's Tune calls ``get_state`` and assumes an upload takes less than a snapshot period (seconds
  on a local or NFS storage).
- Once ``fit`` has returned (after Tune's final snapshot, written and waited for),
  :func:`keep_newest_checkpoints` leaves each trial its newest checkpoint only: what the study reads (a
  search's α/β history, a retraining's trained network). When ``fit`` raises, nothing more is deleted.

After a crash of the driver, ``--resume`` restores the experiment from its last snapshot: a trial continues
from the checkpoint that snapshot names (still there), so it may redo up to one snapshot period of epochs.
A stage started by an older version keeps, on resume, the settings Tune saved with it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ray import tune

#: The seconds between Tune's snapshots of an experiment: at least Tune's own minimum, and half a second per
#: trial, so that the snapshots' total size (trials x number of snapshots) stays linear in the study's length.
MIN_SNAPSHOT_PERIOD_S = 10.0
SNAPSHOT_S_PER_TRIAL = 0.5

_INDEX = re.compile(r"checkpoint_(\d+)$")


def snapshot_period_s(trials: int) -> float:
    return max(MIN_SNAPSHOT_PERIOD_S, SNAPSHOT_S_PER_TRIAL * trials)


def tune_environment(trials: int, environ: dict[str, str]) -> dict[str, str]:
    """The Tune settings of a stage of ``trials`` trials (read by Tune when ``fit`` starts); a snapshot period
    the user set in ``environ`` is kept."""
    return {
        "TUNE_GLOBAL_CHECKPOINT_S": environ.get("TUNE_GLOBAL_CHECKPOINT_S") or f"{snapshot_period_s(trials):g}",
        "TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE": "1",
    }


def _index(path: str) -> int | None:
    found = _INDEX.search(path.rstrip("/"))
    return int(found.group(1)) if found else None


def _delete(filesystem: Any, path: str) -> None:
    try:
        filesystem.delete_dir(path)
    except OSError:
        pass  # gone already, or not ours to delete: the study does not depend on it


class CheckpointPruner(tune.Callback):
    """Deletes each trial's checkpoints that no written snapshot can name any more (see the module docstring)."""

    def __init__(self) -> None:
        self._unpruned: dict[str, list[tune.Checkpoint]] = defaultdict(list)
        self._latest: dict[str, int] = {}  # newest checkpoint index of each trial seen so far
        self._named: list[dict[str, int]] = []  # what the last two snapshots named, oldest first

    def __getstate__(self) -> dict[str, Any]:
        return {}  # Tune pickles its callbacks with the experiment; a restored one starts afresh

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: tune.Checkpoint, **info):
        index = _index(checkpoint.path)
        if index is None:
            return
        self._unpruned[trial.trial_id].append(checkpoint)
        self._latest[trial.trial_id] = max(index, self._latest.get(trial.trial_id, -1))

    def get_state(self) -> None:
        """Called by Tune as it writes a snapshot, which names each trial's ``_latest``."""
        if len(self._named) == 2:
            for trial_id, keep_from in self._named[0].items():
                self._prune(trial_id, keep_from)
        self._named = [*self._named[-1:], dict(self._latest)]
        return None

    def _prune(self, trial_id: str, keep_from: int) -> None:
        kept = []
        for checkpoint in self._unpruned.get(trial_id, []):
            if (_index(checkpoint.path) or 0) < keep_from:
                _delete(checkpoint.filesystem, checkpoint.path)
            else:
                kept.append(checkpoint)
        self._unpruned[trial_id] = kept


def keep_newest_checkpoints(checkpoints: Iterable[tune.Checkpoint | None]) -> None:
    """Delete every ``checkpoint_*`` folder beside each of these (each trial's newest) that is older than it,
    including those an earlier session of the experiment left."""
    import pyarrow.fs as pafs

    for newest in checkpoints:
        keep_from = _index(newest.path) if newest is not None else None
        if keep_from is None:
            continue
        folder = newest.path.rstrip("/").rsplit("/", 1)[0]
        for entry in newest.filesystem.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
            index = _index(entry.path)
            if entry.type == pafs.FileType.Directory and index is not None and index < keep_from:
                _delete(newest.filesystem, entry.path)
