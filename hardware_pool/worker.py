"""Plain (Ray-free) measurement on one device: what each pool actor runs."""

from __future__ import annotations

import importlib
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from evaluators.accuracy import EvaluationSet
from evaluators.backends.base import BackendOptions
from evaluators.backends.torch_backend import program_path
from evaluators.benchmark import MeasureJob, Measurement, measure_interleaved, measure_many
from evaluators.data import load_dataset
from evaluators.quantize import with_calibration
from evaluators.timing import TimingSettings
from hardware_pool.affinity import pin_process, thread_affinities
from hardware_pool.core_lock import hold_devices
from hardware_pool.target import Target
from search_spaces.errors import ParetonasError


@dataclass(frozen=True)
class MeasureRequest:
    """One candidate to time: its ONNX bytes and one sample's input shape (no batch).

    ``dataset``/``seed`` name the search's data, which the measuring process loads
    itself: an ``int8`` target calibrates on its training split, and with
    ``evaluate`` (always for ``int8``) the compiled model's accuracy on its test split
    is measured (``Measurement.accuracy``, the ``accuracy@<target>`` metric).
    """

    candidate: str
    onnx_model: bytes
    sample_shape: tuple[int, ...]
    dataset: str | None = None
    seed: int = 0
    evaluate: bool = False
    #: the candidate's ``torch.export`` program, for backends that time PyTorch itself
    torch_program: bytes | None = None


@dataclass(frozen=True)
class Provenance:
    """Where and with what a measurement was taken."""

    node: str
    hostname: str
    device_name: str
    runtime_version: str
    cores: tuple[int, ...] | None
    threads: int
    started_s: float  # wall-clock (time.time) when the measurement started
    waited_for_cores_s: float = 0.0
    drift: str = ""  # set when the device's reference model drifted around this measurement


@dataclass(frozen=True)
class PoolMeasurement(Measurement):
    """A ``Measurement`` plus where it was taken (``None`` outside the pool)."""

    provenance: Provenance | None = None


@dataclass(frozen=True)
class Activity:
    """What a worker is doing now: the request, its phase and seconds in this request."""

    request_id: str | None
    phase: str  # "idle", "waiting for cores", "measuring"
    elapsed_s: float  # since the phase started
    served: int


