"""Each search's architecture weights over its epochs, kept in the study folder.

Search trials report only scalars to Ray Tune; the full history of a search (softmaxed α and
β of every epoch, which epochs were warm-up) is in its latest Tune checkpoint. Once the search
stage is done, :func:`save_arch_history` copies those per-epoch values of every search into
``arch_history.json`` in the study folder, so the study report can be rebuilt from the folder
alone, after the Tune storage is gone. The Tune storage may be a local folder or a URI that
pyarrow opens (``s3://…``); checkpoints are loaded with ``weights_only``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pcdarts_core.checkpoint import atomic_write_text, load_checkpoint
from pcdarts_core.errors import UserInputError
from pcdarts_core.outputs import CHECKPOINT
from pcdarts_core.search_space import PRIMITIVES

from ..trial import Trial

ARCH_HISTORY_FILE = "arch_history.json"
#: What is kept of each search epoch (the search core's EpochRecord fields).
EPOCH_FIELDS = (
    "epoch",
    "arch_frozen",
    "valid_acc",
    "epoch_time_s",
    "images_per_s",
    "peak_memory_bytes",
    "alphas_normal",
    "alphas_reduce",
    "betas_normal",
    "betas_reduce",
)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _latest_checkpoint(storage_path: str, trial_folder: str) -> tuple[str, bytes] | None:
    """The trial's newest ``checkpoint_*/checkpoint.pt`` in the Tune storage: its path there and its bytes."""
    import pyarrow.fs as pafs

    filesystem, root = pafs.FileSystem.from_uri(storage_path)
    trial = f"{root.rstrip('/')}/{trial_folder}"
    entries = filesystem.get_file_info(pafs.FileSelector(trial, allow_not_found=True))
    folders = sorted(
        e.path for e in entries if e.type == pafs.FileType.Directory and e.base_name.startswith("checkpoint_")
    )
    if not folders:
        return None
    source = f"{folders[-1]}/{CHECKPOINT}"
    if filesystem.get_file_info(source).type != pafs.FileType.File:
        return None
    with filesystem.open_input_stream(source) as stream:
        return source, stream.read()


def extract_history(checkpoint: Path, data: bytes | None = None) -> list[dict[str, Any]]:
    """The per-epoch :data:`EPOCH_FIELDS` of the search saved in ``checkpoint`` (or in ``data``, its bytes)."""
    state = load_checkpoint(checkpoint, data=data)
    if state.get("kind") != "search":
        raise UserInputError(f"checkpoint {checkpoint}: not a search checkpoint")
    return [{name: _rounded(record.get(name)) for name in EPOCH_FIELDS} for record in state["history"]]


def save_arch_history(
    folder: Path, storage_path: str, experiment: str, trials: Sequence[Trial], say: Callable[[str], None] = print
) -> Path:
    """Write ``arch_history.json``: for each search trial (its key, setting and seed), its epochs, from its
    latest checkpoint in ``storage_path/experiment/KEY``. A trial without a readable checkpoint is
    listed under ``missing`` with the reason, and the report shows it without its α/β pictures."""
    found: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for trial in trials:
        key = trial.key
        try:
            latest = _latest_checkpoint(storage_path, f"{experiment}/{key}")
            if latest is None:
                missing[key] = "no checkpoint in the Tune storage"
                continue
            epochs = extract_history(Path(latest[0]), latest[1])
        except (OSError, UserInputError) as err:
            missing[key] = " ".join(str(err).split())[:200]
            continue
        found[key] = {"setting": trial.setting, "seed": trial.seed, "epochs": epochs}
    path = folder / ARCH_HISTORY_FILE
    document = {"primitives": list(PRIMITIVES), "trials": found, "missing": missing}
    atomic_write_text(path, json.dumps(document, separators=(",", ":")) + "\n")
    say(
        f"  architecture weights of {len(found)} searches saved to {ARCH_HISTORY_FILE}"
        + (f" ({len(missing)} without a checkpoint)" if missing else "")
    )
    return path


def load_arch_history(folder: Path) -> dict[str, Any]:
    """The saved histories (``{"primitives", "trials", "missing"}``); empty if the file is absent."""
    path = folder / ARCH_HISTORY_FILE
    if not path.is_file():
        return {"primitives": list(PRIMITIVES), "trials": {}, "missing": {}}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserInputError(
            f"{path}: not valid JSON ({err}); delete it to rebuild the report without α/β pictures"
        ) from None
    document.setdefault("missing", {})
    return document
