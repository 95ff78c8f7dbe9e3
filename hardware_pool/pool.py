"""The hardware pool: pinned Ray actors per device and node, and routing of candidates to them.

Placement: before any actor starts, a Ray task on every alive node checks the
targets there (``check_targets``) and resolves their cores on that node. A target
is served by every node that passes the checks and, on a cluster whose nodes
advertise paretonas resources (``discovery.resource_name``), offers its resource.
On each such node its targets are grouped by device (CPU targets whose resolved
cores overlap share one actor), and one actor per group is pinned to that node.
A target no node can serve fails the pool's start with every reason.

Timeouts: an actor runs ``measure`` in a one-slot concurrency group and answers
``activity`` from a ``control`` group meanwhile, so a client knows when its
request started; a request measuring for longer than ``measure_timeout_s`` has its
actor killed and restarted (freeing the device) and fails with
``MeasurementTimeoutError``. A request whose actor dies under it is retried once
on the restarted actor.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import ray
from ray.exceptions import (
    ActorUnavailableError,
    GetTimeoutError,
    RayActorError,
    RayTaskError,
)
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from evaluators.timing import TimingSettings
from hardware_pool.discovery import RESOURCE_PREFIX, RESOURCE_REQUEST, resource_name
from hardware_pool.errors import MeasurementTimeoutError, TargetUnavailableError
from hardware_pool.target import Target, group_by_device
from hardware_pool.worker import Activity, DeviceWorker, MeasureRequest, PoolMeasurement
from search_spaces.errors import ParetonasError

_LOST = (RayActorError, ActorUnavailableError)


@ray.remote(concurrency_groups={"control": 4, "measure": 1})  # type: ignore[call-overload]
class DeviceActor:
    """A ``DeviceWorker`` in a threaded actor: ``measure`` one at a time, ``control`` always."""

    def __init__(self, targets: Sequence[Target], **options: Any) -> None:
        self.worker = DeviceWorker(targets, node=ray.get_runtime_context().get_node_id(),
                                   **options)

    @ray.method(concurrency_group="measure")
    def measure(self, request_id: str, target: str, request: MeasureRequest,
                timing: TimingSettings | None = None) -> PoolMeasurement:
        return self.worker.measure(target, request, request_id=request_id, timing=timing)

    @ray.method(concurrency_group="measure")
    def measure_targets(self, request_id: str, targets: Sequence[str], request: MeasureRequest
                        ) -> dict[str, PoolMeasurement | ParetonasError]:
        return self.worker.measure_targets(targets, request, request_id=request_id)

    @ray.method(concurrency_group="measure")
    def measure_many(self, request_id: str, targets: Sequence[str],
                     requests: Sequence[MeasureRequest], timing: TimingSettings
                     ) -> dict[str, list[PoolMeasurement]]:
        return self.worker.measure_many(targets, requests, request_id=request_id, timing=timing)

    @ray.method(concurrency_group="control")
    def activity(self) -> Activity:
        return self.worker.activity()

    @ray.method(concurrency_group="control")
    def describe(self) -> dict[str, object]:
        return self.worker.describe()

    @ray.method(concurrency_group="control")
    def placement(self) -> tuple[str, tuple[int, ...]]:
        """(node id, cores pinned there): empty cores when the worker is not pinned."""
        return self.worker.node, self.worker.cores or ()

    @ray.method(concurrency_group="control")
    def signatures(self) -> dict[str, str]:
        return {name: self.worker.signature(name) for name in self.worker.targets}


@ray.remote(num_cpus=0, max_restarts=-1)
class MeasurementCache:
    """Finished measurements by (candidate, input shape, target signature)."""

    def __init__(self) -> None:
        self._entries: dict[str, PoolMeasurement] = {}

    def get(self, keys: Sequence[str]) -> PoolMeasurement | None:
        return next((self._entries[k] for k in keys if k in self._entries), None)

    def put(self, key: str, measurement: PoolMeasurement) -> None:
        self._entries[key] = measurement

    def size(self) -> int:
        return len(self._entries)


@ray.remote(num_cpus=0, max_retries=0)
def _node_report(targets: Sequence[Target], plugins: Sequence[str]) -> dict[str, Any]:
    """On one node: each target's problems there, its resolved cores, its device's name."""
    import importlib

    from hardware_pool.checks import check_targets
    from hardware_pool.discovery import cuda_gpus, probe_cpu
    from hardware_pool.target import resolve_cores, usable_cores

    for module in plugins:
        importlib.import_module(module)
    cores = usable_cores()
    model = probe_cpu()[0]
    gpus = cuda_gpus() if any(t.on_gpu for t in targets) else ()
    report: dict[str, Any] = {"node": ray.get_runtime_context().get_node_id(),
                              "problems": {}, "cores": {}, "device_names": {}}
    for target in targets:
        problems = check_targets([target], cores=cores)
        report["problems"][target.name] = problems
        if not problems:
            report["cores"][target.name] = (resolve_cores(target.cores, available=cores)
                                            if target.cores else None)
        if target.on_gpu and gpus:
            index = target.device_index or 0
            report["device_names"][target.name] = gpus[min(index, len(gpus) - 1)].name
        else:
            report["device_names"][target.name] = model if target.device_kind == "cpu" \
                else target.device
    return report


@dataclass(frozen=True)
class Replica:
    """One actor able to measure a target: its handle, device key, node and signature."""

    actor: Any
    device: str
    node: str
    signature: str


@dataclass(frozen=True)
class PoolClient:
    """What a trial holds to reach the pool: picklable actor handles per target."""

    replicas: dict[str, tuple[Replica, ...]]  # target name -> actors that can measure it
    timeout_s: float
    cache: Any = None  # MeasurementCache handle; None: measure every request
    poll_s: float = 0.2

    @property
    def actors(self) -> dict[str, Any]:
        """Target name -> its first actor (one per target on a single node)."""
        return {name: replicas[0].actor for name, replicas in self.replicas.items()}

    def measure_all(self, request: MeasureRequest) -> dict[str, PoolMeasurement]:
        """Time ``request`` on every target (cached ones from the cache). Devices work in
        parallel; targets sharing a device are timed together in alternating rounds.
        Raises the first target's error (in target order) if any failed."""
        names = list(self.replicas)
        results: dict[str, PoolMeasurement | BaseException] = dict(self._cached(names, request))
        groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for name in names:
            if name not in results:
                groups[tuple(r.device for r in self.replicas[name])].append(name)
        if groups:
            with ThreadPoolExecutor(len(groups)) as executor:
                futures = [executor.submit(self._measure_group, group, request)
                           for group in groups.values()]
                for future, group in zip(futures, groups.values(), strict=True):
                    error = future.exception()
                    results.update(future.result() if error is None
                                   else dict.fromkeys(group, error))
        for name in names:
            outcome = results[name]
            if isinstance(outcome, BaseException):
                raise outcome
        return {name: results[name] for name in names}  # type: ignore[misc]

    def _cached(self, names: Sequence[str], request: MeasureRequest
                ) -> dict[str, PoolMeasurement]:
        if self.cache is None:
            return {}
        hits = ray.get([self.cache.get.remote([cache_key(request, r.signature)
                                               for r in self.replicas[name]]) for name in names])
        return {name: hit for name, hit in zip(names, hits, strict=True) if hit is not None}

    def _measure_group(self, names: list[str], request: MeasureRequest
                       ) -> dict[str, PoolMeasurement | BaseException]:
        outcomes = self._with_retry(
            names[0], request.candidate,
            lambda replica, rid: replica.actor.measure_targets.remote(rid, names, request),
        )
        results: dict[str, PoolMeasurement | BaseException] = {}
        for name in names:
            outcome = outcomes[name]
            if isinstance(outcome, ParetonasError):
                results[name] = type(outcome)(f"target {name!r}: {outcome}")
                continue
            results[name] = outcome
            if self.cache is not None:
                replica = _replica_of(self.replicas[name], outcome)
                self.cache.put.remote(cache_key(request, replica.signature), outcome)
        return results

    def measure(self, target: str, request: MeasureRequest, *,
                timing: TimingSettings | None = None) -> PoolMeasurement:
        """Time ``request`` on one target (from the cache when it was measured before)."""
        replicas = self._replicas(target)
        use_cache = self.cache is not None and timing is None
        if use_cache:
            hit = ray.get(self.cache.get.remote(
                [cache_key(request, r.signature) for r in replicas]))
            if hit is not None:
                return hit
        measurement = self._with_retry(
            target, request.candidate,
            lambda replica, rid: replica.actor.measure.remote(rid, target, request, timing),
        )
        if use_cache:
            self.cache.put.remote(cache_key(request, _replica_of(replicas, measurement).signature),
                                  measurement)
        return measurement

    def confirm(
        self, requests: Sequence[MeasureRequest], *, timing: TimingSettings, rounds: int = 3,
        targets: Sequence[str] | None = None,
    ) -> dict[str, dict[str, PoolMeasurement]]:
        """Re-time ``requests`` (e.g. the final front) on each target, never from the cache:
        per device, one actor compiles every (request, target) pair at once and times them
        all round-robin in short rounds (``DeviceWorker.measure_many``), each with
        ``timing.scaled(rounds)`` (``rounds`` times its budget); devices work in parallel.

        Returns candidate -> target -> measurement (median of its rounds' medians, the
        interval over those rounds). Raises the first device's error, if any failed.
        """
        if rounds < 1:
            raise TargetUnavailableError(f"confirm needs rounds >= 1, got {rounds}")
        timing = timing.scaled(rounds)
        names = list(targets) if targets is not None else list(self.replicas)
        requests = list(requests)
        groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for name in names:
            groups[tuple(r.device for r in self._replicas(name))].append(name)

        def confirm_group(group: list[str]) -> dict[str, list[PoolMeasurement]]:
            return self._with_retry(  # type: ignore[no-any-return]
                group[0], f"{len(requests)} models",
                lambda replica, rid: replica.actor.measure_many.remote(
                    rid, group, requests, timing))

        with ThreadPoolExecutor(len(groups) or 1) as executor:
            measured = list(executor.map(confirm_group, groups.values()))
        results: dict[str, dict[str, PoolMeasurement]] = {r.candidate: {} for r in requests}
        for per_target in measured:
            for name, measurements in per_target.items():
                for request, measurement in zip(requests, measurements, strict=True):
                    results[request.candidate][name] = measurement
        return {candidate: {name: per_target[name] for name in names}
                for candidate, per_target in results.items()}

    def _replicas(self, target: str) -> tuple[Replica, ...]:
        try:
            return self.replicas[target]
        except KeyError:
            raise TargetUnavailableError(
                f"unknown target {target!r}; this pool has: {', '.join(self.replicas)}"
            ) from None

    def _with_retry(self, target: str, what: str, submit: Any) -> Any:
        """Run ``submit(replica, request_id)`` on a replica; once more if the actor died."""
        replicas = self._replicas(target)
        for attempt in range(2):
            replica = self._pick(target, replicas)
            try:
                return self._await(target, what, replica, submit)
            except _ActorLost as lost:
                if attempt:
                    raise TargetUnavailableError(
                        f"target {target!r}: its measuring actor died twice while measuring "
                        f"{what} ({lost}); the pool restarts it for the next candidate"
                    ) from None
        raise TargetUnavailableError(f"target {target!r}: no attempt made")  # unreachable

    def _pick(self, target: str, replicas: tuple[Replica, ...]) -> Replica:
        """The least busy replica that is up (waits for a restarting one)."""
        if len(replicas) == 1:
            self._wait_until_up(target, replicas[0].actor)
            return replicas[0]
        states: list[tuple[bool, int, int]] = []
        for index, replica in enumerate(replicas):
            try:
                activity = ray.get(replica.actor.activity.remote(), timeout=10)
            except (*_LOST, GetTimeoutError):
                continue
            states.append((activity.phase != "idle", activity.served, index))
        if not states:
            self._wait_until_up(target, replicas[0].actor)
            return replicas[0]
        return replicas[min(states)[2]]

    def _await(self, target: str, what: str, replica: Replica, submit: Any) -> Any:
        request_id = uuid.uuid4().hex
        ref = submit(replica, request_id)
        submitted = last_answer = time.monotonic()
        poll = self.poll_s
        while True:
            ready, _ = ray.wait([ref], timeout=poll)
            if ready:
                return self._get(target, ref)
            poll = min(poll * 2, 2.0)
            try:
                activity = ray.get(replica.actor.activity.remote(), timeout=10)
            except _LOST:
                continue  # ``ref`` reports the death
            except GetTimeoutError:  # even the control group is stuck
                if time.monotonic() - max(submitted, last_answer) > self.timeout_s:
                    ray.kill(replica.actor, no_restart=False)
                    raise MeasurementTimeoutError(
                        f"target {target!r}: measuring {what} hung: its actor stopped "
                        f"answering for {self.timeout_s:.0f} s; the actor was restarted"
                    ) from None
                continue
            last_answer = time.monotonic()
            if activity.phase != "measuring":
                continue
            ours = activity.request_id is not None and activity.request_id.startswith(request_id)
            if ours and activity.elapsed_s > self.timeout_s:
                ray.kill(replica.actor, no_restart=False)  # frees the device; restarts
                raise MeasurementTimeoutError(
                    f"target {target!r}: measuring {what} hung: no result "
                    f"{activity.elapsed_s:.0f} s after it started (timeout "
                    f"{self.timeout_s:.0f} s); the device's actor was restarted"
                )
            if not ours and activity.elapsed_s > 1.5 * self.timeout_s + 5:
                # another caller's request hung and nobody freed the device: free it; ours
                # then fails as lost and is retried on the restarted actor
                ray.kill(replica.actor, no_restart=False)

    def _get(self, target: str, ref: ray.ObjectRef) -> Any:
        try:
            return ray.get(ref)
        except RayTaskError as error:
            cause = error.cause
            if isinstance(cause, ParetonasError):
                raise type(cause)(f"target {target!r}: {cause}") from None
            raise
        except _LOST as error:
            raise _ActorLost(type(error).__name__) from None

    def _wait_until_up(self, target: str, actor: Any) -> None:
        """An actor that crashed on an earlier request is restarting: wait for it."""
        deadline = time.monotonic() + max(self.timeout_s, 60.0)
        while True:
            try:
                ray.get(actor.activity.remote(), timeout=10)
                return
            except (ActorUnavailableError, GetTimeoutError):
                if time.monotonic() > deadline:
                    raise TargetUnavailableError(
                        f"target {target!r}: its actor did not come back within "
                        f"{max(self.timeout_s, 60.0):.0f} s"
                    ) from None
                time.sleep(0.2)
            except RayActorError as error:
                raise TargetUnavailableError(
                    f"target {target!r}: its measuring actor is dead ({_last_line(error)})"
                ) from None


