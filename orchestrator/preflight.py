"""Pre-flight: everything that can be checked before anything trains, in one place.

``paretonas validate`` and ``paretonas run`` both call ``preflight``, so they reach the
same verdict: a config that validates does not fail at start-up for a reason that
could have been seen here. Each failure is a ``PreflightError`` whose one-line
message names the cause and the fix. No Ray, no MLflow import: it takes seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from evaluators.data import Dataset, load_dataset
from hardware_pool.checks import target_problems
from hardware_pool.target import Target, group_by_device, resolve_cores, usable_cores
from orchestrator.config import SearchConfig
from orchestrator.errors import ConfigError
from orchestrator.mlflow_sink import server_reachable
from orchestrator.searchers import Searcher, create_searcher
from search_spaces import SearchSpace, create_space
from search_spaces.errors import ParetonasError

#: How long to wait for a tracking server to answer before refusing to start.
TRACKING_TIMEOUT_S = 5.0

T = TypeVar("T")


class PreflightError(ConfigError):
    """A config that is well-formed but cannot run here; the message says how to fix it."""


@dataclass(frozen=True)
class Preflight:
    """What the checks built (the search reuses them) and what they warn about."""

    dataset: Dataset
    space: SearchSpace
    searcher: Searcher
    warnings: tuple[str, ...]


def preflight(config: SearchConfig, *, tracking: bool = True) -> Preflight:
    """Check ``config`` against this machine; raise ``PreflightError`` on the first problem.

    ``tracking=False`` skips the tracking-store check (for callers that bring their own).
    """
    check_ray_client(config)
    check_output_dir(config.output_dir)
    if tracking:
        check_tracking_uri(config.tracking.uri)
    check_resources(config)
    dataset = _step("dataset", lambda: load_dataset(config.dataset.name, seed=config.seed))
    space = _step("space", lambda: create_space(config.space.name, input_spec=dataset.input_spec,
                                                options=config.space.options))
    warnings = check_space(space, config)
    searcher = _step("searcher.options", lambda: create_searcher(
        config.searcher.name, space=space, seed=config.seed, options=config.searcher.options,
        num_objectives=len(config.objectives)))
    population = getattr(searcher, "population_size", None)
    if isinstance(population, int) and config.budget.candidates < population:
        warnings.append(
            f"budget.candidates ({config.budget.candidates}) is smaller than the "
            f"{config.searcher.name} population ({population}): the search never gets past "
            "random initial candidates; raise budget.candidates or lower "
            "searcher.options.population_size"
        )
    return Preflight(dataset=dataset, space=space, searcher=searcher, warnings=tuple(warnings))


def _step(where: str, make: Callable[[], T]) -> T:
    try:
        return make()
    except PreflightError:
        raise
    except ParetonasError as error:
        raise PreflightError(f"{where}: {error}") from error


def check_space(space: SearchSpace, config: SearchConfig) -> list[str]:
    """The space has choices and its sampled architecture builds and runs; returns warnings."""
    choices = list(space.choices())
    if not choices:
        raise PreflightError(
            f"space: {config.space.name} has no choices, so every candidate would be the same "
            "network; return at least one Choice from choices()"
        )
    arch = space.sample(np.random.default_rng(config.seed))
    try:
        space.validate(arch)
    except ParetonasError as error:
        spec = space.input_spec
        raise PreflightError(
            f"space: {error}; fix build() so that every architecture takes input "
            f"(batch, {', '.join(map(str, spec.shape))}) and returns (batch, {spec.num_classes}) "
            "(read both from self.input_spec)"
        ) from error
    warnings = []
    size = space.size()
    if size < config.budget.candidates:
        warnings.append(
            f"space {config.space.name} has only {size} distinct architecture(s) but "
            f"budget.candidates is {config.budget.candidates}: some will be evaluated again; "
            f"lower budget.candidates to {size} or widen the space"
        )
    return warnings


def check_ray_client(config: SearchConfig) -> None:
    """``ray://`` needs Ray Client (``ray[client]``)."""
    address = config.ray.address
    if address and address.startswith("ray://"):
        try:
            import grpc  # noqa: F401  (what ray[client] adds)
        except ImportError:
            raise PreflightError(
                f"ray.address {address} needs Ray Client, which is not installed: "
                "pip install 'ray[client]==2.60.0' (the cluster's Ray version), or run on a "
                "cluster node with ray.address: auto"
            ) from None


