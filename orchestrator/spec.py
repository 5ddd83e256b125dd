"""The study spec: one YAML file, validated once, before anything starts.

A spec names the study, its dataset, the search grid (any :class:`SearchConfig` setting as
a fixed value or a list of values; lists are crossed), how genotypes are selected, the
retraining protocol and seeds, the random baselines, the resources of a trial, where
MLflow and Ray Tune write, and which Ray cluster runs it. Every problem is raised as one
:class:`~orchestrator.errors.SpecError` naming the key's path (``search.k.1``) and the fix.
Reading the YAML file and its ``--set`` overrides: :mod:`orchestrator.spec_file`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from pcdarts_core import SearchConfig, TrainConfig
from pcdarts_core.config import SEARCH_PROTOCOLS
from pcdarts_core.errors import ConfigError

from .errors import SpecError

#: Search settings that come from the ``dataset`` section, never from ``search`` or ``retrain``.
DATASET_FIELDS = {"dataset": "name", "data_root": "root", "download": "download", "image_size": "image_size"}
#: Settings the study sets itself (``seed`` comes from the grid or from ``retrain.seeds``).
STUDY_FIELDS = {"seed"}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(Section):
    name: str = Field(description="one of the core's datasets, e.g. cifar10 or fashion_mnist_mini")
    root: str | None = Field(None, description="dataset folder (default: the dataset's standard place)")
    download: bool = Field(True, description="download CIFAR when it is not under root")
    image_size: int | None = Field(
        None, ge=1, description="resize every image to this size (default: the dataset's own)"
    )
    train_subset: int | None = Field(None, ge=2, description="use only this many training images (search and retrain)")


class SelectSpec(Section):
    top: int = Field(2, ge=1, description="genotypes to retrain (per setting or over the whole study)")
    metric: Literal["valid_acc", "valid_loss", "train_acc"] = Field(
        "valid_acc", description="final-epoch search metric that ranks the trials (loss: lower is better)"
    )
    per: Literal["study", "setting"] = Field("study", description="top genotypes over the study or within each setting")
    by: Literal["search", "screen"] = Field(
        "search",
        description="rank by the search's final metric (search), or by a short retraining of the candidates "
        "on a held-out split (screen: the `screen` section)",
    )


class ScreenSpec(Section):
    """The screen: a short retraining of the candidate genotypes that ranks them (``select.by: screen``). Any
    other key is a retraining setting for the screen, over the ``retrain`` section's (``settings``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    top: int | None = Field(None, ge=1, description="distinct found genotypes screened, best search first (all)")
    epochs: int | None = Field(None, ge=1, description="default: a quarter of the retrain epochs, at least 1")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="screen seeds per candidate")

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_list(cls, value: Any) -> Any:
        seeds = [value] if isinstance(value, int) and not isinstance(value, bool) else value
        if isinstance(seeds, list) and seeds:
            if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
                raise ValueError(f"{seeds!r}: give a list of seeds >= 0, e.g. [0, 1]")
            if len(set(seeds)) != len(seeds):
                raise ValueError(f"repeated seeds in {seeds}: list each seed once")
        return seeds

    valid_portion: float = Field(
        0.1, ge=0, lt=1, description="training images held out to rank on (never the test set)"
    )
    scheduler: Literal["none", "asha"] = Field("none", description="asha: Ray Tune's ASHA stops weak candidates")
    grace_period: int = Field(1, ge=1, description="asha: epochs before a candidate may be stopped")
    reduction_factor: int = Field(4, ge=2, description="asha: 1/this of the candidates go on at each rung")

    @property
    def settings(self) -> dict[str, Any]:
        """The retraining settings given for the screen (the section's other keys)."""
        return dict(self.model_extra or {})


