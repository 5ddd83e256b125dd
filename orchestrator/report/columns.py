"""The per-setting summary, declared column by column in :data:`COLUMNS`.

From that one list come ``summary.csv``'s columns in their order, the tables of the accuracy,
stability and cost sections of ``summary.md`` and ``report.html``, and the numbers logged to the
study's MLflow run. A new column is one :class:`Column` in :data:`COLUMNS`, where it belongs in
``summary.csv``: how it is computed from a setting's rows (:class:`SettingRows`), and optionally
the section table it is shown in (:class:`Shown`) and ``metric=True`` to log it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd

from pcdarts_core import Genotype

from ..trial import TrialStatus
from .frames import device_hours, finite_mean, optional_column
from .statistics import describe, mean_pairwise_overlap, op_counts
from .text import estimate_text, number, percent

#: The summary tables, in the order of the report (the setting is the first column of each).
ACCURACY, STABILITY, COST = "accuracy", "stability", "cost"
SECTIONS = (ACCURACY, STABILITY, COST)
#: The parts of an estimate (:class:`~orchestrator.report.statistics.Estimate`).
ESTIMATE = ("n", "mean", "std", "ci_low", "ci_high")
#: The parts of a per-cell value (:class:`PerCell`).
CELLS = ("normal", "reduce")

#: One row of the summary, by column name.
Row = Mapping[str, Any]


@dataclass(frozen=True)
class SettingRows:
    """What one summary row is computed from: a search setting's trials, or a baseline's (``baseline``: no
    searches; its genotypes are the random cells, or the published cell of a ``published:NAME`` row)."""

    setting: str
    #: its search trials, whatever their status, and the finished ones
    searches: pd.DataFrame
    finished_searches: pd.DataFrame
    #: the retrained genotypes it found (rows of retrained_genotypes.csv with a finished seed)
    genotypes: pd.DataFrame
    #: the finished retrain trials of those genotypes
    retrains: pd.DataFrame
    #: every trial it cost: its searches and all retrain trials of the genotypes it found
    spent: pd.DataFrame
    #: the cells whose stability is measured: its finished searches' genotypes (baseline: the random cells)
    cells: list[Genotype]
    #: the final α entropy (normal, reduce) of its finished searches
    entropies: list[tuple[float, float]]
    baseline: bool = False


class PerCell(NamedTuple):
    """A value for each cell type."""

    normal: float
    reduce: float


@dataclass(frozen=True)
class Shown:
    """A column of a section's table: its heading and its text, from the summary row and the
    column's name. A table lists its columns in :data:`COLUMNS` order, except one with ``after``,
    which follows the column of that name."""

    section: str
    heading: str
    text: Callable[[Row, str], Any]
    after: str | None = None


@dataclass(frozen=True)
class Column:
    """One summary value per setting. ``value`` computes it from the setting's rows; with ``parts``
    it has several (an estimate, a value per cell), which ``summary.csv`` holds as ``NAME_PART``,
    read from the value's attributes. ``metric``: logged to the study's MLflow run (every part but
    an estimate's count n)."""

    name: str
    value: Callable[[SettingRows], Any]
    parts: tuple[str, ...] = ()
    shown: Shown | None = None
    metric: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """Its columns in summary.csv."""
        return tuple(f"{self.name}_{part}" for part in self.parts) if self.parts else (self.name,)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Its columns the study's MLflow run logs."""
        if not self.metric:
            return ()
        return tuple(name for name, part in zip(self.names, self.parts or ("",)) if part != "n")

    def values(self, rows: SettingRows) -> dict[str, Any]:
        value = self.value(rows)
        if not self.parts:
            return {self.name: value}
        return {f"{self.name}_{part}": getattr(value, part) for part in self.parts}


def estimate(name: str, values: Callable[[SettingRows], Iterable[float]], heading: str) -> Column:
    """The estimate of ``values`` (n, mean, std and 95% interval: :func:`describe`) as an accuracy
    column: shown in percent in the accuracy table, logged to MLflow."""
    return Column(
        name, lambda rows: describe(values(rows)), ESTIMATE, Shown(ACCURACY, heading, as_estimate), metric=True
    )


# --- how a value is shown ---------------------------------------------------------------------


def as_is(row: Row, name: str) -> Any:
    return row[name]


def as_estimate(row: Row, name: str) -> str:
    """Percent: mean ± std [95% interval] (n)."""
    return estimate_text(*(row[f"{name}_{part}"] for part in ("mean", "std", "n", "ci_low", "ci_high")))


def in_percent(digits: int) -> Callable[[Row, str], str]:
    return lambda row, name: percent(row[name], digits)


def as_number(digits: int, per: float = 1.0) -> Callable[[Row, str], str]:
    """The value divided by ``per`` (e.g. 1e6: millions), with ``digits`` decimals."""
    return lambda row, name: number(row[name] / per, digits)


def per_cell(digits: int) -> Callable[[Row, str], str]:
    """``normal / reduce``."""
    return lambda row, name: " / ".join(number(row[f"{name}_{cell}"], digits) for cell in CELLS)


def _searches_text(row: Row, name: str) -> str:
    return f"{row[name]} ({row['searches_failed']})"


# --- how a value is computed ------------------------------------------------------------------


def pooled_seed_std(genotypes: pd.DataFrame) -> float:
    """The retraining seeds' own spread: the pooled within-genotype standard deviation, the root of
    the genotypes' variances weighted by their degrees of freedom (seeds - 1)."""
    rows = genotypes[(genotypes["retrain_seeds"] > 1) & genotypes["retrain_test_acc_std"].notna()]
    dof = rows["retrain_seeds"] - 1
    return float(math.sqrt((dof * rows["retrain_test_acc_std"] ** 2).sum() / dof.sum())) if len(rows) else math.nan


def _op_means(cells: list[Genotype], kind: str) -> PerCell:
    """Mean count per cell of an :func:`~orchestrator.report.statistics.op_counts` kind."""
    counts = [op_counts(genotype) for genotype in cells]
    return PerCell(*(finite_mean(c[f"{kind}_{cell}"] for c in counts) for cell in CELLS))


def _entropies(rows: SettingRows) -> PerCell:
    return PerCell(*(finite_mean(e[index] for e in rows.entropies) for index in range(len(CELLS))))


def _parameters(rows: SettingRows) -> float:
    """The retrained networks' parameters; the searches' (the cost of their genotypes) before any retraining."""
    return finite_mean(rows.retrains["parameters"] if len(rows.retrains) else rows.finished_searches["parameters"])


def _search_hours(unit: str) -> Callable[[SettingRows], float]:
    return lambda rows: math.nan if rows.baseline else device_hours(rows.searches, unit)


def _peak_memory_mib(rows: SettingRows) -> float:
    peak = optional_column(rows.finished_searches, "peak_memory_bytes").max()
    return float(peak) / 2**20 if peak == peak else math.nan


def _activation_mib_per_image(rows: SettingRows) -> float:
    """Saved-activation memory per image of the setting's supernet (the same for every seed and device)."""
    saved = pd.to_numeric(optional_column(rows.finished_searches, "activation_bytes_per_image"), errors="coerce")
    return finite_mean(saved / 2**20)


def _failed(rows: SettingRows) -> int:
    return int((rows.searches["status"] != TrialStatus.FINISHED).sum())


COLUMNS: tuple[Column, ...] = (
    Column("setting", lambda rows: rows.setting),
    Column("searches", lambda rows: len(rows.searches), shown=Shown(ACCURACY, "searches (failed)", _searches_text)),
    Column("searches_failed", _failed),
    estimate("search_valid_acc", lambda rows: rows.finished_searches["valid_acc"], "search valid acc %"),
    Column("genotypes_retrained", lambda rows: len(rows.genotypes)),
    Column(
        "retrains", lambda rows: len(rows.retrains), shown=Shown(ACCURACY, "retrains", as_is, after="retrain_seed_std")
    ),
    estimate(
        "retrain_test_acc", lambda rows: rows.genotypes["retrain_test_acc_mean"], "retrain test acc % (per genotype)"
    ),
    Column(
        "retrain_seed_std",
        lambda rows: pooled_seed_std(rows.genotypes),
        shown=Shown(ACCURACY, "retrain seed std %", in_percent(2)),
        metric=True,
    ),
    Column(
        "genotype_overlap",
        lambda rows: mean_pairwise_overlap(rows.cells),
        shown=Shown(STABILITY, "genotype overlap", as_number(2)),
        metric=True,
    ),
    Column(
        "skip_connect",
        lambda rows: _op_means(rows.cells, "skip_connect"),
        CELLS,
        Shown(STABILITY, "skip_connect normal / reduce", per_cell(1)),
    ),
    Column(
        "parameter_free",
        lambda rows: _op_means(rows.cells, "parameter_free"),
        CELLS,
        Shown(STABILITY, "parameter-free normal / reduce", per_cell(1)),
    ),
    Column("alpha_entropy", _entropies, CELLS, Shown(STABILITY, "α entropy normal / reduce", per_cell(2))),
    Column("parameters_mean", _parameters, shown=Shown(ACCURACY, "params (M)", as_number(3, per=1e6))),
    Column(
        "search_time_s_mean",
        lambda rows: finite_mean(rows.finished_searches["time_s"]),
        shown=Shown(COST, "search time (s)", as_number(1)),
    ),
    Column("search_gpu_hours", _search_hours("gpus"), shown=Shown(COST, "search GPU-h", as_number(3)), metric=True),
    Column("search_cpu_hours", _search_hours("cpus"), shown=Shown(COST, "search CPU-h", as_number(3)), metric=True),
    Column(
        "activation_mib_per_image",
        _activation_mib_per_image,
        shown=Shown(COST, "activations (MiB/image)", as_number(2)),
        metric=True,
    ),
    Column("peak_memory_mib", _peak_memory_mib, shown=Shown(COST, "peak memory (MiB)", as_number(0)), metric=True),
    Column(
        "images_per_s",
        lambda rows: finite_mean(optional_column(rows.finished_searches, "images_per_s")),
        shown=Shown(COST, "images/s", as_number(1)),
        metric=True,
    ),
    Column(
        "gpu_hours",
        lambda rows: device_hours(rows.spent, "gpus"),
        shown=Shown(COST, "GPU-h with retrains", as_number(3)),
    ),
    Column(
        "cpu_hours",
        lambda rows: device_hours(rows.spent, "cpus"),
        shown=Shown(COST, "CPU-h with retrains", as_number(3)),
    ),
)


def section_columns(section: str) -> list[Column]:
    """The columns shown in ``section``'s table, in their order."""
    shown = [column for column in COLUMNS if column.shown is not None and column.shown.section == section]
    ordered = [column for column in shown if column.shown.after is None]
    for column in shown:
        if column.shown.after is not None:
            place = next(i for i, other in enumerate(ordered) if other.name == column.shown.after)
            ordered.insert(place + 1, column)
    return ordered