class _ActorLost(Exception):
    """The actor died under a request (it is restarted; the request may be retried)."""


class HardwarePool:
    """Starts the measuring actors (see the module docstring) and hands out clients.

    An actor that crashes (a runtime segfaults on one candidate, say) is restarted
    (``max_restarts``, -1: always) and the request it was running retried once.
    ``plugins`` are modules every node and actor imports first (plugin backends
    register on import). ``core_lock_timeout_s``: how long a measurement waits for
    cores another process on the node holds. ``cache``: answer a request measured
    before (same candidate, shape, target, device and runtime) from memory.
    ``reference_every``/``reference_tolerance``: re-time a fixed reference model every
    N measurements per target and re-measure when it drifted (see ``DeviceWorker``).

    Use as a context manager inside an initialised Ray session::

        with HardwarePool(targets, timing=TimingSettings()) as pool:
            client = pool.client()   # pass to trials
    """

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        timing: TimingSettings,
        measure_timeout_s: float = 300.0,
        max_restarts: int = -1,
        startup_timeout_s: float = 120.0,
        plugins: Sequence[str] = (),
        core_lock_timeout_s: float = 600.0,
        cache: bool = True,
        reference_every: int = 0,
        reference_tolerance: float = 0.15,
    ) -> None:
        if not targets:
            raise TargetUnavailableError("the hardware pool needs at least one target")
        names = [target.name for target in targets]
        if len(set(names)) != len(names):
            raise TargetUnavailableError(f"target names must be unique, got {names}")
        for name, value in (("measure_timeout_s", measure_timeout_s),
                            ("startup_timeout_s", startup_timeout_s),
                            ("core_lock_timeout_s", core_lock_timeout_s)):
            if not isinstance(value, int | float) or value <= 0:
                raise TargetUnavailableError(f"HardwarePool.{name} must be > 0, got {value!r}")
        self.targets = list(targets)
        self.timing = timing
        self.measure_timeout_s = float(measure_timeout_s)
        self.max_restarts = max_restarts
        self.startup_timeout_s = float(startup_timeout_s)
        self.plugins = tuple(plugins)
        self.core_lock_timeout_s = float(core_lock_timeout_s)
        self.use_cache = cache
        if not isinstance(reference_every, int) or reference_every < 0:
            raise TargetUnavailableError(
                f"HardwarePool.reference_every must be an integer >= 0, got {reference_every!r}")
        if not reference_tolerance > 0:
            raise TargetUnavailableError(
                f"HardwarePool.reference_tolerance must be > 0, got {reference_tolerance!r}")
        self.reference_every = reference_every
        self.reference_tolerance = float(reference_tolerance)
        self._cache: Any = None
        self._actors: list[Replica] = []
        self._routes: dict[str, list[Replica]] = {}
        self._placements: dict[str, tuple[str, tuple[int, ...]]] = {}  # device@node -> cores

    def start(self) -> HardwarePool:
        try:
            self._start()
        except BaseException:
            self.shutdown()
            raise
        return self

    def _start(self) -> None:
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        labelled = any(key.startswith(RESOURCE_PREFIX)
                       for node in nodes for key in node.get("Resources", {}))
        refs = [_node_report.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
        ).remote(self.targets, self.plugins) for node in nodes]
        try:
            reports = ray.get(refs, timeout=self.startup_timeout_s)
        except GetTimeoutError:
            raise TargetUnavailableError(
                f"checking the targets on {len(nodes)} node(s) took over "
                f"{self.startup_timeout_s:.0f} s; is every node responsive?") from None
        except RayTaskError as error:
            raise TargetUnavailableError(
                f"checking the targets failed on a node: {_last_line(error)}") from None
        offers = {node["NodeID"]: node.get("Resources", {}) for node in nodes}
        hosts = {node["NodeID"]: node.get("NodeManagerHostname", "?") for node in nodes}
        serving: dict[str, list[Target]] = defaultdict(list)  # node -> targets served there
        problems: list[str] = []
        for target in self.targets:
            resource = resource_name(target.backend, target.device)
            reasons = []
            for report in reports:
                node = report["node"]
                where = f"node {hosts[node]} ({node[:8]})"
                if labelled and resource not in offers[node]:
                    reasons.append(f"{where} does not offer Ray resource {resource!r}")
                elif report["problems"][target.name]:
                    reasons.extend(f"{where}: {p}" for p in report["problems"][target.name])
                else:
                    serving[node].append(target)
            if not any(target in served for served in serving.values()):
                hint = (f"; start a node that has it with `ray start --resources "
                        f"\"$(paretonas targets --ray-resources)\"` (it offers {resource!r})"
                        if labelled and all("does not offer" in r for r in reasons) else "")
                problems.append(f"target {target.name!r} cannot be measured on any node: "
                                + "; ".join(reasons) + hint)
        if problems:
            raise TargetUnavailableError("\n".join(problems))
        by_node = {report["node"]: report for report in reports}
        for node, served in serving.items():
            report = by_node[node]
            for key, group in group_by_device(served, cores=report["cores"]).items():
                self._start_actor(node, f"{key}@{node[:8]}", group, report, labelled)
        for replica in self._actors:
            self._await_start(replica)
        self._cache = MeasurementCache.remote() if self.use_cache else None  # type: ignore[attr-defined]

    def _start_actor(self, node: str, device: str, group: list[Target],
                     report: dict[str, Any], labelled: bool) -> None:
        cores = sorted({c for t in group for c in report["cores"][t.name] or ()})
        resources: dict[str, float] = {}
        if labelled:
            resources = {resource_name(t.backend, t.device): RESOURCE_REQUEST for t in group}
        options: dict[str, Any] = {
            "num_cpus": len(cores) or max(t.num_cpus for t in group),
            "resources": resources,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False),
            "max_restarts": self.max_restarts, "max_task_retries": 0,
        }
        if group[0].on_gpu:
            options["num_gpus"] = 1  # Ray sets CUDA_VISIBLE_DEVICES to the GPU it grants
        actor = DeviceActor.options(**options).remote(  # type: ignore[attr-defined]
            group, timing=self.timing, cores=tuple(cores) or None, plugins=self.plugins,
            core_lock_timeout_s=self.core_lock_timeout_s,
            device_name=report["device_names"][group[0].name],
            reference_every=self.reference_every, reference_tolerance=self.reference_tolerance,
        )
        replica = Replica(actor=actor, device=device, node=node, signature="")
        self._actors.append(replica)
        for target in group:
            self._routes.setdefault(target.name, []).append(replica)

    def _await_start(self, replica: Replica) -> None:
        try:
            node, cores = ray.get(replica.actor.placement.remote(), timeout=self.startup_timeout_s)
            signatures = ray.get(replica.actor.signatures.remote(), timeout=self.startup_timeout_s)
        except GetTimeoutError:
            raise TargetUnavailableError(
                f"device {replica.device!r}: its actor did not start within "
                f"{self.startup_timeout_s:.0f} s; does the node have the CPUs/GPUs it asks for?"
            ) from None
        except (RayActorError, RayTaskError) as error:
            raise TargetUnavailableError(
                f"device {replica.device!r}: actor failed to start: {_last_line(error)}"
            ) from None
        self._placements[replica.device] = (node, tuple(cores))
        for name, routes in self._routes.items():
            self._routes[name] = [replace(r, signature=signatures[name])
                                  if r.actor is replica.actor else r for r in routes]

    def client(self) -> PoolClient:
        if not self._actors:
            raise TargetUnavailableError("the hardware pool is not started")
        return PoolClient(
            replicas={name: tuple(routes) for name, routes in self._routes.items()},
            timeout_s=self.measure_timeout_s, cache=self._cache,
        )

    def reserved_cores(self) -> dict[str, list[int]]:
        """Node id -> cores pinned by this pool's actors there (trials should avoid them)."""
        reserved: dict[str, set[int]] = defaultdict(set)
        for node, cores in self._placements.values():
            reserved[node].update(cores)
        return {node: sorted(cores) for node, cores in reserved.items() if cores}

    def describe(self) -> list[dict[str, object]]:
        """Per actor: device key, node, pid, every thread's cores, its targets."""
        return [
            {"device": replica.device, "node": replica.node,
             **ray.get(replica.actor.describe.remote(), timeout=self.startup_timeout_s)}
            for replica in self._actors
        ]

    def shutdown(self) -> None:
        for replica in self._actors:
            ray.kill(replica.actor, no_restart=True)
        if self._cache is not None:
            ray.kill(self._cache, no_restart=True)
        self._cache = None
        self._actors.clear()
        self._routes.clear()
        self._placements.clear()

    def __enter__(self) -> HardwarePool:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def cache_key(request: MeasureRequest, signature: str) -> str:
    """The cache key of a request on a target: candidate, input shape, target signature."""
    text = json.dumps([request.candidate, list(request.sample_shape), request.dataset,
                       request.seed, request.evaluate, signature])
    return hashlib.sha256(text.encode()).hexdigest()


def _replica_of(replicas: tuple[Replica, ...], measurement: PoolMeasurement) -> Replica:
    node = measurement.provenance.node if measurement.provenance else None
    return next((r for r in replicas if r.node == node), replicas[0])


def _last_line(error: BaseException) -> str:
    """The final line of a (possibly remote) traceback: ``TypeName: message``."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    last = lines[-1] if lines else type(error).__name__
    name, sep, message = last.partition(": ")
    return f"{name.rsplit('.', 1)[-1]}: {message}" if sep and "." in name else last
