"""Search configuration: YAML -> validated, typed models. Errors name the YAML path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evaluators.backends import BACKENDS
from evaluators.data import DATASETS
from evaluators.settings import DEVICE_PATTERN
from evaluators.supernet import SubnetEvalSettings, SupernetSettings
from evaluators.timing import TimingSettings
from evaluators.training import TrainingSettings
from hardware_pool.target import Target
from orchestrator.errors import ConfigError
from orchestrator.objectives import Constraint, Objective, ObjectiveSet, known_metrics
from orchestrator.searchers import SEARCHERS, check_searcher_options
from search_spaces.elastic import ElasticSpace
from search_spaces.errors import ParetonasError, UnknownNameError
from search_spaces.loading import import_plugins, resolve_space_factory


class Section(BaseModel):
    """A config section: unknown keys are refused with the list of allowed ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(map(str, data)) - set(cls.model_fields))
            if unknown:
                raise ValueError(
                    f"unknown key(s) {unknown}; allowed: {', '.join(sorted(cls.model_fields))}"
                )
        return data


class SpaceConfig(Section):
    name: str = Field(min_length=1, description="registered space name or module:attribute")
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _resolvable(self) -> SpaceConfig:
        try:
            resolve_space_factory(self.name)
        except UnknownNameError as error:
            raise ValueError(
                f"{error}; a space registered with @register_space in your module needs "
                "that module listed under plugins: [module], or name it as module:Class"
            ) from None
        except ParetonasError as error:
            raise ValueError(str(error)) from None
        return self


class DatasetConfig(Section):
    name: str = "digits"

    @model_validator(mode="after")
    def _known(self) -> DatasetConfig:
        if self.name not in DATASETS:
            raise ValueError(f"unknown dataset {self.name!r}; known: {', '.join(DATASETS.names())}")
        return self


class TrainingConfig(Section):
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    schedule: Literal["constant", "cosine"] = "constant"
    threads: int = Field(1, ge=1)
    device: str = Field("cpu", pattern=DEVICE_PATTERN, description=(
        "where each trial trains its candidate: cpu, cuda or cuda:N (needs budget.trial_gpus)"))

    def settings(self, seed: int) -> TrainingSettings:
        return TrainingSettings(seed=seed, **self.model_dump())


