"""The select stage: the genotypes to retrain, from the finished searches (``selection.csv``)."""

from __future__ import annotations

from dataclasses import dataclass

from pcdarts_core.checkpoint import atomic_write_text

from ..report import read_table
from ..selection import select_genotypes
from ..study_files import SELECTION_FILE, stage_table
from .context import StageContext


@dataclass(frozen=True)
class SelectStage:
    name: str = "select"
    uses_ray: bool = False

    def run(self, context: StageContext) -> None:
        study = context.study
        if study.done(self.name):
            return
        searches = read_table(context.folder / stage_table("search"))
        selection = select_genotypes(searches, study.spec.select)
        atomic_write_text(context.folder / SELECTION_FILE, selection.to_csv(index=False))
        for row in selection.itertuples(index=False):
            context.say(
                f"  selected {row.genotype_id}: {row.source} ({row.setting}), {row.metric} {row.value:.3f}, "
                f"found by {row.found_by}"
            )
        study.mark_done(self.name)


SELECT = SelectStage()
