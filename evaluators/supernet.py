"""Train an elastic supernet (sandwich rule, in-place distillation) and evaluate its subnets.

Training checkpoints atomically every ``checkpoint_every`` steps and on SIGINT/SIGTERM,
and resumes from the checkpoint it finds. The batches and subnets of step ``n`` depend
only on the seed and ``n``, so a resumed run repeats exactly what was lost.

A subnet is evaluated by extracting it (a static module with copied weights),
recalibrating its batch-norm statistics on a few fixed training batches, and scoring
it on a fixed held-out subset.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evaluators.data import Dataset
from evaluators.errors import CheckpointError, SettingsError, TrainingError, TrainingInterrupted
from evaluators.export import count_parameters
from evaluators.settings import check_device, check_integers, torch_device
from evaluators.training import in_layout, layout_hint, training_layout
from search_spaces import Architecture
from search_spaces.elastic import ElasticSpace, Permutation, Supernet, permute_

CHECKPOINT_FORMAT = "paretonas-supernet/1"

@dataclass(frozen=True, kw_only=True)
class SupernetSettings:
    """Sandwich-rule training: per step the largest subnet learns from the labels, the
    smallest and ``random_subnets`` random ones from the largest's outputs.

    The first ``teacher_steps`` steps train the largest subnet alone (the first stage of
    progressive shrinking), so distillation starts from a teacher that knows the task;
    they cost about a quarter of a sandwich step. When they end, the supernet sorts its
    elastic channels by importance (``Supernet.sort_channels``), so smaller subnets
    start from the teacher's most important channels.
    """

    steps: int = 600
    teacher_steps: int = 0
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    random_subnets: int = 2
    distill_temperature: float = 1.0
    checkpoint_every: int = 100
    log_every: int = 20
    seed: int = 0
    threads: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_integers(self, {"steps": 1, "teacher_steps": 0, "batch_size": 2, "random_subnets": 0,
                              "checkpoint_every": 1, "log_every": 1, "seed": 0, "threads": 1})
        if self.teacher_steps >= self.steps:
            raise SettingsError(f"SupernetSettings.teacher_steps must be below steps "
                                f"({self.steps}), got {self.teacher_steps}")
        for name in ("learning_rate", "distill_temperature", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < math.inf or (
                    value == 0 and name != "weight_decay"):
                raise SettingsError(f"SupernetSettings.{name} must be a finite number > 0, "
                                    f"got {value!r}")
        check_device(self)


@dataclass(frozen=True)
class SupernetTrainingResult:
    checkpoint: Path
    steps: int
    resumed_from: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


LogCallback = Callable[[dict[str, float]], None]


def train_supernet(
    space: ElasticSpace, dataset: Dataset, settings: SupernetSettings, *, checkpoint: Path,
    on_log: LogCallback | None = None,
) -> SupernetTrainingResult:
    """Train ``space``'s supernet up to ``settings.steps``, resuming from ``checkpoint``.

    ``on_log`` receives ``{"step", "loss_largest", "loss_distill", "lr"}`` every
    ``log_every`` steps. On SIGINT/SIGTERM (when running in the main thread) the
    current step finishes, a checkpoint is written and ``TrainingInterrupted`` raised.
    """
    device = torch_device(settings.device, purpose="supernet")
    checkpoint = Path(checkpoint)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        net = space.supernet().to(device)
    # channels-last when it has depthwise convolutions (as from-scratch training does);
    # checkpoints load into either layout
    layout = training_layout(net)
    net = net.to(memory_format=layout)  # type: ignore[call-overload]  # untyped, documented kwarg
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.steps)
    start_step, history = 0, []
    if checkpoint.exists():
        state = read_checkpoint(checkpoint, space)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_step, history = int(state["step"]), list(state["history"])
    train_x = in_layout(torch.tensor(dataset.train_x).to(device), layout)
    train_y = torch.tensor(dataset.train_y).to(device)
    if len(train_x) < settings.batch_size:
        raise SettingsError(f"batch_size {settings.batch_size} exceeds the {len(train_x)} "
                            f"training samples of {dataset.name}")
    largest, smallest = space.largest(), space.smallest()

    def save(step: int) -> None:
        write_checkpoint(checkpoint, {
            "format": CHECKPOINT_FORMAT, "space": space.name, "choices": _choice_table(space),
            "input_shape": list(space.input_spec.shape), "num_classes": space.input_spec.num_classes,
            "settings": asdict(settings), "step": step, "history": history,
            "model": net.state_dict(), "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
        })

    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    net.train()
    try:
        with _interrupt_flag() as interrupted:
            sums, count = np.zeros(2), 0
            for step in range(start_step + 1, settings.steps + 1):
                rng = np.random.default_rng([settings.seed, step])
                batch = _batch_indices(len(train_x), settings, step).to(device)
                subnets = [smallest] + [space.sample(rng) for _ in range(settings.random_subnets)]
                if step <= settings.teacher_steps:
                    subnets = []
                elif step == settings.teacher_steps + 1 and settings.teacher_steps:
                    follow_permutations(optimizer, net.sort_channels())
                sums += _sandwich_step(net, optimizer, train_x[batch], train_y[batch],
                                       largest, subnets, settings.distill_temperature, step)
                schedule.step()
                count += 1
                if step % settings.log_every == 0 or step == settings.steps:
                    entry = {"step": float(step), "loss_largest": float(sums[0] / count),
                             "loss_distill": float(sums[1] / count),
                             "lr": float(schedule.get_last_lr()[0])}
                    history.append(entry)
                    sums, count = np.zeros(2), 0
                    if on_log is not None:
                        on_log(entry)
                if step % settings.checkpoint_every == 0 or step == settings.steps:
                    save(step)
                if interrupted.is_set():
                    save(step)
                    raise TrainingInterrupted(
                        f"supernet training interrupted at step {step}/{settings.steps}; "
                        f"checkpoint saved to {checkpoint}; run again to resume")
    finally:
        torch.set_num_threads(previous_threads)
    return SupernetTrainingResult(checkpoint=checkpoint, steps=settings.steps,
                                  resumed_from=start_step, seconds=time.perf_counter() - started,
                                  history=history)


def _sandwich_step(net: Supernet, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                   y: torch.Tensor, largest: Architecture, subnets: list[Architecture],
                   temperature: float, step: int) -> np.ndarray:
    """One optimiser step; return (largest's cross-entropy, mean distillation loss)."""
    try:
        optimizer.zero_grad(set_to_none=True)
        logits = net(x, largest)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        teacher = F.softmax(logits.detach() / temperature, dim=1)
        distill = 0.0
        for arch in subnets:
            student = F.log_softmax(net(x, arch) / temperature, dim=1)
            child = F.kl_div(student, teacher, reduction="batchmean") * temperature ** 2
            child.backward()
            distill += child.item()
        optimizer.step()
    except RuntimeError as error:  # includes out-of-memory
        raise TrainingError(f"supernet training failed at step {step}: {error}"
                            f"{layout_hint(net, error)}") from error
    values = np.array([loss.item(), distill / max(len(subnets), 1)])
    if not np.all(np.isfinite(values)):
        raise TrainingError(f"supernet training diverged at step {step} (losses {values}); "
                            f"try a lower learning_rate")
    return values


def follow_permutations(optimizer: torch.optim.Optimizer, moved: list[Permutation]) -> None:
    """Permute the optimiser's per-parameter state (e.g. AdamW's moments) as the
    parameters were, so each moment stays with its channel."""
    for parameter, index, dim in moved:
        for value in optimizer.state.get(parameter, {}).values():
            if isinstance(value, torch.Tensor) and value.shape == parameter.shape:
                permute_(value, index.to(value.device), dim)


def _batch_indices(samples: int, settings: SupernetSettings, step: int) -> torch.Tensor:
    """Step ``step``'s batch: epochs are seeded permutations, so any step is reproducible."""
    per_epoch = samples // settings.batch_size
    epoch, position = divmod(step - 1, per_epoch)
    order = torch.randperm(samples, generator=torch.Generator().manual_seed(
        settings.seed * 1_000_003 + epoch))
    return order[position * settings.batch_size:(position + 1) * settings.batch_size]


# -- checkpoints ---------------------------------------------------------------------------
def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as stream:
            torch.save(state, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def read_checkpoint(path: Path, space: ElasticSpace) -> dict[str, Any]:
    """Load a checkpoint and check it matches ``space``; else one error naming the mismatch."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"supernet checkpoint {path} does not exist; train one with "
                              f"`paretonas supernet train CONFIG`") from None
    except Exception as error:
        raise CheckpointError(f"cannot read supernet checkpoint {path}: {error}") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a paretonas supernet checkpoint "
                              f"(expected format {CHECKPOINT_FORMAT})")
    where = f"supernet checkpoint {path} does not match space {space.name!r}"
    if state["space"] != space.name:
        raise CheckpointError(f"{where}: it was trained for space {state['space']!r}")
    shape, classes = list(space.input_spec.shape), space.input_spec.num_classes
    if state["input_shape"] != shape or state["num_classes"] != classes:
        raise CheckpointError(f"{where}: input {state['input_shape']}/{state['num_classes']} classes "
                              f"in the checkpoint, {shape}/{classes} for the dataset")
    saved, current = state["choices"], _choice_table(space)
    for name in sorted(set(saved) | set(current)):
        if saved.get(name) != current.get(name):
            raise CheckpointError(
                f"{where}: dimension {name} allows {current.get(name, '(nothing)')} in the space "
                f"but {saved.get(name, '(nothing)')} in the checkpoint; use the space options it "
                f"was trained with or train a new supernet")
    expected = space.supernet().state_dict()
    model = state["model"]
    for name in [*expected, *(n for n in model if n not in expected)]:
        if name not in model or name not in expected:
            side = "space" if name in expected else "checkpoint"
            raise CheckpointError(f"{where}: layer {name} is only in the {side}")
        if tuple(model[name].shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"{where}: layer {name} has shape {tuple(model[name].shape)} in the checkpoint "
                f"but {tuple(expected[name].shape)} in the space; use the space options it was "
                f"trained with or train a new supernet")
    return state


def load_supernet(space: ElasticSpace, path: Path) -> Supernet:
    """The trained supernet of ``space`` from ``path``, on the CPU, in eval mode."""
    state = read_checkpoint(path, space)
    net = space.supernet()
    net.load_state_dict(state["model"])
    return net.eval()


def _choice_table(space: ElasticSpace) -> dict[str, list[Any]]:
    return {choice.name: list(choice.options()) for choice in space.choices()}


# -- subnet evaluation ---------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class SubnetEvalSettings:
    """BN recalibration on ``calibration_batches`` fixed training batches, accuracy on a
    fixed held-out subset of ``eval_samples`` test samples."""

    calibration_batches: int = 2
    calibration_batch_size: int = 128
    eval_samples: int = 1000
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        check_integers(self, dict.fromkeys(
            ("calibration_batches", "calibration_batch_size", "eval_samples", "threads"), 1))


@dataclass(frozen=True)
class SubnetEvaluation:
    """An extracted, recalibrated subnet (static, eval mode), its accuracy and stage times."""

    arch: Architecture
    model: nn.Module
    accuracy: float
    params: int
    timings: dict[str, float]


EVAL_CHUNK = 1000
"""Held-out samples scored per forward pass (bounds the activations' memory)."""


class SubnetEvaluator:
    """Evaluates subnets of one trained supernet on fixed calibration and held-out data."""

    def __init__(self, *, space: ElasticSpace, supernet: Supernet, dataset: Dataset,
                 settings: SubnetEvalSettings) -> None:
        if dataset.input_spec != space.input_spec:
            raise SettingsError(f"dataset {dataset.name} ({dataset.input_spec}) does not fit space "
                                f"{space.name} ({space.input_spec})")
        self.space, self.supernet, self.settings = space, supernet.eval(), settings
        rng = np.random.default_rng(settings.seed)
        calibration = rng.permutation(len(dataset.train_x))[
            :settings.calibration_batches * settings.calibration_batch_size]
        x = torch.tensor(dataset.train_x[np.sort(calibration)])
        self.calibration = list(x.split(settings.calibration_batch_size))
        held_out = np.sort(rng.permutation(len(dataset.test_x))[:settings.eval_samples])
        self.eval_x = torch.tensor(dataset.test_x[held_out])
        self.eval_y = torch.tensor(dataset.test_y[held_out])

    def evaluate(self, arch: Architecture) -> SubnetEvaluation:
        timings: dict[str, float] = {}
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.settings.threads)
        try:
            with _timed(timings, "extract"):
                model = self.supernet.extract(arch)
            with _timed(timings, "calibrate"):
                recalibrate_batch_norm(model, self.calibration)
            with _timed(timings, "evaluate"), torch.no_grad():
                correct = sum(int((model(x).argmax(dim=1) == y).sum()) for x, y in zip(
                    self.eval_x.split(EVAL_CHUNK), self.eval_y.split(EVAL_CHUNK), strict=True))
        finally:
            torch.set_num_threads(previous_threads)
        return SubnetEvaluation(arch=arch, model=model, accuracy=correct / len(self.eval_y),
                                params=count_parameters(model), timings=timings)


def recalibrate_batch_norm(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Replace every BN layer's running statistics by their exact mean over ``batches``.

    The model is left in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches
    model.train()
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.eval()


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = time.perf_counter() - start


@contextmanager
def _interrupt_flag() -> Iterator[threading.Event]:
    """An event set on SIGINT/SIGTERM while inside; handlers only in the main thread."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        flag.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

