"""Small helpers on the study's trial tables, shared by the report's tables."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from pcdarts_core import Genotype, parse_genotype


def optional_column(rows: pd.DataFrame, name: str) -> pd.Series:
    """A column that older or hand-made tables may lack, as NaN."""
    return rows[name] if name in rows else pd.Series(math.nan, index=rows.index, dtype=float)


def finite_mean(values: Iterable[float]) -> float:
    """The mean of the values that are not NaN or None; NaN without any."""
    kept = [float(v) for v in values if v == v and v is not None]
    return float(np.mean(kept)) if kept else math.nan


def device_hours(rows: pd.DataFrame, unit: str) -> float:
    """The trials' ``time_s`` times their share of ``unit`` (``gpus`` or ``cpus``), in hours."""
    if rows.empty:
        return 0.0
    amount = pd.to_numeric(rows[unit], errors="coerce").fillna(0)
    return float((pd.to_numeric(rows["time_s"], errors="coerce").fillna(0) * amount).sum() / 3600)


def parse_genotypes(texts: Iterable[Any]) -> list[Genotype]:
    """The genotypes among ``texts`` (empty and missing values left out)."""
    return [parse_genotype(str(text)) for text in texts if isinstance(text, str) and text.strip()]
