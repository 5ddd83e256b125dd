"""The select stage: the genotypes to retrain from the finished searches (``selection.csv``) or, with
``select.by: screen``, the candidates the screen stage ranks (``candidates.csv``)."""

from __future__ import annotations

from dataclasses import dataclass

from pcdarts_core.checkpoint import atomic_write_text

from ..report import read_table
from ..selection import screen_candidates, select_genotypes
from ..spec import StudySpec, screen_section
from ..study_files import CANDIDATES_FILE, SELECTION_FILE, stage_table
from .context import StageContext


@dataclass(frozen=True)
class SelectStage:
    name: str = "select"
    uses_ray: bool = False

    def applies(self, spec: StudySpec) -> bool:
        return True

    def run(self, context: StageContext) -> None:
        study = context.study
        if study.done(self.name):
            return
        spec = study.spec
        searches = read_table(context.folder / stage_table("search"))
        if spec.select.by == "screen":
            chosen, file, word = (
                screen_candidates(searches, spec.select, screen_section(spec).top),
                CANDIDATES_FILE,
                "candidate",
            )
        else:
            chosen, file, word = select_genotypes(searches, spec.select), SELECTION_FILE, "selected"
        atomic_write_text(context.folder / file, chosen.to_csv(index=False))
        for row in chosen.itertuples(index=False):
            context.say(
                f"  {word} {row.genotype_id}: {row.source} ({row.setting}), {row.metric} {row.value:.3f}, "
                f"found by {row.found_by}"
            )
        study.mark_done(self.name)


SELECT = SelectStage()
