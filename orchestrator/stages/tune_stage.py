"""A stage that runs its trials as one Ray Tune experiment (search, retrain): its trials, from the
plan and the earlier stages' results, its trainable, and its rows (``STAGE.csv``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from pcdarts_core.checkpoint import atomic_write_text

from ..study_files import stage_table
from ..tracking import catch_up
from ..tracking.live import TrialLogger
from ..trial import Trial, TrialStatus
from .context import StageContext
from .progress import StageProgress
from .rows import trial_row
from .runner import Trainable, run_stage


@dataclass(frozen=True)
class TuneStage:
    """``trials`` gives the stage's trials; when it gives none, the stage says ``nothing_to_run`` and
    writes an empty table. ``metric`` and ``mode`` name the best trial on the progress line."""

    name: str
    trials: Callable[[StageContext], list[Trial]]
    trainable: Trainable
    metric: str
    mode: str
    nothing_to_run: str = "nothing to run"
    uses_ray: bool = True

    def run(self, context: StageContext) -> None:
        study, say = context.study, context.say
        if study.done(self.name):
            say(f"stage {self.name}: done earlier")
            return
        trials = self.trials(context)
        table = context.folder / stage_table(self.name)
        if not trials:
            say(f"stage {self.name}: {self.nothing_to_run}")
            atomic_write_text(table, "")
            study.mark_done(self.name)
            return
        say(f"stage {self.name}: {len(trials)} trials")
        tracker, parent = context.tracker, context.parent_run
        callbacks = [
            TrialLogger(tracker.uri, tracker.experiment_id, parent),
            StageProgress(self.name, self.metric, self.mode),
        ]
        experiment = study.tune_experiment(self.name)
        storage = study.state.storage_path
        results = run_stage(experiment, self.trainable, trials, study.spec, storage, callbacks, context.verbose, say)
        # The stage is done only once MLflow holds all of it: if it cannot, the stage stays open and
        # --resume logs what is missing (restoring a finished Tune experiment runs nothing again).
        catch_up(tracker, parent, results, say=say)
        rows = pd.DataFrame([trial_row(r) for r in results])
        atomic_write_text(table, rows.to_csv(index=False))
        failed = rows[rows["status"] != TrialStatus.FINISHED]
        for row in failed.itertuples(index=False):
            say(f"  {row.trial} ({row.setting}, seed {row.seed}): {row.status}: {row.error}")
        study.mark_done(self.name)