class BaselineSpec(Section):
    count: int = Field(0, ge=0, description="random architectures retrained with the same protocol and seeds")
    seed: int = Field(0, ge=0, description="seed of the random architectures")
    known: list[str] = Field(
        default_factory=list,
        description="published genotypes (names of pcdarts_core's KNOWN_GENOTYPES, e.g. PC_DARTS_cifar) retrained "
        "with the same protocol and seeds: the anchors that show whether the study's retraining reproduces them",
    )

    @field_validator("known")
    @classmethod
    def _known_names(cls, names: list[str]) -> list[str]:
        from pcdarts_core.known_genotypes import KNOWN_GENOTYPES

        for name in names:
            if name not in KNOWN_GENOTYPES:
                raise ValueError(f"{name!r} is not a known genotype: use some of {', '.join(KNOWN_GENOTYPES)}")
        if len(set(names)) != len(names):
            raise ValueError(f"{names}: a name is given twice; list each published genotype once")
        return names


class ResourcesSpec(Section):
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float | Literal["auto"] = Field(
        0.0,
        description="fractions below 1 pack several trials on one GPU; 'auto': each trial's share from its "
        "peak GPU memory, measured by a short probe (see orchestrator.gpu_packing)",
    )
    gpu_memory_margin: float = Field(
        0.25, ge=0, description="gpus_per_trial auto: room above the measured peak, as a part of it"
    )
    max_concurrent_trials: int | None = Field(None, ge=1, description="default: as many as the resources allow")
    max_failures: int = Field(2, ge=0, description="retries of a failed trial, each from its last epoch checkpoint")
    workers_per_trial: int = Field(
        1,
        ge=1,
        description="processes per search, data parallel through Ray Train, each with cpus_per_trial CPUs and "
        "gpus_per_trial GPUs (retrainings and screens run on one)",
    )

    @model_validator(mode="after")
    def _whole_gpus_per_worker(self) -> ResourcesSpec:
        gpus = self.gpus_per_trial
        if self.workers_per_trial > 1 and (gpus == "auto" or 0 < gpus < 1):
            raise ValueError(
                f"gpus_per_trial {gpus} with workers_per_trial {self.workers_per_trial}: each worker of a search "
                "needs GPUs of its own (NCCL runs one process per GPU); use gpus_per_trial: 1 (or 0 on CPUs)"
            )
        return self

    @field_validator("gpus_per_trial", mode="before")
    @classmethod
    def _share_or_auto(cls, value: Any) -> Any:
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{value!r} is neither a number nor 'auto': use e.g. 0.25, 1, 2 or auto")
        if not math.isfinite(value):
            raise ValueError(
                "not a finite number; use a number >= 0, a fraction <= 1 or whole GPUs (e.g. 0.25, 1, 2), or auto"
            )
        if value < 0:
            raise ValueError(f"{value}: must be >= 0 (0 = no GPU)")
        if value > 1 and value != int(value):
            raise ValueError("a trial uses a fraction of one GPU or whole GPUs: use e.g. 0.25, 1 or 2")
        return float(value)


class TrackingSpec(Section):
    uri: str | None = Field(None, description="MLflow tracking URI (default: sqlite:///STUDY/mlflow.db)")
    experiment: str | None = Field(None, description="MLflow experiment (default: the study's name)")


class RaySpec(Section):
    address: str | None = Field(None, description="none = start a local Ray; 'auto' or host:port = join a cluster")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray (default: all)")
    num_gpus: int | None = Field(None, ge=0, description="GPUs of a local Ray (default: all)")


class ReportSpec(Section):
    reference: dict[str, Any] | None = Field(
        None,
        description="the setting every other is compared with, as search settings (default: DARTS, k: 1 and "
        "edge_norm: false, when the grid has it)",
    )


