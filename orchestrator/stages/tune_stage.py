"""A stage that runs its trials as one Ray Tune experiment (search, screen, retrain): its trials, from the
plan and the earlier stages' results, its trainable, and its rows (``STAGE.csv``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from ray import tune

from pcdarts_core.checkpoint import atomic_write_text

from ..spec import StudySpec
from ..study_files import stage_table
from ..tracking import catch_up
from ..tracking.live import TrialLogger
from ..trial import Trial, TrialStatus
from .checkpoints import CheckpointPruner
from .context import StageContext
from .progress import StageProgress
from .rows import TRIAL_COLUMNS, trial_row
from .runner import Trainable, concurrent_slots, run_stage, worker_processes


@dataclass(frozen=True)
class TuneStage:
    """``trials`` gives the stage's trials; when it gives none, the stage says ``nothing_to_run`` and
    writes an empty table. ``metric`` and ``mode`` name the best trial on the progress line.
    ``applies_to``: the specs that have this stage (default: all). ``scheduler``: the Tune trial scheduler
    for the spec, or None; its early stops end trials as ``stopped``. ``after``: what the stage writes from
    its rows once they are known (before it is marked done, so an interrupted stage writes it on resume).
    ``workers``: the processes each trial runs on (Ray Train workers when above 1; only the search's trainable
    runs on several)."""

    name: str
    trials: Callable[[StageContext], list[Trial]]
    trainable: Trainable
    metric: str
    mode: str
    nothing_to_run: str = "nothing to run"
    uses_ray: bool = True
    applies_to: Callable[[StudySpec], bool] = lambda spec: True
    scheduler: Callable[[StudySpec], tune.schedulers.TrialScheduler | None] = lambda spec: None
    after: Callable[[StageContext, pd.DataFrame], None] | None = None
    workers: Callable[[StudySpec], int] = lambda spec: 1

    def applies(self, spec: StudySpec) -> bool:
        return self.applies_to(spec)

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
            if self.after is not None:
                self.after(context, pd.DataFrame(columns=list(TRIAL_COLUMNS)))
            study.mark_done(self.name)
            return
        say(f"stage {self.name}: {len(trials)} trials")
        tracker, parent = context.tracker, context.parent_run
        scheduler = self.scheduler(study.spec)
        callbacks = [
            TrialLogger(tracker.uri, tracker.experiment_id, parent, stops=scheduler is not None),
            StageProgress(self.name, self.metric, self.mode),
            CheckpointPruner(),
        ]
        experiment = study.tune_experiment(self.name)
        storage = study.state.storage_path
        workers = self.workers(study.spec)
        results = run_stage(
            experiment, self.trainable, trials, study.spec, storage, callbacks, context.verbose, say, scheduler, workers
        )
        # The stage is done only once MLflow holds all of it: if it cannot, the stage stays open and
        # --resume logs what is missing (restoring a finished Tune experiment runs nothing again).
        catch_up(tracker, parent, results, say=say, stops=scheduler is not None)
        rows = pd.DataFrame([trial_row(r, stops=scheduler is not None) for r in results])
        atomic_write_text(table, rows.to_csv(index=False))
        record = study.state.stage_time(self.name)
        record.slots = concurrent_slots(study.spec, results, workers)
        record.epoch_s = round(float(pd.to_numeric(rows["time_s"], errors="coerce").sum()), 3)
        record.worker_processes = worker_processes(results)
        failed = rows[rows["status"] != TrialStatus.FINISHED]
        for row in failed[failed["status"] != TrialStatus.STOPPED].itertuples(index=False):
            say(f"  {row.trial} ({row.setting}, seed {row.seed}): {row.status}: {row.error}")
        if (stopped := int((rows["status"] == TrialStatus.STOPPED).sum())) > 0:
            say(f"  {stopped} of {len(rows)} trials stopped early by the scheduler")
        if self.after is not None:
            self.after(context, rows)
        study.mark_done(self.name)
