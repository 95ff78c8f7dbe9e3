"""Plain (Ray-free) measurement on one device: what each pool actor runs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evaluators.backends.base import BackendOptions
from evaluators.benchmark import Measurement, measure_onnx
from evaluators.timing import TimingSettings
from hardware_pool.target import Target, resolve_cores


@dataclass(frozen=True)
class MeasureRequest:
    """One candidate to time: its ONNX bytes and one sample's input shape (no batch)."""

    candidate: str
    onnx_model: bytes
    sample_shape: tuple[int, ...]


class DeviceWorker:
    """Owns one device and the targets on it; measures one candidate at a time.

    On construction it pins the process to its targets' cores (if given) so timings
    are not disturbed by the scheduler moving it around.
    """

    def __init__(self, targets: Sequence[Target], *, timing: TimingSettings) -> None:
        self.targets = {target.name: target for target in targets}
        self.timing = timing
        specs = sorted({core for target in targets for core in target.cores or ()})
        self.cores: tuple[int, ...] | None = resolve_cores(tuple(specs)) if specs else None
        if self.cores is not None:
            os.sched_setaffinity(0, self.cores)

    def measure(self, target_name: str, request: MeasureRequest) -> Measurement:
        target = self.targets[target_name]
        with tempfile.TemporaryDirectory(prefix="paretonas-measure-") as tmp:
            path = Path(tmp) / f"{request.candidate}.onnx"
            path.write_bytes(request.onnx_model)
            return measure_onnx(
                path,
                backend=target.backend,
                options=BackendOptions(
                    device=target.device, precision=target.precision, threads=target.threads
                ),
                input_shape=(target.batch_size, *request.sample_shape),
                timing=self.timing,
            )

    def describe(self) -> dict[str, object]:
        """Where this worker runs: process id, the cores it may use, its targets."""
        return {
            "pid": os.getpid(),
            "cores": sorted(os.sched_getaffinity(0)),
            "pinned": self.cores is not None,
            "targets": sorted(self.targets),
        }
