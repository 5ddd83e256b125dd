"""The stages of a study, in the order they run."""

from __future__ import annotations

from .context import Stage
from .report import REPORT
from .retrain import RETRAIN
from .screen import SCREEN
from .search import SEARCH
from .select import SELECT

SEQUENCE: tuple[Stage, ...] = (SEARCH, SELECT, SCREEN, RETRAIN, REPORT)