class StudySpec(Section):
    name: str
    dataset: DatasetSpec
    search: dict[str, Any] = Field(description="the grid: any search setting, a value or a list of values")
    select: SelectSpec = SelectSpec()
    retrain: dict[str, Any] = Field(default_factory=dict, description="seeds, protocol and any retrain setting")
    screen: ScreenSpec | None = None
    baseline: BaselineSpec = BaselineSpec()
    resources: ResourcesSpec = ResourcesSpec()
    tracking: TrackingSpec = TrackingSpec()
    storage: str | None = Field(None, description="Ray Tune storage path (default: STUDY/tune); shared for clusters")
    ray: RaySpec = RaySpec()
    report: ReportSpec = ReportSpec()
    # the search grid, built once by the validation (see search_grid)
    _grid: tuple[tuple[dict[str, Any], SearchConfig], ...] = PrivateAttr(default=())
    # retrain.dataset, validated once (None: the retraining uses `dataset`)
    _retrain_data: DatasetSpec | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("use letters, digits, '.', '_' and '-' only (it names folders and runs), at most 64")
        return value

    @model_validator(mode="after")
    def _check_sections(self) -> StudySpec:
        self._grid = tuple(search_grid(self))  # raises SpecError naming the key
        check_workers(self)
        self._retrain_data = _parse_retrain_dataset(self.retrain.get("dataset"))
        retrain_config(self, seed=0)
        retrain_seeds(self)
        check_screen(self)
        return self

    @model_validator(mode="after")
    def _check_report(self) -> StudySpec:
        reference_setting(self)  # raises SpecError naming report.reference
        return self

    # --- derived values ------------------------------------------------------------
    @property
    def transfer(self) -> bool:
        """Whether the screen and the retraining use other data than the search (``retrain.dataset``)."""
        return self._retrain_data is not None

    @property
    def grid(self) -> tuple[tuple[dict[str, Any], SearchConfig], ...]:
        """Every grid point as (swept values, its SearchConfig), as :func:`search_grid` built it."""
        return self._grid

    def tracking_uri(self, study_dir: Path) -> str:
        return self.tracking.uri or f"sqlite:///{(study_dir / 'mlflow.db').resolve()}"

    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    def storage_path(self, study_dir: Path) -> str:
        """Ray Tune's storage; a relative path is taken from the study folder."""
        if self.storage is None:
            return str((study_dir / "tune").resolve())
        if "://" in self.storage:
            return self.storage
        return str((study_dir / Path(self.storage).expanduser()).resolve())


# --- the search grid --------------------------------------------------------------------


def dataset_settings(d: DatasetSpec) -> dict[str, Any]:
    """A dataset section as the core's settings (``dataset``, ``data_root``, ...)."""
    settings = {"dataset": d.name, "data_root": d.root, "download": d.download, "image_size": d.image_size}
    if d.train_subset is not None:
        settings["train_subset"] = d.train_subset
    return settings


def _check_keys(section: str, raw: dict[str, Any], allowed: set[str]) -> None:
    for key in raw:
        if key in DATASET_FIELDS:
            where = f"dataset.{DATASET_FIELDS[key]}"
            if section in ("retrain", "screen"):
                where += f" (or, for the retraining on other data, retrain.dataset.{DATASET_FIELDS[key]})"
            raise SpecError(f"{section}.{key}", f"set it once for the study as {where}")
        if key not in allowed:
            raise SpecError(f"{section}.{key}", f"unknown setting; known: {', '.join(sorted(allowed))}")


def search_axes(spec: StudySpec) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """(fixed settings, swept settings) of the search section; ``seed`` is always swept."""
    raw = dict(spec.search)
    allowed = (set(SearchConfig.model_fields) - set(DATASET_FIELDS)) | STUDY_FIELDS | {"protocol"}
    _check_keys("search", raw, allowed)
    if "seed" not in raw:
        raise SpecError("search.seed", "missing: give the search seeds, e.g. seed: [0, 1, 2, 3]")
    fixed, swept = {}, {}
    for key, value in raw.items():
        if isinstance(value, list):
            if not value:
                raise SpecError(f"search.{key}", "empty list: give at least one value")
            if len(set(map(repr, value))) != len(value):
                raise SpecError(f"search.{key}", f"repeated values in {value}: list each value once")
            swept[key] = value
        elif isinstance(value, dict):
            raise SpecError(f"search.{key}", "a setting is a value or a list of values, not a mapping")
        else:
            fixed[key] = value
    swept["seed"] = swept.pop("seed", [fixed.pop("seed", None)])
    if "steps" in swept:
        raise SpecError("search.steps", "one value per study: the retrained and random cells share one size")
    return fixed, swept


