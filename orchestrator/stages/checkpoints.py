"""How a stage's Tune experiment keeps its state and its trials' checkpoints, so that what it writes grows
linearly with trials x epochs.

Ray Tune snapshots the whole experiment (every trial's state, ~35 KB a trial) into the storage. With
``CheckpointConfig(num_to_keep=n)`` it forces a snapshot whenever a trial has saved ``n`` checkpoints since
the last one, so that the snapshot never names a checkpoint it has deleted: with one checkpoint an epoch,
that is a snapshot of all N trials per epoch of any trial, N² x epochs in all. Here instead:

- Tune keeps every checkpoint (``num_to_keep=None``: no forced snapshots) and snapshots on its own clock,
  ``TUNE_GLOBAL_CHECKPOINT_S`` = :func:`snapshot_period_s`, which grows with the number of trials, so the
  snapshots' bytes grow with the study's duration, not with its square.
- :class:`CheckpointPruner` deletes a trial's older checkpoints once a snapshot that names a newer one has
  been written: Tune calls every callback's ``get_state`` while it writes a snapshot, so at snapshot k the
  pruner deletes what is older than the checkpoints snapshot k-1 named (by then written to the storage).
  At the end of the experiment, after Tune's final snapshot, each trial keeps its last checkpoint only
  (what the study reads: a search's α/β history, a retraining's trained network).

After a driver crash, ``--resume`` restores the experiment from its last snapshot: a trial continues from
the checkpoint that snapshot names (still there), so it may redo up to one snapshot period of epochs.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from ray import tune

#: The seconds between Tune's snapshots of an experiment: at least Tune's own minimum, and half a second per
#: trial, so that the snapshots' total size (trials x number of snapshots) stays linear in the study's length.
MIN_SNAPSHOT_PERIOD_S = 10.0
SNAPSHOT_S_PER_TRIAL = 0.5

_INDEX = re.compile(r"checkpoint_(\d+)$")


def snapshot_period_s(trials: int) -> float:
    return max(MIN_SNAPSHOT_PERIOD_S, SNAPSHOT_S_PER_TRIAL * trials)


def _index(path: str) -> int | None:
    found = _INDEX.search(path.rstrip("/"))
    return int(found.group(1)) if found else None


class CheckpointPruner(tune.Callback):
    """Deletes each trial's checkpoints that no snapshot can need any more (see the module docstring)."""

    def __init__(self) -> None:
        self._unpruned: dict[str, list[tune.Checkpoint]] = defaultdict(list)
        self._latest: dict[str, int] = {}  # newest checkpoint index of each trial seen so far
        self._snapshotted: dict[str, int] = {}  # the index the last snapshot named, per trial
        self.deleted = 0

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
        """Called by Tune as it writes a snapshot (this one names each trial's ``_latest``)."""
        for trial_id, safe in self._snapshotted.items():
            self._prune(trial_id, safe)
        self._snapshotted = dict(self._latest)
        return None

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """After Tune's final snapshot: keep the newest checkpoint of every trial, including those an earlier
        session of the experiment left."""
        for trial in trials:
            latest = trial.checkpoint
            newest = _index(latest.path) if latest is not None else None
            if newest is None:
                continue
            self._prune(trial.trial_id, newest)
            self._prune_folder(latest, newest)

    def _prune(self, trial_id: str, keep_from: int) -> None:
        kept = []
        for checkpoint in self._unpruned.get(trial_id, []):
            if (_index(checkpoint.path) or 0) < keep_from:
                self._delete(checkpoint.filesystem, checkpoint.path)
            else:
                kept.append(checkpoint)
        self._unpruned[trial_id] = kept

    def _prune_folder(self, latest: tune.Checkpoint, keep_from: int) -> None:
        import pyarrow.fs as pafs

        folder = latest.path.rstrip("/").rsplit("/", 1)[0]
        entries = latest.filesystem.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        for entry in entries:
            index = _index(entry.path)
            if entry.type == pafs.FileType.Directory and index is not None and index < keep_from:
                self._delete(latest.filesystem, entry.path)

    def _delete(self, filesystem: Any, path: str) -> None:
        try:
            filesystem.delete_dir(path)
            self.deleted += 1
        except (OSError, FileNotFoundError):
            pass  # gone already, or not ours to delete: the study does not depend on it
