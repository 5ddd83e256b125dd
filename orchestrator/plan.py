"""What a study runs, computed once from its spec: the search grid, the settings in grid order,
the trials of each stage, the retraining settings per seed and the report's reference setting.

:meth:`StudyPlan.describe` is what ``--dry-run`` prints. This module imports neither Ray, MLflow
nor pandas, so that the dry run stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pcdarts_core import SearchConfig, TrainConfig, parse_genotype
from pcdarts_core.known_genotypes import KNOWN_GENOTYPES

from .spec import (
    StudySpec,
    reference_setting,
    retrain_config,
    retrain_seeds,
    screen_config,
    screen_epochs,
    screen_section,
    setting_label,
)
from .trial import PUBLISHED, RANDOM, Trial, published_setting

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class GridPoint:
    """One point of the search grid: its trial key (``search-001``), its setting (``k=4 edge_norm=on``),
    the swept values (the seed included) and its validated SearchConfig."""

    key: str
    setting: str
    values: dict[str, Any]
    config: SearchConfig


@dataclass(frozen=True)
class StudyPlan:
    """The study's plan; build it with :meth:`from_spec`."""

    spec: StudySpec
    grid: tuple[GridPoint, ...]
    #: The settings in grid order.
    settings: tuple[str, ...]
    retrain_seeds: tuple[int, ...]
    #: The setting the report compares the others with (None: no reference, for ``reference_note``'s reason).
    reference: str | None
    reference_note: str

    @classmethod
    def from_spec(cls, spec: StudySpec) -> StudyPlan:
        width = max(3, len(str(len(spec.grid))))  # search-0001 ... search-1000 sort in grid order
        grid = tuple(
            GridPoint(f"search-{index:0{width}d}", setting_label(values), values, config)
            for index, (values, config) in enumerate(spec.grid, start=1)
        )
        reference, note = reference_setting(spec)
        return cls(
            spec=spec,
            grid=grid,
            settings=tuple(dict.fromkeys(point.setting for point in grid)),
            retrain_seeds=tuple(retrain_seeds(spec)),
            reference=reference,
            reference_note=note,
        )

    def retrain_config(self, seed: int) -> TrainConfig:
        """The validated retraining settings for one seed."""
        return retrain_config(self.spec, seed)

    # --- the trials of each stage ---------------------------------------------------------
    def search_trials(self) -> list[Trial]:
        """One trial per grid point (with the retrain settings, to cost the genotype it finds)."""
        cost_config = self.retrain_config(seed=0).model_dump()
        res = self.spec.resources
        # what the whole trial holds: on several workers, each worker's share that many times
        workers = res.workers_per_trial
        gpus = res.gpus_per_trial * workers if isinstance(res.gpus_per_trial, float) else res.gpus_per_trial
        return [
            Trial(
                key=point.key,
                stage="search",
                setting=point.setting,
                seed=point.config.seed,
                config=point.config.model_dump(),
                retrain_config=cost_config,
                cpus=res.cpus_per_trial * workers,
                gpus=gpus,
            )
            for point in self.grid
        ]

    def retrain_trials(self, selection: pd.DataFrame) -> list[Trial]:
        """Each selected genotype (rows of ``selection.csv``), each published anchor (``baseline.known``, its
        name as its genotype id) and each random baseline, with every retrain seed, same protocol."""
        from .selection import baseline_genotypes, canonical_genotype  # imports pandas: kept off the dry run's path

        jobs = [
            (row.genotype_id, row.setting, row.source, parse_genotype(row.genotype))
            for row in selection.itertuples(index=False)
        ]
        jobs += [(name, published_setting(name), PUBLISHED, KNOWN_GENOTYPES[name]) for name in self.spec.baseline.known]
        avoid = {canonical_genotype(genotype) for *_, genotype in jobs}
        steps = self.grid[0].config.steps
        jobs += [
            (gid, RANDOM, RANDOM, genotype) for gid, genotype in baseline_genotypes(self.spec.baseline, steps, avoid)
        ]
        res = self.spec.resources
        configs = {seed: self.retrain_config(seed).model_dump() for seed in self.retrain_seeds}
        return [
            Trial(
                key=f"retrain-{genotype_id}-seed{seed}",
                stage="retrain",
                setting=setting,
                seed=seed,
                genotype_id=genotype_id,
                source=source,
                genotype=genotype.to_dict(),
                config=configs[seed],
                cpus=res.cpus_per_trial,
                gpus=res.gpus_per_trial,
            )
            for genotype_id, setting, source, genotype in jobs
            for seed in self.retrain_seeds
        ]

    def screen_trials(self, candidates: pd.DataFrame) -> list[Trial]:
        """Each candidate genotype (rows of ``candidates.csv``) with every screen seed: a short retraining
        ranked on a split held out of the training set (:func:`~orchestrator.spec.screen_config`)."""
        screen = screen_section(self.spec)
        res = self.spec.resources
        configs = {seed: screen_config(self.spec, seed).model_dump() for seed in screen.seeds}
        return [
            Trial(
                key=f"screen-{row.genotype_id}-seed{seed}",
                stage="screen",
                setting=row.setting,
                seed=seed,
                genotype_id=row.genotype_id,
                source=row.source,
                genotype=parse_genotype(row.genotype).to_dict(),
                config=configs[seed],
                cpus=res.cpus_per_trial,
                gpus=res.gpus_per_trial,
            )
            for row in candidates.itertuples(index=False)
            for seed in screen.seeds
        ]

    # --- the dry run ----------------------------------------------------------------------
    def describe(self, folder: Path) -> str:
        """What ``--dry-run`` prints: every search trial, the selection rule and the retrain plan."""
        spec, res = self.spec, self.spec.resources
        count, settings, seeds = len(self.grid), self.settings, list(self.retrain_seeds)
        select_where = "over the whole study" if spec.select.per == "study" else "within each setting"
        top = spec.select.top * (1 if spec.select.per == "study" else len(settings))
        known = spec.baseline.known
        most = (top + len(known) + spec.baseline.count) * len(seeds)
        train = self.retrain_config(seed=seeds[0])
        gpus = res.gpus_per_trial if res.gpus_per_trial == "auto" else format(res.gpus_per_trial, "g")
        screened = ""
        if spec.select.by == "screen":
            screen = screen_section(spec)
            screened = (
                f", up to {screen.top * len(screen.seeds)} screen trials"
                if screen.top
                else ", a screen trial per candidate and seed"
            )
        lines = [
            f"study {spec.name}: {count} search trials{screened}, then up to {most} retrain trials",
            f"  folder {folder}, MLflow {spec.tracking_uri(folder)} (experiment {spec.experiment_name()}), "
            f"Tune storage {spec.storage_path(folder)}",
            f"  each trial: {res.cpus_per_trial:g} CPU, {gpus} GPU; at most "
            f"{res.max_concurrent_trials or 'as many as fit'} at once; {res.max_failures} retries",
            *(
                [f"  each search: {res.workers_per_trial} workers of that (Ray Train, data parallel)"]
                if res.workers_per_trial > 1
                else []
            ),
            "",
            f"stage search: {count} trials ({len(settings)} settings x {count // max(1, len(settings))} seeds), "
            f"{self.grid[0].config.epochs} epochs each",
        ]
        for point in self.grid:
            lines.append(f"  {point.key}  {point.setting:<32} seed={point.config.seed}")
        if spec.select.by == "screen":
            screen = screen_section(spec)
            cfg = screen_config(spec, screen.seeds[0])
            asha = (
                f", ASHA stops the weak (grace {screen.grace_period}, reduction {screen.reduction_factor})"
                if screen.scheduler == "asha"
                else ""
            )
            entering = f"the {screen.top} best distinct genotypes" if screen.top else "every distinct genotype"
            lines += [
                "",
                f"stage select: {entering} by final {spec.select.metric}, to be screened",
                "",
                f"stage screen: each candidate with seeds {screen.seeds}, {screen_epochs(spec)} epochs, ranked on "
                f"{cfg.valid_portion:g} of the training images held out{asha}; then the top {spec.select.top} by "
                f"final screen valid_acc {select_where}",
                "",
            ]
        else:
            lines += [
                "",
                f"stage select: the top {spec.select.top} genotypes by final {spec.select.metric} {select_where}; "
                "identical genotypes retrained once",
                "",
            ]
        lines += [
            f"stage retrain: up to {top} selected genotypes"
            + (f" + {len(known)} published ({', '.join(known)})" if known else "")
            + f" + {spec.baseline.count} random baselines, each with seeds {seeds}: up to {most} trials",
            f"  protocol: {train.network} network, C={train.init_channels}, {train.layers} cells, "
            f"{train.epochs} epochs, batch {train.batch_size}, lr {train.lr} ({train.lr_schedule})",
            "",
            "stage report: report.html with its pictures, summary.md/.csv, comparisons.csv, trials.csv "
            "(also logged to the study's MLflow run)",
        ]
        return "\n".join(lines)