def search_protocol(fixed: dict[str, Any]) -> dict[str, Any]:
    """The settings ``search.protocol`` names (``cifar``, the default, or ``imagenet``: the published searches of
    ``SearchConfig.protocol``), taken out of the fixed settings; the dataset section and the search's own
    settings then override them."""
    name = fixed.pop("protocol", "cifar")
    if name not in SEARCH_PROTOCOLS:
        raise SpecError("search.protocol", f"{name!r}: use one of {', '.join(SEARCH_PROTOCOLS)} (one value per study)")
    return dict(SEARCH_PROTOCOLS[name])


def search_grid(spec: StudySpec) -> list[tuple[dict[str, Any], SearchConfig]]:
    """Every grid point as (swept values, its validated SearchConfig), in spec order, seeds innermost."""
    fixed, swept = search_axes(spec)
    if "protocol" in swept:
        raise SpecError("search.protocol", "one value per study: run each protocol as its own study")
    protocol = search_protocol(fixed)
    data = dataset_settings(spec.dataset)
    data = {key: value for key, value in data.items() if value is not None or key not in protocol}
    base = {**protocol, **data, **fixed}
    points: list[dict[str, Any]] = [{}]
    for key, values in swept.items():
        points = [{**p, key: v} for p in points for v in values]
    grid: list[tuple[dict[str, Any], SearchConfig]] = []
    seen: dict[SearchConfig, dict[str, Any]] = {}  # each config's grid point
    for point in points:
        try:
            config = SearchConfig(**{**base, **point})
        except ConfigError as err:
            section = "dataset" if err.field in DATASET_FIELDS else "search"
            field = DATASET_FIELDS.get(err.field, err.field)
            where = ", ".join(f"{k}={v}" for k, v in point.items() if k in swept and len(swept[k]) > 1)
            raise SpecError(f"{section}.{field}", f"{err}" + (f" (at grid point {where})" if where else "")) from None
        twin = seen.setdefault(config, point)
        if twin is not point:
            key = next(k for k in point if repr(point[k]) != repr(twin[k]))
            raise SpecError(
                f"search.{key}", f"{twin[key]!r} and {point[key]!r} are the same setting: list each value once"
            )
        grid.append((point, config))
    return grid


def check_workers(spec: StudySpec) -> None:
    """A search on several workers splits every batch evenly over them (:mod:`pcdarts_core.distributed`)."""
    workers = spec.resources.workers_per_trial
    for _, config in spec.grid:
        if config.batch_size % workers:
            where = "search.batch_size" if "batch_size" in spec.search else "resources.workers_per_trial"
            raise SpecError(
                where,
                f"batch_size {config.batch_size} cannot be split over workers_per_trial {workers}: use a batch size "
                f"that is a multiple of {workers} (each worker takes an equal share of every batch)",
            )


def setting_label(point: dict[str, Any]) -> str:
    """The setting a grid point belongs to (its swept values without the seed), e.g. ``k=4 edge_norm=on``."""
    parts = []
    for key, value in point.items():
        if key == "seed":
            continue
        parts.append(f"{key}={'on' if value is True else 'off' if value is False else value}")
    return " ".join(parts) or "default"


# --- the report's reference setting ------------------------------------------------------

#: DARTS: every channel on every edge (K=1), no edge normalisation.
DEFAULT_REFERENCE = {"k": 1, "edge_norm": False}


def _same(have: Any, want: Any) -> bool:
    if isinstance(have, bool) or isinstance(want, bool):  # true is not 1 here
        return have is want
    return have == want