class DeviceWorker:
    """Owns one device and the targets on it; measures one request at a time.

    ``cores`` (already resolved on this node) pins every thread of the process to
    them at start and again after each measurement (runtimes start threads of their
    own). While a measurement runs it holds those cores' node-wide locks, so two
    searches on one machine never time on the same cores at once. ``plugins`` are
    modules imported first (plugin backends register on import).
    """

    def __init__(
        self, targets: Sequence[Target], *, timing: TimingSettings,
        cores: tuple[int, ...] | None = None, plugins: Sequence[str] = (),
        core_lock_timeout_s: float = 600.0, node: str = "", device_name: str = "",
        reference_every: int = 0, reference_tolerance: float = 0.15,
    ) -> None:
        for module in plugins:
            importlib.import_module(module)
        self.targets = {target.name: target for target in targets}
        self.timing = timing
        self.cores = tuple(sorted(cores)) if cores else None
        self.core_lock_timeout_s = core_lock_timeout_s
        self.node = node
        self.device_name = device_name
        indices = {t.device_index for t in targets
                   if t.on_gpu and t.device_index is not None}
        if indices:  # one device per actor: the GPU it names, seen as cuda:0 by runtimes
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, sorted(indices)))
        if self.cores is not None:
            pin_process(self.cores)
        #: node-wide locks held while measuring: the cores, and the GPU this process sees
        self.lock_names = [f"cpu-{core}" for core in self.cores or ()]
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
        if any(t.on_gpu for t in targets) and visible:
            self.lock_names.append(f"gpu-{visible}")
        from hardware_pool.discovery import runtime_versions

        self._versions = runtime_versions()
        self._hostname = socket.gethostname()
        self._lock = threading.Lock()
        self._activity: tuple[str | None, str, float] = (None, "idle", time.monotonic())
        self._served = 0
        self.reference_every = reference_every
        self.reference_tolerance = reference_tolerance
        self._measured: dict[str, int] = {}  # target -> measurements since start
        self._baseline: dict[str, float] = {}  # target -> the reference's first median

    def measure(
        self, target_name: str, request: MeasureRequest, *, request_id: str = "",
        timing: TimingSettings | None = None,
    ) -> PoolMeasurement:
        """Time ``request`` on one of this device's targets (holding its cores' locks).

        With ``reference_every`` N, the reference model is timed on the target's
        first measurement and after every N-th: when its median moved by more than
        ``reference_tolerance`` since the first, the measurement is taken again
        and carries the drift in ``provenance.drift``.
        """
        measurement = self._measure_once(target_name, request, request_id, timing)
        return self._check_drift(target_name, request, request_id, timing, measurement)

    def measure_targets(
        self, target_names: Sequence[str], request: MeasureRequest, *, request_id: str = "",
        timing: TimingSettings | None = None,
    ) -> dict[str, PoolMeasurement | ParetonasError]:
        """Time ``request`` on several of this device's targets, compiled once each and
        timed in alternating rounds (``measure_interleaved``); a target's failure is its
        entry, the others still measured."""
        results = self._measure_group(target_names, request, request_id, timing)
        return {name: self._check_drift(name, request, request_id, timing, result)
                if isinstance(result, PoolMeasurement) else result
                for name, result in results.items()}

    def measure_many(
        self, target_names: Sequence[str], requests: Sequence[MeasureRequest], *,
        request_id: str = "", timing: TimingSettings | None = None,
    ) -> dict[str, list[PoolMeasurement]]:
        """Time several ``requests`` on several of this device's targets round-robin
        (``evaluators.measure_many``): each (request, target) compiled once, short rounds
        alternating between all of them until every one has stopped, so all their
        latencies span the same stretch of the device's time. Returns target -> one
        measurement per request.

        Accuracy is not measured (an ``int8`` target still calibrates). The activity's
        clock restarts after each compile and each sweep, so the pool's timeout bounds
        those steps, not the whole call. Raises the first error, if any job failed.
        """
        targets = [self.targets[name] for name in target_names]
        busy_id = request_id or f"{len(requests)} models"
        queued = time.monotonic()
        with self._busy(busy_id, targets[0]):
            waited = time.monotonic() - queued
            started = time.time()

            def progressed() -> None:
                self._activity = (busy_id, "measuring", time.monotonic())

            with tempfile.TemporaryDirectory(prefix="paretonas-measure-") as tmp:
                models = []
                for index, request in enumerate(requests):
                    path = _write_model(request, Path(tmp) / f"{index:05d}-{_safe(request.candidate)}.onnx")
                    plain = replace(request, evaluate=False)
                    models.append((path, [MeasureJob(
                        backend=target.backend, options=self._data_options(target, plain)[0],
                        input_shape=(target.batch_size, *request.sample_shape))
                        for target in targets]))
                outcomes = measure_many(models, timing=timing or self.timing,
                                        on_progress=progressed)
        results: dict[str, list[PoolMeasurement]] = {name: [] for name in target_names}
        for per_target in outcomes:
            for target, outcome in zip(targets, per_target, strict=True):
                if isinstance(outcome, ParetonasError):
                    raise outcome
                results[target.name].append(self._pooled(outcome, target, started, waited))
        return results

    def _check_drift(self, target_name: str, request: MeasureRequest, request_id: str,
                     timing: TimingSettings | None, measurement: PoolMeasurement
                     ) -> PoolMeasurement:
        if not self.reference_every or timing is not None:
            return measurement
        count = self._measured[target_name] = self._measured.get(target_name, 0) + 1
        if count == 1 or count % self.reference_every == 0:
            drift = self._reference_drift(target_name, request_id)
            if drift:
                again = self._measure_once(target_name, request, request_id, timing)
                return with_drift(again, f"{drift}; re-measured (first: "
                                         f"{measurement.median_ms:.4g} ms)")
        return measurement

    def _reference_drift(self, target_name: str, request_id: str) -> str:
        """Time the reference model; describe its drift from the first time ('' if none)."""
        from hardware_pool.reference import reference_request

        median = self._measure_once(target_name, reference_request(),
                                    f"{request_id}:reference", None).median_ms
        baseline = self._baseline.setdefault(target_name, median)
        change = median / baseline - 1
        if abs(change) <= self.reference_tolerance:
            return ""
        return (f"reference model {median:.4g} ms vs {baseline:.4g} ms at start "
                f"({change:+.0%}, tolerance {self.reference_tolerance:.0%})")

    def _measure_once(
        self, target_name: str, request: MeasureRequest, request_id: str,
        timing: TimingSettings | None,
    ) -> PoolMeasurement:
        result = self._measure_group([target_name], request, request_id, timing)[target_name]
        if isinstance(result, ParetonasError):
            raise result
        return result

    def _measure_group(
        self, target_names: Sequence[str], request: MeasureRequest, request_id: str,
        timing: TimingSettings | None,
    ) -> dict[str, PoolMeasurement | ParetonasError]:
        targets = [self.targets[name] for name in target_names]
        results: dict[str, PoolMeasurement | ParetonasError] = {}
        queued = time.monotonic()
        with self._busy(request_id or request.candidate, targets[0]):
            waited = time.monotonic() - queued
            started = time.time()
            with tempfile.TemporaryDirectory(prefix="paretonas-measure-") as tmp:
                path = _write_model(request, Path(tmp) / f"{_safe(request.candidate)}.onnx")
                prepared = [(target, *self._data_options(target, request)) for target in targets]
                # one evaluation set per call: targets that want one are timed apart
                for wants in (False, True):
                    group = [item for item in prepared if (item[2] is not None) == wants]
                    if not group:
                        continue
                    outcomes = measure_interleaved(
                        path, timing=timing or self.timing, evaluation=group[0][2],
                        jobs=[MeasureJob(backend=target.backend, options=options,
                                         input_shape=(target.batch_size, *request.sample_shape))
                              for target, options, _ in group],
                    )
                    for (target, _, _), outcome in zip(group, outcomes, strict=True):
                        results[target.name] = outcome if isinstance(outcome, ParetonasError) \
                            else self._pooled(outcome, target, started, waited)
        return {name: results[name] for name in target_names}

    def _pooled(self, measurement: Measurement, target: Target, started: float,
                waited: float) -> PoolMeasurement:
        return PoolMeasurement(**{
            **{name: getattr(measurement, name) for name in measurement.__dataclass_fields__},
            "provenance": self.provenance(target, started_s=started, waited_s=waited),
        })

    def _data_options(self, target: Target, request: MeasureRequest
                      ) -> tuple[BackendOptions, EvaluationSet | None]:
        """The target's options (with int8 calibration) and the evaluation set, if any."""
        options = self.options(target)
        wanted = request.evaluate or target.precision == "int8"
        if request.dataset is None or not (wanted or target.precision == "int8"):
            return options, None
        dataset = load_dataset(request.dataset, seed=request.seed)
        options = with_calibration(options, dataset, seed=request.seed)
        return options, EvaluationSet.from_dataset(dataset) if wanted else None

    def options(self, target: Target) -> BackendOptions:
        return BackendOptions(device=target.device_kind, precision=target.precision,
                              threads=target.threads)

    def provenance(self, target: Target, *, started_s: float, waited_s: float = 0.0
                   ) -> Provenance:
        return Provenance(
            node=self.node, hostname=self._hostname, device_name=self.device_name,
            runtime_version=f"{target.backend} {self._versions.get(target.backend, 'unknown')}",
            cores=self.cores, threads=target.threads, started_s=started_s,
            waited_for_cores_s=waited_s,
        )

    def signature(self, target_name: str) -> str:
        """What makes two measurements comparable: target settings, device, runtime version."""
        target = self.targets[target_name]
        provenance = self.provenance(target, started_s=0.0)
        return json.dumps({
            "backend": target.backend, "device": target.device_kind,
            "precision": target.precision, "batch_size": target.batch_size,
            "threads": target.threads, "device_name": provenance.device_name,
            "runtime": provenance.runtime_version,
        }, sort_keys=True)

    def activity(self) -> Activity:
        request_id, phase, since = self._activity
        return Activity(request_id, phase, time.monotonic() - since, self._served)

    def describe(self) -> dict[str, object]:
        """Where this worker runs: pid, every thread's cores, its targets."""
        affinities = thread_affinities()
        return {
            "pid": os.getpid(),
            "cores": sorted({core for cores in affinities.values() for core in cores}),
            "threads": {str(tid): cores for tid, cores in affinities.items()},
            "pinned": self.cores is not None,
            "targets": sorted(self.targets),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    @contextmanager
    def _busy(self, request_id: str, target: Target) -> Iterator[None]:
        if not self._lock.acquire(blocking=False):
            raise ParetonasError("a device worker measures one request at a time")
        try:
            self._activity = (request_id, "waiting for cores", time.monotonic())
            locks = (hold_devices(self.lock_names, timeout_s=self.core_lock_timeout_s,
                                  holder=f"measuring {request_id} on target {target.name!r}")
                     if self.lock_names else nullcontext())
            with locks:
                self._activity = (request_id, "measuring", time.monotonic())
                try:
                    yield
                finally:
                    if self.cores is not None:
                        pin_process(self.cores)  # runtimes may have started threads
        finally:
            self._served += 1
            self._activity = (None, "idle", time.monotonic())
            self._lock.release()


def _write_model(request: MeasureRequest, path: Path) -> Path:
    """Write ``request``'s ONNX model to ``path`` (its torch program beside it, if any)."""
    path.write_bytes(request.onnx_model)
    if request.torch_program is not None:
        program_path(path).write_bytes(request.torch_program)
    return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "model"


def with_drift(measurement: PoolMeasurement, note: str) -> PoolMeasurement:
    """The same measurement with its provenance's drift note set."""
    if measurement.provenance is None:
        return measurement
    return replace(measurement, provenance=replace(measurement.provenance, drift=note))
