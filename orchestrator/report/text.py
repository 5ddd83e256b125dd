"""How the report writes numbers: percentages, plain numbers, estimates and p-values ("–" for NaN)."""

from __future__ import annotations

import math


def percent(value: float, digits: int = 1, unit: str = "") -> str:
    """A fraction in percent, e.g. ``93.1`` (``unit="%"``: ``93.1%``); ``–`` for NaN."""
    return "–" if value != value else f"{100 * value:.{digits}f}{unit}"


def number(value: float, digits: int = 2) -> str:
    """A number with ``digits`` decimals; ``–`` for NaN."""
    return "–" if value != value else f"{value:.{digits}f}"


def estimate_text(mean: float, std: float, n: int, low: float = math.nan, high: float = math.nan) -> str:
    """An estimate in percent: ``mean ± std [low, high] (n=N)``, the parts that are known; ``–`` without values."""
    if n == 0 or mean != mean:
        return "–"
    text = percent(mean, 2) + (f" ± {percent(std, 2)}" if std == std else "")
    if low == low:
        text += f" [{percent(low, 2)}, {percent(high, 2)}]"
    return f"{text} (n={n})"


def p_text(p: float) -> str:
    """A p-value as the sentences write it: ``p < 0.001``, ``p = 0.004``, ``p = 0.12``, ``p undefined``."""
    if p != p:
        return "p undefined"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"