def reference_setting(spec: StudySpec) -> tuple[str | None, str]:
    """(the label of the setting the report compares the others with, why there is none).

    The reference (``report.reference``, default :data:`DEFAULT_REFERENCE`) is a set of search
    settings; it must single out one setting of the grid. A reference given in the spec that does
    not is a SpecError; the default is simply left out, with the reason, when the grid lacks it."""
    given = spec.report.reference
    reference = dict(DEFAULT_REFERENCE if given is None else given)
    allowed = set(SearchConfig.model_fields) - set(DATASET_FIELDS) - STUDY_FIELDS
    for key in reference:
        if key not in allowed:
            raise SpecError(
                f"report.reference.{key}",
                "not a search setting of a grid point; use the grid's settings, e.g. k and edge_norm",
            )
    if not reference:
        raise SpecError(
            "report.reference", "empty: name the setting, e.g. {k: 1, edge_norm: false}, or leave report.reference out"
        )
    grid = spec.grid
    labels = list(
        dict.fromkeys(
            setting_label(point)
            for point, config in grid
            if all(_same(getattr(config, k), v) for k, v in reference.items())
        )
    )
    settings = list(dict.fromkeys(setting_label(point) for point, _ in grid))
    wanted = ", ".join(
        f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in reference.items()
    )
    if len(labels) == 1:
        return labels[0], ""
    if not labels:
        if given is not None:
            raise SpecError(
                "report.reference",
                f"{wanted} is not a setting of the search grid ({'; '.join(settings)}): give the values of one of them",
            )
        return None, (
            f"the default reference (DARTS: {wanted}) is not a setting of this grid, so comparisons with "
            "a reference are left out; name one with report.reference"
        )
    others = [key for key in grid[0][0] if key != "seed" and key not in reference]  # the swept keys, in spec order
    if given is not None:
        raise SpecError(
            "report.reference",
            f"{wanted} matches {len(labels)} settings ({'; '.join(labels)}): also give {', '.join(others)}",
        )
    return None, (
        f"the default reference (DARTS: {wanted}) matches {len(labels)} settings of this grid, so "
        f"comparisons with a reference are left out; name one with report.reference (also give {', '.join(others)})"
    )


# --- retraining -------------------------------------------------------------------------

RETRAIN_OWN = {"seeds", "protocol"}


def retrain_seeds(spec: StudySpec) -> list[int]:
    seeds = spec.retrain.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        raise SpecError("retrain.seeds", f"{seeds!r}: give a non-empty list of seeds >= 0, e.g. [0, 1, 2]")
    if len(set(seeds)) != len(seeds):
        raise SpecError("retrain.seeds", f"repeated seeds in {seeds}: list each seed once")
    return seeds


def retrain_dataset(spec: StudySpec) -> DatasetSpec:
    """The data the retraining (and the screen) use: ``retrain.dataset`` (transfer: search on one dataset,
    retrain on another), else the study's ``dataset``."""
    return spec._retrain_data or spec.dataset


def _parse_retrain_dataset(value: Any) -> DatasetSpec | None:
    """``retrain.dataset`` (a dataset section as ``dataset``, or a dataset's name) validated; None when not given."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise SpecError("retrain.dataset", f"{value!r}: give a dataset as in `dataset`, e.g. {{name: cifar100}}")
    try:
        return DatasetSpec(**value)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise SpecError(f"retrain.dataset.{where}", f"{problem} (a dataset as in `dataset`)") from None


def retrain_config(spec: StudySpec, seed: int) -> TrainConfig:
    """The validated retraining settings for one seed: the protocol's defaults, then the spec's values, on the
    retraining's data (:func:`retrain_dataset`)."""
    raw = dict(spec.retrain)
    data = retrain_dataset(spec)
    raw.pop("dataset", None)
    allowed = (set(TrainConfig.model_fields) - set(DATASET_FIELDS) - STUDY_FIELDS) | RETRAIN_OWN
    _check_keys("retrain", raw, allowed)
    protocol = raw.pop("protocol", "cifar")
    if protocol not in ("cifar", "imagenet"):
        raise SpecError("retrain.protocol", f"{protocol!r}: use cifar or imagenet")
    raw.pop("seeds", None)
    for key, value in raw.items():
        if isinstance(value, (list, dict)):
            raise SpecError(f"retrain.{key}", "retraining settings are single values (only retrain.seeds is a list)")
    try:
        base = TrainConfig.protocol(protocol) if protocol != "cifar" else TrainConfig()
        return base.replace(**{**dataset_settings(data), **raw, "seed": seed})
    except ConfigError as err:
        data_section = "retrain.dataset" if spec.transfer else "dataset"
        section = data_section if err.field in DATASET_FIELDS else "retrain"
        raise SpecError(f"{section}.{DATASET_FIELDS.get(err.field, err.field)}", str(err)) from None


