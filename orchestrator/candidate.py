"""Evaluate one candidate end to end: build, train, export, time on every target."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evaluators.backends.torch_backend import save_torch_program
from evaluators.data import load_dataset
from evaluators.export import count_parameters, export_onnx
from evaluators.training import TrainingSettings, held_out_accuracy, train_and_evaluate
from hardware_pool.affinity import pin_process
from hardware_pool.pool import PoolClient
from hardware_pool.target import usable_cores
from hardware_pool.worker import MeasureRequest
from orchestrator.errors import CandidateError
from orchestrator.objectives import target_metric
from search_spaces import InputSpec, SearchSpace
from search_spaces.errors import ParetonasError

#: The stages of evaluating a candidate; each one's time is reported as ``time_<stage>_s``.
STAGES = ("build", "data", "train", "export", "measure")
#: Metrics a candidate reports besides per-target ones (``<metric>@<target>``) and timings.
SCALAR_METRICS = ("accuracy", "train_loss", "params", "onnx_mb", "epochs")


def stage_time_key(stage: str) -> str:
    return f"time_{stage}_s"


def is_candidate_metric(name: str) -> bool:
    """Whether ``name`` is one of ``evaluate_candidate``'s metrics (not one Tune adds)."""
    return (name in SCALAR_METRICS or "@" in name
            or name in {stage_time_key(stage) for stage in STAGES})


@dataclass(frozen=True)
class CandidateJob:
    """Everything a trial needs besides the architecture; picklable, sent to every trial."""

    space: str
    space_options: dict[str, Any]
    input_spec: InputSpec
    dataset: str
    training: TrainingSettings
    pool: PoolClient
    reserved_cores: dict[str, list[int]]
    opset: int = 17
    #: measure every target's compiled accuracy (``accuracy@<target>``; int8 always is)
    evaluate_on_targets: bool = False
    #: also export the ``torch.export`` program (a ``torch-eager``/``torch-compile`` target)
    torch_program: bool = False
    #: epochs after which to report partial results (multi-objective successive halving)
    rungs: tuple[int, ...] = ()


def evaluate_candidate(
    values: dict[str, Any], job: CandidateJob, *, space: SearchSpace, onnx_dir: Path,
    report_rung: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Return the candidate's metrics; raise ``CandidateError`` naming the failing stage.

    With ``job.rungs`` (multi-objective successive halving), the model is exported and
    timed after the first rung's epoch and ``report_rung`` gets the metrics (with
    ``epochs``) after each rung's epoch, with the model exported as it is then: the
    scheduler may stop the candidate there (``report_rung`` does not return), and that
    export is its model. Latency does not depend on the weights, so it is not re-timed.
    """
    arch = space.architecture(values)
    timings: dict[str, float] = {}

    def stage(name: str, fn: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        except CandidateError:  # a nested stage (a rung inside training) said where
            raise
        except ParetonasError as error:
            raise CandidateError(f"candidate {arch.key} failed in {name}: {error}") from error
        except Exception as error:  # user space code or a runtime crashed: keep the cause
            raise CandidateError(
                f"candidate {arch.key} failed in {name}: {type(error).__name__}: {error}"
            ) from error
        finally:
            key = stage_time_key(name)
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - start

    def build() -> torch.nn.Module:
        torch.manual_seed(job.training.seed ^ zlib.crc32(arch.key.encode()))
        return space.build(arch)

    model = stage("build", build)
    dataset = stage("data", lambda: load_dataset(job.dataset, seed=job.training.seed))
    onnx_path = onnx_dir / f"{arch.key}.onnx"
    measured: dict[str, Any] = {}  # target -> its measurement, taken once

    def export_and_measure() -> dict[str, float]:
        """Export the model as it is now; time it unless that was done at a rung."""
        stage("export", lambda: export_onnx(
            model, example_input=space.example_input(1), path=onnx_path, candidate=arch.key,
            opset=job.opset,
        ))
        program = None
        if job.torch_program:
            program = stage("export", lambda: save_torch_program(
                model, example_input=space.example_input(1), onnx_path=onnx_path)).read_bytes()
        onnx_model = onnx_path.read_bytes()
        if not measured:
            request = MeasureRequest(arch.key, onnx_model, job.input_spec.shape,
                                     dataset=job.dataset, seed=job.training.seed,
                                     evaluate=job.evaluate_on_targets, torch_program=program)
            measured.update(stage("measure", lambda: job.pool.measure_all(request)))
        metrics = {"params": float(count_parameters(model)), "onnx_mb": len(onnx_model) / 1e6}
        for target, measurement in measured.items():
            for name, value in measurement.as_metrics().items():
                metrics[target_metric(name, target)] = float(value)
            metrics[target_metric("latency_ms", target)] = measurement.median_ms
            metrics[target_metric("latency_p90_ms", target)] = measurement.p90_ms
        return metrics

    in_rungs = [0.0]  # seconds spent in rungs, which the training stage does not count

    def at_rung(epoch: int, loss: float) -> None:
        if epoch not in job.rungs or report_rung is None:
            return
        start = time.perf_counter()
        accuracy = held_out_accuracy(model, dataset)
        metrics = {**export_and_measure(), "accuracy": accuracy, "train_loss": loss,
                   "epochs": float(epoch), **timings}
        in_rungs[0] += time.perf_counter() - start
        report_rung(metrics)

    trained = stage("train", lambda: train_and_evaluate(
        model, dataset, job.training, after_epoch=at_rung if job.rungs else None))
    timings[stage_time_key("train")] -= in_rungs[0]
    metrics = export_and_measure()
    return {**metrics, "accuracy": trained.accuracy, "train_loss": trained.train_loss,
            "epochs": float(job.training.epochs), **timings}


def pin_away_from(reserved_cores: dict[str, list[int]], node_id: str) -> None:
    """Keep every thread of this process off the cores the pool's actors are pinned to
    on this node (a node with no other core leaves the process as it is)."""
    reserved = set(reserved_cores.get(node_id, ()))
    free = set(usable_cores()) - reserved
    if reserved and free:
        pin_process(free)
