"""A trial of a study: its record, as Ray Tune's ``param_space`` holds it, and its status.

A stage's trials are :class:`Trial` records, handed to Tune as plain JSON (``config["trial"]``,
see :meth:`Trial.to_param`) and read back with :meth:`Trial.from_param` wherever Tune gives a
trial's config back (trainables, callbacks, results), so a restored experiment holds the same
descriptions as before.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

#: The setting (and source) label of the random baselines.
RANDOM = "random"
#: The source of a published genotype retrained as an anchor; its setting is ``published:NAME``.
PUBLISHED = "published"


def published_setting(name: str) -> str:
    """The setting label of the published genotype ``name`` (a name of ``KNOWN_GENOTYPES``)."""
    return f"{PUBLISHED}:{name}"


def published_name(setting: str) -> str | None:
    """The published genotype's name of a ``published:NAME`` setting; None for any other setting."""
    prefix = f"{PUBLISHED}:"
    return setting[len(prefix) :] if setting.startswith(prefix) else None


def is_baseline(setting: str) -> bool:
    """Whether a retrained genotype's setting is a baseline (random cells, a published cell) rather than a
    search setting of the grid."""
    return setting == RANDOM or published_name(setting) is not None


#: The value a trainable reports its state in: ``running`` after each epoch but the last, then how it ended.
STATUS_METRIC = "trial_status"
RUNNING = "running"


class TrialStatus(StrEnum):
    """How a trial ended: finished, diverged (its loss stopped being finite: not an error of the
    study), error (failed after its retries), interrupted (neither ended nor failed) or stopped (ended
    early by the stage's scheduler, ASHA in the screen).

    A string enum: ``series == TrialStatus.FINISHED`` works in pandas and CSV files hold the words.

    The ended-run rule: a trial's MLflow run has ended only when its MLflow status equals the
    :attr:`mlflow_status` of its ``pcdarts.status`` tag. ``StudyTracker.finish_trial`` writes that tag
    last, with the end, so a run carrying it holds all its final values and files; a run merely
    closed after an interruption (KILLED) part-way through it has not ended and is completed again.
    """

    FINISHED = "finished"
    DIVERGED = "diverged"
    ERROR = "error"
    INTERRUPTED = "interrupted"
    #: ended early by the stage's scheduler (the screen's ASHA): a decision of the study, not a failure
    STOPPED = "stopped"

    @property
    def mlflow_status(self) -> str:
        """The MLflow run status a trial of this status ends with."""
        return _MLFLOW_STATUS[self]

    @property
    def has_final_values(self) -> bool:
        """Whether a trial that ended so has final values to keep: a finished one, or one stopped early (its
        last epoch's)."""
        return self in (TrialStatus.FINISHED, TrialStatus.STOPPED)

    @classmethod
    def ended_without_report(cls, metrics: dict[str, Any] | None, stops: bool) -> TrialStatus:
        """How a trial ended that did not report its end (finished, diverged) and raised no error: stopped, when
        its stage's scheduler stops trials (``stops``) and its last result is the one Tune marked ``done`` at the
        stop; else interrupted (an interrupted trial's last result is not marked, or it has no epoch yet)."""
        metrics = metrics or {}
        stopped = stops and metrics.get("done") is True and "epoch" in metrics
        return cls.STOPPED if stopped else cls.INTERRUPTED

    @classmethod
    def reported(cls, metrics: dict[str, Any] | None) -> TrialStatus | None:
        """The end a trial reported in its last result (finished or diverged), or None (still running, or
        no report at all)."""
        value = (metrics or {}).get(STATUS_METRIC)
        return cls(value) if value in (cls.FINISHED, cls.DIVERGED) else None


_MLFLOW_STATUS = {
    TrialStatus.FINISHED: "FINISHED",
    TrialStatus.DIVERGED: "FAILED",
    TrialStatus.ERROR: "FAILED",
    TrialStatus.INTERRUPTED: "KILLED",
    TrialStatus.STOPPED: "FINISHED",
}


class Trial(BaseModel):
    """One trial: its key (which names its Tune trial, folder and MLflow run), stage, setting, seed
    and the core's settings (``config``: a SearchConfig or TrainConfig as a dict). A search trial
    also holds the retrain settings that cost the genotype it finds; a retrain trial the genotype it
    trains, its id and where it came from (``source``: the search that found it, or ``random``).
    ``gpus`` is a GPU share, or ``"auto"`` until the stage has measured it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # in the order of the descriptions Tune saved before this record existed (the trials' params.json)
    key: str
    stage: str
    setting: str
    seed: int
    genotype_id: str | None = None
    source: str | None = None
    genotype: dict[str, Any] | None = None
    config: dict[str, Any]
    retrain_config: dict[str, Any] | None = None
    cpus: float
    gpus: float | Literal["auto"]

    def to_param(self) -> dict[str, Any]:
        """The JSON description Tune's ``param_space`` holds (the fields a trial has, without the unset ones)."""
        return {name: value for name, value in self.model_dump().items() if value is not None}

    @classmethod
    def from_param(cls, config: dict[str, Any]) -> Trial:
        """The trial of a Tune trial's config (``config["trial"]``)."""
        return cls.model_validate(config["trial"])