def screen_section(spec: StudySpec) -> ScreenSpec:
    """The screen's section, its defaults where the spec has none."""
    return spec.screen or ScreenSpec()


def screen_epochs(spec: StudySpec) -> int:
    screen = screen_section(spec)
    return screen.epochs or max(1, retrain_config(spec, seed=0).epochs // 4)


def screen_config(spec: StudySpec, seed: int) -> TrainConfig:
    """The validated settings of one screen seed: the retrain settings, then the screen's own, a held-out split."""
    screen = screen_section(spec)
    settings = screen.settings
    allowed = set(TrainConfig.model_fields) - set(DATASET_FIELDS) - STUDY_FIELDS - {"epochs", "valid_portion"}
    _check_keys("screen", settings, allowed)
    for key, value in settings.items():
        if isinstance(value, (list, dict)):
            raise SpecError(f"screen.{key}", "screen settings are single values (only screen.seeds is a list)")
    try:
        return retrain_config(spec, seed).replace(
            **settings, epochs=screen_epochs(spec), valid_portion=screen.valid_portion
        )
    except ConfigError as err:
        raise SpecError(f"screen.{err.field}", str(err)) from None


def check_screen(spec: StudySpec) -> None:
    """The screen's keys fit together with ``select.by`` (each refusal names its key and the fix)."""
    screen = spec.screen
    if spec.select.by != "screen":
        if screen is not None:
            raise SpecError("screen", "given, but select.by is 'search': set select.by: screen, or remove screen")
        return
    screen = screen_section(spec)
    if screen.valid_portion == 0:
        raise SpecError("screen.valid_portion", "0 leaves no held-out images to rank on: use e.g. 0.1")
    if screen.scheduler != "asha":
        for key in ("grace_period", "reduction_factor"):
            if key in screen.model_fields_set:
                raise SpecError(f"screen.{key}", "only for scheduler: asha; set screen.scheduler: asha or remove it")
    elif screen.grace_period > screen_epochs(spec):
        raise SpecError(
            "screen.grace_period", f"{screen.grace_period} is more than the screen's {screen_epochs(spec)} epochs"
        )
    for seed in screen.seeds:
        screen_config(spec, seed)


# --- validating --------------------------------------------------------------------------


def parse_spec(raw: dict[str, Any], source: str = "spec") -> StudySpec:
    """Validate a spec dictionary: every problem named by its key's path."""
    try:
        return StudySpec(**raw)
    except SpecError as err:
        raise err.within(source) from None
    except ValidationError as err:
        first = err.errors()[0]
        own = first.get("ctx", {}).get("error")
        if isinstance(own, SpecError):
            raise own.within(source) from None
        path = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            problem = "unknown key; check its spelling against docs/study.md, 'The study spec'"
        elif first["type"] == "missing":
            problem = "missing: this key is required"
        else:
            problem = f"{first['msg']} (got {first.get('input')!r})"
        raise SpecError(path, problem, source=source) from None
    except TypeError as err:  # a value of a shape no check expected (a list where one value belongs)
        raise SpecError(
            "", f"{err}; check the types of the values against the spec table in docs/study.md", source=source
        ) from None