def check_resources(config: SearchConfig) -> None:
    """The targets, and what the embedded Ray must have for the pool, trials and supernet
    (``paretonas resume`` checks these too: the machine may have changed)."""
    check_targets(config)
    check_cpus(config)
    check_gpus(config)
    check_trial_resources(config)


def check_cpus(config: SearchConfig) -> None:
    """The embedded Ray must have the CPUs the measuring actors and one trial ask for.

    Run after ``check_targets`` (the cores resolve); devices are grouped as the pool
    groups them, so ``[-1]`` and the last core by number count once.
    """
    if config.ray.address is not None:
        return
    cpus = _ray_cpus(config)
    available = usable_cores()
    targets = [t.target() for t in config.targets]
    cores = {t.name: resolve_cores(t.cores, available=available) if t.cores else None
             for t in targets}
    pool = sum(_device_cpus(members, cores)
               for members in group_by_device(targets, cores=cores).values()
               if members[0].device_kind == "cpu")
    needed = pool + config.budget.trial_cpus
    if needed > cpus:
        raise PreflightError(
            f"the search needs {needed:g} CPUs ({pool} for the measuring actors, "
            f"{config.budget.trial_cpus:g} per trial) but Ray has {cpus}; lower "
            "budget.trial_cpus or the targets' threads/cores, or raise ray.num_cpus"
        )
    if config.mode == "weight_sharing":
        check_supernet_cpus(config)


def check_supernet_cpus(config: SearchConfig) -> None:
    """The embedded Ray must have the CPUs the supernet trial and fine-tuning ask for."""
    cpus = _ray_cpus(config)
    if config.ray.address is None and config.supernet.cpus > cpus:
        raise PreflightError(
            f"supernet.cpus {config.supernet.cpus:g} (the supernet trial and each fine-tuning "
            f"task) is more than the {cpus} CPUs Ray has; lower it or raise ray.num_cpus"
        )


def check_trial_resources(config: SearchConfig) -> None:
    """The embedded Ray advertises only this machine's targets as custom resources; a
    trial asking for another one (meant for a cluster's nodes) would wait forever."""
    wanted = config.budget.trial_resources
    if config.ray.address is not None or not wanted:
        return
    from hardware_pool.discovery import probe_node  # what ray_session gives the embedded Ray

    here = probe_node().ray_resources()
    missing = {name: amount for name, amount in wanted.items() if here.get(name, 0) < amount}
    if missing:
        name, amount = next(iter(missing.items()))
        raise PreflightError(
            f"budget.trial_resources asks each trial for {name}: {amount:g}, which the embedded "
            f"Ray does not have (it has {', '.join(sorted(here)) or 'no custom resources'}), so "
            "no trial would start; drop it here, or set ray.address of a cluster whose nodes "
            "declare it"
        )


def check_gpus(config: SearchConfig, *, trials: bool = True) -> None:
    """What asks the embedded Ray for a GPU must find one: Ray would wait for it forever.

    ``trials=False`` checks the supernet alone. A cluster (``ray.address``) is not
    checked: its GPU nodes may be added on demand.
    """
    if config.ray.address is not None:
        return
    wants = []
    if trials and config.budget.trial_gpus:
        wants.append(f"budget.trial_gpus {config.budget.trial_gpus:g} (each trial)")
    if config.mode == "weight_sharing" and config.supernet.device != "cpu":
        wants.append(f"supernet.device {config.supernet.device} (the supernet trial"
                     f"{' and fine-tuning' if config.supernet.finetune_epochs else ''})")
    if not wants:
        return
    import torch  # after the cheap checks: importing it takes a second

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not gpus:
        raise PreflightError(
            f"{' and '.join(wants)} asks for a GPU, but this machine has none that torch can "
            "see, so the embedded Ray would wait for one forever; use cpu, or ray.address of "
            "a cluster with GPU nodes"
        )


#: A node's name for the resources Tune's requests name in lower case.
_NODE_RESOURCE = {"cpu": "CPU", "gpu": "GPU"}