class TargetConfig(Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    backend: str
    device: str = "cpu"
    precision: Literal["fp32", "fp16", "bf16", "int8"] = "fp32"
    batch_size: int = Field(1, ge=1)
    threads: int = Field(1, ge=1)
    cores: list[int] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _checks(self) -> TargetConfig:
        if self.backend not in BACKENDS:
            raise ValueError(
                f"unknown backend {self.backend!r}; known: {', '.join(BACKENDS.names())}"
            )
        if self.cores and min(self.cores) < 0 <= max(self.cores):
            raise ValueError(f"cores must be all >= 0 or all negative (from the last core), "
                             f"got {self.cores}")
        return self

    def target(self) -> Target:
        return Target(**{**self.model_dump(), "cores": None if self.cores is None else tuple(self.cores)})


class TimingConfig(Section):
    """Mirrors ``TimingSettings`` (its defaults; it checks the values) plus the pool's timeout."""

    warmup_runs: int = TimingSettings.warmup_runs
    min_runs: int = TimingSettings.min_runs
    max_runs: int = TimingSettings.max_runs
    min_seconds: float = TimingSettings.min_seconds
    max_seconds: float = TimingSettings.max_seconds
    rel_ci: float = TimingSettings.rel_ci
    confidence: float = TimingSettings.confidence
    round_seconds: float = TimingSettings.round_seconds
    round_warmup_runs: int = TimingSettings.round_warmup_runs
    calls_per_sample: int = TimingSettings.calls_per_sample
    measure_timeout_s: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _valid(self) -> TimingConfig:
        try:
            self.settings()
        except ParetonasError as error:
            raise ValueError(str(error)) from None
        return self

    def settings(self) -> TimingSettings:
        return TimingSettings(**self.model_dump(exclude={"measure_timeout_s"}))


class ConfirmConfig(Section):
    """The confirmation pass over the final front (see ``orchestrator.confirmation``)."""

    enabled: bool = Field(True, description=(
        "re-time the final front's members before the front is reported"))
    rounds: int = Field(3, ge=1, description=(
        "each member's timing budget per target, in multiples of the search's; the members "
        "alternate in short rounds"))


class PoolConfig(Section):
    """The hardware pool's settings (see ``hardware_pool.pool.HardwarePool``)."""

    core_lock_timeout_s: float = Field(600.0, gt=0, description=(
        "how long a measurement waits for cores another search on the node holds"))
    cache: bool = Field(True, description="never measure the same candidate on a target twice")
    reference_every: int = Field(0, ge=0, description=(
        "re-time a fixed reference model every N measurements per target (0: never)"))
    reference_tolerance: float = Field(0.15, gt=0, description=(
        "relative drift of the reference's median that flags the device and re-measures"))
    confirm: ConfirmConfig = ConfirmConfig()

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``HardwarePool``."""
        return self.model_dump(exclude={"confirm"})


class BoundConfig(Section):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> BoundConfig:
        if self.min is None and self.max is None:
            raise ValueError("give at least one of min, max")
        return self


class SearcherConfig(Section):
    name: str = "nsga2"
    options: dict[str, Any] = Field(default_factory=dict)
    noise_aware: bool = Field(False, description="latency differences inside the measured "
                                                 "intervals are ties in the front")

    @model_validator(mode="after")
    def _known(self) -> SearcherConfig:
        if self.name not in SEARCHERS:
            raise ValueError(f"unknown searcher {self.name!r}; known: {', '.join(SEARCHERS.names())}")
        return self


class BudgetConfig(Section):
    candidates: int = Field(24, ge=1)
    max_concurrent_trials: int = Field(1, ge=1)
    trial_cpus: float = Field(1.0, gt=0)
    trial_gpus: float = Field(0.0, ge=0)
    trial_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Ray custom resources each trial asks for, e.g. {paretonas/trainer: 1}: "
                    "trials run only on nodes that advertise them",
    )

    def trial_resource_request(self) -> dict[str, float]:
        """What Tune asks Ray for per trial."""
        return {"cpu": self.trial_cpus, "gpu": self.trial_gpus, **self.trial_resources}


class SchedulerConfig(Section):
    """How long each from-scratch candidate trains: ``fifo`` trains every one for
    ``training.epochs``; ``pareto-halving`` stops a candidate at a rung (``min_epochs``,
    ``min_epochs * reduction_factor``, ...) unless it is in the best
    ``1 / reduction_factor`` by non-dominated rank of the candidates that reached that rung,
    on every objective: its latencies are measured at the first rung."""

    name: Literal["fifo", "pareto-halving"] = "fifo"
    min_epochs: int = Field(1, ge=1)
    reduction_factor: int = Field(3, ge=2)

    def rungs(self, epochs: int) -> tuple[int, ...]:
        """The epochs after which a candidate may be stopped (none for ``fifo``)."""
        if self.name == "fifo":
            return ()
        rungs, rung = [], self.min_epochs
        while rung < epochs:
            rungs.append(rung)
            rung *= self.reduction_factor
        return tuple(rungs)


class RayConfig(Section):
    address: str | None = Field(None, description="None: start Ray in-process; 'auto' or ray://...")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the embedded Ray (default: all)")
    dashboard: bool = Field(False, description="start the embedded Ray's dashboard")
    dashboard_host: str = Field("127.0.0.1", description="where the embedded dashboard listens")


class TrackingConfig(Section):
    uri: str = Field(default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI",
                                                             "sqlite:///mlflow.db"),
                     description="MLflow store; default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    experiment: str = Field("paretonas", min_length=1)
    log_models: bool = True
    drain_timeout_s: float = Field(30.0, ge=0, description="how long the end of a search waits "
                                   "for MLflow to take the journal; the rest waits for `sync`")


class SupernetConfig(Section):
    """Weight-sharing mode: train the supernet (unless ``checkpoint`` names a trained one),
    then evaluate ``subnets_per_trial`` subnets per Tune trial with inherited weights."""

    checkpoint: str | None = Field(None, description="a trained supernet; null: train one")
    steps: int = Field(600, ge=1)
    teacher_steps: int = Field(0, ge=0, description="first steps train the largest subnet alone")
    batch_size: int = Field(128, ge=2)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    random_subnets: int = Field(2, ge=0)
    distill_temperature: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(100, ge=1)
    log_every: int = Field(20, ge=1)
    device: str = Field("cpu", pattern=DEVICE_PATTERN)
    cpus: float = Field(1.0, gt=0, description="CPUs of the training trial")
    threads: int = Field(1, ge=1)
    calibration_batches: int = Field(2, ge=1)
    calibration_batch_size: int = Field(128, ge=1)
    eval_samples: int = Field(1000, ge=1)
    eval_threads: int = Field(1, ge=1)
    subnets_per_trial: int = Field(16, ge=1)
    finetune_epochs: int = Field(0, ge=0, description=(
        "after the search, train each front subnet this many epochs from its inherited "
        "weights and score it on the whole test split (finetuned_accuracy); 0: off"))
    finetune_learning_rate: float = Field(1e-3, gt=0)

    @model_validator(mode="after")
    def _teacher_first(self) -> SupernetConfig:
        if self.teacher_steps >= self.steps:
            raise ValueError(f"teacher_steps ({self.teacher_steps}) must be below steps "
                             f"({self.steps})")
        return self

    def settings(self, seed: int) -> SupernetSettings:
        return SupernetSettings(
            seed=seed, **self.model_dump(include={
                "steps", "teacher_steps", "batch_size", "learning_rate", "weight_decay", "random_subnets",
                "distill_temperature", "checkpoint_every", "log_every", "device", "threads"}))

    def resource_request(self) -> dict[str, float]:
        """What the supernet trial and each fine-tuning task ask Ray for."""
        return {"cpu": self.cpus, "gpu": 0.0 if self.device == "cpu" else 1.0}

    def eval_settings(self, seed: int) -> SubnetEvalSettings:
        return SubnetEvalSettings(
            seed=seed, threads=self.eval_threads, eval_samples=self.eval_samples,
            calibration_batches=self.calibration_batches,
            calibration_batch_size=self.calibration_batch_size)

    def finetune_settings(self, seed: int) -> TrainingSettings | None:
        """How the front is fine-tuned after the search (one Ray task per subnet, with the
        supernet trial's ``cpus``, ``threads`` and ``device``); None when it is not."""
        if not self.finetune_epochs:
            return None
        return TrainingSettings(epochs=self.finetune_epochs, batch_size=self.batch_size,
                                learning_rate=self.finetune_learning_rate, schedule="cosine",
                                weight_decay=self.weight_decay, seed=seed,
                                threads=self.threads, device=self.device)


class SearchConfig(Section):
    name: str = Field("search", min_length=1)
    seed: int = 0
    plugins: list[str] = Field(
        default_factory=list,
        description="modules to import first (they register spaces, searchers, backends)",
    )
    space: SpaceConfig
    dataset: DatasetConfig = DatasetConfig()
    training: TrainingConfig = TrainingConfig()
    targets: list[TargetConfig] = Field(min_length=1)
    timing: TimingConfig = TimingConfig()
    pool: PoolConfig = PoolConfig()
    objectives: dict[str, Literal["min", "max"]] = Field(min_length=1)
    constraints: dict[str, BoundConfig] = Field(default_factory=dict)
    searcher: SearcherConfig = SearcherConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    budget: BudgetConfig = BudgetConfig()
    ray: RayConfig = RayConfig()
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    output_dir: str = "paretonas-results"
    mode: Literal["from_scratch", "weight_sharing"] = "from_scratch"
    supernet: SupernetConfig = SupernetConfig()

    @field_validator("output_dir")
    @classmethod
    def _filesystem_output_dir(cls, output_dir: str) -> str:
        """The journal is appended and fsynced, plots, ONNX models and checkpoints are
        files: object storage (``s3://``) cannot hold them."""
        if "://" in output_dir:
            raise ValueError(
                f"{output_dir!r} is a URI; paretonas keeps its tracking journal, plots, ONNX "
                f"models and checkpoints there as files, so give a filesystem path (on a "
                f"cluster: shared storage mounted at the same path on every node, such as "
                f"NFS, a Kubernetes volume, or a bucket mounted with a FUSE driver)")
        return output_dir

    @field_validator("plugins")
    @classmethod
    def _import_plugins(cls, plugins: list[str]) -> list[str]:
        """Imported before ``space`` is validated, so their registered names resolve."""
        try:
            import_plugins(plugins)
        except ParetonasError as error:
            raise ValueError(str(error)) from None
        return plugins

    @model_validator(mode="after")
    def _cross_checks(self) -> SearchConfig:
        if self.mode == "weight_sharing":
            factory = resolve_space_factory(self.space.name)
            if isinstance(factory, type) and not issubclass(factory, ElasticSpace):
                raise ValueError(f"mode: weight_sharing needs an elastic space (an ElasticSpace "
                                 f"such as elastic-mobilenet-v3); {self.space.name!r} is not one")
        names = [target.name for target in self.targets]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"targets: duplicate target name(s) {duplicates}")
        known = known_metrics(names)
        for section, metrics in (("objectives", self.objectives), ("constraints", self.constraints)):
            for metric in metrics:
                if metric not in known:
                    raise ValueError(
                        f"{section}.{metric}: unknown metric; known: {', '.join(known)}"
                    )
        try:
            check_searcher_options(self.searcher.name, self.searcher.options, len(self.objectives))
        except ParetonasError as error:
            raise ValueError(f"searcher.options: {error}") from None
        self._check_scheduler()
        if self.mode == "from_scratch" and self.training.device != "cpu" and not self.budget.trial_gpus:
            raise ValueError(f"training.device: {self.training.device} needs budget.trial_gpus > 0, "
                             f"so that Ray gives each trial a GPU (e.g. 1, or 0.5 to share one)")
        return self

    def _check_scheduler(self) -> None:
        if self.scheduler.name == "fifo":
            return
        if self.mode != "from_scratch":
            raise ValueError(f"scheduler: {self.scheduler.name} stops from-scratch training "
                             f"early; mode: {self.mode} trains no candidate (use fifo)")
        if self.scheduler.min_epochs >= self.training.epochs:
            raise ValueError(f"scheduler.min_epochs: {self.scheduler.min_epochs} leaves no "
                             f"rung before training.epochs {self.training.epochs}; lower it "
                             f"or train longer")
        on_targets = [m for m in [*self.objectives, *self.constraints] if m.startswith("accuracy@")]
        if on_targets:
            raise ValueError(f"scheduler: {self.scheduler.name} measures latency at the first "
                             f"rung, before the final weights exist, so {on_targets[0]} (the "
                             f"compiled model's accuracy) cannot be used with it; use fifo")

    def objective_set(self) -> ObjectiveSet:
        return ObjectiveSet(
            objectives=tuple(Objective(m, d) for m, d in self.objectives.items()),
            constraints=tuple(
                Constraint(m, minimum=b.min, maximum=b.max) for m, b in self.constraints.items()
            ),
        )


def parse_config(data: Any, *, source: str = "<config>") -> SearchConfig:
    """Validate a loaded YAML document; every problem is reported with its YAML path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            path = ".".join(str(part) for part in item["loc"]) or "(top level)"
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{path}: {message}")
        if len(problems) == 1:
            raise ConfigError(f"{source}: invalid configuration: {problems[0]}") from None
        raise ConfigError(f"{source}: invalid configuration ({len(problems)} problems)\n  "
                          + "\n  ".join(problems)) from None


def load_config(path: str | Path, *, overrides: dict[str, Any] | None = None) -> SearchConfig:
    """Read and validate a YAML config; ``overrides`` maps dotted paths to values."""
    path = Path(path)
    try:
        with path.open() as stream:  # a named stream: YAML errors then name the file
            data = yaml.safe_load(stream)
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}; check the path") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(error)}") from None
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value, source=str(path))
    return parse_config(data, source=str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """``budget.candidates=8`` -> ("budget.candidates", 8); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {error}") from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """One line: where (line, column) and what, as PyYAML knows them."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context = getattr(error, "context", None)
    return f"{where}{problem}" + (f" ({context})" if context else "") + "; fix the YAML syntax there"


def _set_dotted(data: Any, dotted: str, value: Any, *, source: str) -> None:
    """Set ``a.b.0.c`` in nested mappings and lists (a number indexes a list)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    *parents, leaf = dotted.split(".")
    node: Any = data
    walked: list[str] = []
    for part in [*parents, leaf]:
        is_leaf = len(walked) == len(parents)
        where = ".".join(walked) or "(top level)"
        if isinstance(node, list):
            if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                raise ConfigError(f"override {dotted}: {where} is a list of {len(node)}; "
                                  f"use an index 0..{len(node) - 1} instead of {part!r}")
            if is_leaf:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if is_leaf:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"override {dotted}: {where} is a {type(node).__name__}, "
                              "not a mapping or list; override it as a whole")
        walked.append(part)
