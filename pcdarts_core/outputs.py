"""The files a search or a training writes into its output folder (and a study's trials into their
checkpoints): the run state, the settings and the found or trained genotype."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from .checkpoint import atomic_write_text
from .genotype import Genotype

#: The complete run state (weights, optimisers, α/β, RNGs, history); see :mod:`pcdarts_core.checkpoint`.
CHECKPOINT = "checkpoint.pt"
#: The run's settings as JSON.
CONFIG_FILE = "config.json"


def write_config(out: Path, config: BaseModel) -> None:
    """Create the output folder and write the run's settings to ``config.json``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CONFIG_FILE, config.model_dump_json(indent=2) + "\n")


def write_genotype(out: Path, genotype: Genotype) -> None:
    """``genotype.json`` and ``genotype.txt`` (the DARTS text form), each replaced atomically."""
    atomic_write_text(out / "genotype.json", json.dumps(genotype.to_dict(), indent=2) + "\n")
    atomic_write_text(out / "genotype.txt", genotype.to_text() + "\n")