def cluster_shortfalls(config: SearchConfig, nodes: Sequence[Mapping[str, float]]) -> list[str]:
    """On a cluster: each trial or task kind whose ask no single node covers, given each
    live node's total Ray resources (``nodes``). Ray holds such a trial until a node that
    fits it joins, which an autoscaler may do, so these are warnings, not errors."""
    asks: list[tuple[str, dict[str, float]]] = []  # Tune's request names (cpu, gpu)
    if config.mode == "weight_sharing":
        if config.supernet.checkpoint is None or config.supernet.finetune_epochs:
            asks.append(("the supernet trial and fine-tuning tasks (supernet.cpus, supernet.device)",
                         config.supernet.resource_request()))
        asks.append(("each subnet trial (budget.trial_cpus)", {"cpu": config.budget.trial_cpus}))
    else:
        asks.append(("each trial (budget.trial_cpus, trial_gpus, trial_resources)",
                     config.budget.trial_resource_request()))
    shortfalls = []
    for who, ask in asks:
        wanted = {_NODE_RESOURCE.get(name, name): amount for name, amount in ask.items()
                  if amount > 0}
        if not any(all(node.get(name, 0) >= amount for name, amount in wanted.items())
                   for node in nodes):
            shown = ", ".join(f"{name}: {amount:g}" for name, amount in wanted.items())
            shortfalls.append(
                f"no node of the Ray cluster has what {who} asks for ({shown}): it waits "
                f"until such a node joins (an autoscaler may add one); otherwise lower the ask "
                f"or start a node that has it")
    return shortfalls


def _ray_cpus(config: SearchConfig) -> int:
    """The CPUs the embedded Ray starts with."""
    return config.ray.num_cpus or os.cpu_count() or 1


def _device_cpus(members: list[Target], cores: dict[str, tuple[int, ...] | None]) -> int:
    pinned = {core for target in members for core in cores[target.name] or ()}
    return len(pinned) or max(target.num_cpus for target in members)


def check_output_dir(output_dir: str) -> None:
    """``output_dir`` (or the folder it will be created in) must be a writable folder."""
    _check_writable_folder(f"output_dir {output_dir}", Path(output_dir))


def _check_writable_folder(label: str, path: Path) -> None:
    existing = path.expanduser().resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise PreflightError(f"{label}: {existing} is a file, not a folder; name a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PreflightError(f"{label}: {existing} is not writable; "
                             "name a folder you can write to")


def check_tracking_uri(uri: str) -> None:
    """A sqlite file or local store must be writable; a server must answer within seconds."""
    if uri.startswith("sqlite:///"):
        _check_writable_file(uri, Path(uri.removeprefix("sqlite:///")))
    elif uri.startswith(("http://", "https://")):
        reason = server_reachable(uri, timeout_s=TRACKING_TIMEOUT_S)  # the tracker's own check
        if reason is not None:
            raise PreflightError(
                f"tracking.uri {uri}: no MLflow server answered within {TRACKING_TIMEOUT_S:g} s "
                f"({reason}); start one (mlflow server --host 0.0.0.0 --port PORT) or fix "
                "tracking.uri"
            )
    elif "://" not in uri or uri.startswith("file://"):  # a local MLflow file store
        _check_writable_folder(f"tracking.uri {uri}", Path(uri.removeprefix("file://")))


def _check_writable_file(uri: str, path: Path) -> None:
    path = path.expanduser()
    if path.is_dir():
        raise PreflightError(f"tracking.uri {uri}: {path} is a folder; name a .db file")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise PreflightError(f"tracking.uri {uri}: {path} is not writable; "
                                 "fix its permissions or point tracking.uri elsewhere")
        return
    folder = path.parent
    if not folder.is_dir():
        raise PreflightError(f"tracking.uri {uri}: folder {folder} does not exist; "
                             "create it or point tracking.uri elsewhere")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PreflightError(f"tracking.uri {uri}: folder {folder} is not writable; "
                             "point tracking.uri at a folder you can write to")


def check_targets(config: SearchConfig) -> None:
    """Each target's backend can run its device and precision here; its cores exist.

    The hardware pool's own ``target_problems`` decides (one source of truth); the
    pool checks again on the node each actor lands on. Node-local facts are checked
    here only when Ray runs in-process (``ray.address: null``): on a cluster the
    measuring actors run elsewhere.
    """
    if config.ray.address is not None:
        return
    available = usable_cores()
    for index, target in enumerate(config.targets):
        problems = target_problems(target.target(), available=available)
        if problems:
            fix = ("fix its cores" if problems[0].startswith("cores ") else
                   "change its backend/device/precision (`paretonas list` shows what runs here)")
            raise PreflightError(f"targets.{index} ({target.name}): {problems[0]}; {fix}")
