"""The hardware pool: one pinned Ray actor per device, and routing of candidates to them."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError

from evaluators.benchmark import Measurement
from evaluators.timing import TimingSettings
from hardware_pool.errors import TargetUnavailableError
from hardware_pool.target import Target, group_by_device
from hardware_pool.worker import DeviceWorker, MeasureRequest
from search_spaces.errors import ParetonasError


class _RayDeviceWorker(DeviceWorker):
    def placement(self) -> tuple[str, tuple[int, ...]]:
        """(node id, cores pinned there) — empty cores when the worker is not pinned."""
        return ray.get_runtime_context().get_node_id(), self.cores or ()


@dataclass(frozen=True)
class PoolClient:
    """What a trial holds to reach the pool: picklable actor handles per target."""

    actors: dict[str, Any]  # target name -> actor handle of the device that owns it
    timeout_s: float

    def measure_all(self, request: MeasureRequest) -> dict[str, Measurement]:
        """Time ``request`` on every target; devices work in parallel, each one serially."""
        for name, actor in self.actors.items():
            self._wait_until_up(name, actor)
        refs = {name: actor.measure.remote(name, request) for name, actor in self.actors.items()}
        return {name: self._get(name, ref) for name, ref in refs.items()}

    def _wait_until_up(self, target: str, actor: Any) -> None:
        """An actor that crashed on an earlier candidate is restarting: wait for it."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                ray.get(actor.placement.remote(), timeout=self.timeout_s)
                return
            except ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise TargetUnavailableError(
                        f"target {target!r}: its actor did not come back within {self.timeout_s:.0f} s"
                    ) from None
                time.sleep(0.2)
            except RayActorError as error:
                raise TargetUnavailableError(
                    f"target {target!r}: its measuring actor is dead ({_last_line(error)})"
                ) from None

    def _get(self, target: str, ref: ray.ObjectRef) -> Measurement:
        try:
            return ray.get(ref, timeout=self.timeout_s)
        except GetTimeoutError:
            ray.cancel(ref, force=True)
            raise TargetUnavailableError(
                f"target {target!r}: no measurement within {self.timeout_s:.0f} s"
            ) from None
        except RayTaskError as error:
            cause = error.cause
            if isinstance(cause, ParetonasError):
                raise type(cause)(f"target {target!r}: {cause}") from None
            raise
        except RayActorError as error:
            raise TargetUnavailableError(
                f"target {target!r}: its measuring actor died ({error.__class__.__name__}); "
                "the pool restarts it for the next candidate"
            ) from None


class HardwarePool:
    """Starts one Ray actor per device (targets sharing a device share its actor).

    An actor that crashes (a runtime segfaults on one candidate, say) fails that
    candidate and is restarted for the next one (``max_restarts``, -1: always).

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
    ) -> None:
        if not targets:
            raise TargetUnavailableError("the hardware pool needs at least one target")
        names = [target.name for target in targets]
        if len(set(names)) != len(names):
            raise TargetUnavailableError(f"target names must be unique, got {names}")
        self.targets = list(targets)
        self.timing = timing
        self.measure_timeout_s = measure_timeout_s
        self.max_restarts = max_restarts
        self.startup_timeout_s = startup_timeout_s
        self._actors: dict[str, Any] = {}  # device key -> actor
        self._routes: dict[str, str] = {}  # target name -> device key
        self._placements: dict[str, tuple[str, tuple[int, ...]]] = {}  # device -> node, cores

    def start(self) -> HardwarePool:
        for key, targets in group_by_device(self.targets).items():
            cores = {core for t in targets for core in t.cores or ()}
            resources = {"num_cpus": len(cores) or max(t.num_cpus for t in targets)}
            if targets[0].device.startswith("cuda"):
                resources["num_gpus"] = 1
            actor_class = ray.remote(_RayDeviceWorker).options(
                max_restarts=self.max_restarts, max_task_retries=0, **resources
            )
            self._actors[key] = actor_class.remote(targets, timing=self.timing)
            self._routes.update({target.name: key for target in targets})
        for key, actor in self._actors.items():
            try:
                self._placements[key] = ray.get(actor.placement.remote(),
                                                timeout=self.startup_timeout_s)
            except GetTimeoutError:
                self.shutdown()
                raise TargetUnavailableError(
                    f"device {key!r}: its actor did not start within {self.startup_timeout_s:.0f} s; "
                    "does the cluster have the CPUs/GPUs it asks for?"
                ) from None
            except (RayActorError, RayTaskError) as error:
                self.shutdown()
                raise TargetUnavailableError(
                    f"device {key!r}: actor failed to start: {_last_line(error)}"
                ) from None
        return self

    def client(self) -> PoolClient:
        if not self._actors:
            raise TargetUnavailableError("the hardware pool is not started")
        return PoolClient(
            actors={name: self._actors[key] for name, key in self._routes.items()},
            timeout_s=self.measure_timeout_s,
        )

    def reserved_cores(self) -> dict[str, list[int]]:
        """Node id -> cores pinned by this pool's actors there (trials should avoid them)."""
        reserved: dict[str, set[int]] = defaultdict(set)
        for node, cores in self._placements.values():
            reserved[node].update(cores)
        return {node: sorted(cores) for node, cores in reserved.items() if cores}

    def describe(self) -> list[dict[str, object]]:
        return [
            {"device": key, **ray.get(actor.describe.remote(), timeout=self.startup_timeout_s)}
            for key, actor in self._actors.items()
        ]

    def shutdown(self) -> None:
        for actor in self._actors.values():
            ray.kill(actor, no_restart=True)
        self._actors.clear()
        self._routes.clear()
        self._placements.clear()

    def __enter__(self) -> HardwarePool:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def _last_line(error: BaseException) -> str:
    """The final line of a (possibly remote) traceback: ``TypeName: message``."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    last = lines[-1] if lines else type(error).__name__
    name, sep, message = last.partition(": ")
    return f"{name.rsplit('.', 1)[-1]}: {message}" if sep and "." in name else last
