"""Train a candidate briefly on a dataset and measure its held-out accuracy (seeded; CPU or CUDA)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from evaluators.data import Dataset
from evaluators.errors import SettingsError, TrainingError
from evaluators.settings import check_device, check_integers, torch_device

_EVAL_BATCH_SIZE = 1024
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True, kw_only=True)
class TrainingSettings:
    """How to train a candidate: AdamW for ``epochs`` over the training split, at a
    constant ``learning_rate`` or decayed to zero over the run (``schedule="cosine"``),
    on ``device`` (``cpu``, ``cuda`` or ``cuda:N``)."""

    epochs: int = 3
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    schedule: str = "constant"
    seed: int = 0
    threads: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_integers(self, {"epochs": 1, "batch_size": 1, "threads": 1, "seed": 0})
        check_device(self)
        if self.schedule not in SCHEDULES:
            raise SettingsError(f"TrainingSettings.schedule must be one of {list(SCHEDULES)}, "
                                f"got {self.schedule!r}")
        for name, positive in (("learning_rate", True), ("weight_decay", False)):
            value = getattr(self, name)
            if (not isinstance(value, int | float) or isinstance(value, bool)
                    or not 0 <= value < math.inf or (positive and value == 0)):
                raise SettingsError(f"TrainingSettings.{name} must be a finite number "
                                    f"{'> 0' if positive else '>= 0'}, got {value!r}")


@dataclass(frozen=True)
class TrainingResult:
    """``accuracy`` on the held-out test split in [0, 1]; ``train_loss`` of the last epoch."""

    accuracy: float
    train_loss: float
    train_seconds: float
    epochs: int


def train_and_evaluate(
    model: nn.Module, dataset: Dataset, settings: TrainingSettings, *,
    after_epoch: Callable[[int, float], None] | None = None,
) -> TrainingResult:
    """Train ``model`` in place on ``dataset``'s train split, then score its test split.

    Deterministic on CPU: the same initial weights and ``settings.seed`` give the same
    result. A trailing batch of one sample is skipped (batch norm cannot train on it).
    On a CUDA ``settings.device`` the model and both splits move to the GPU for the run.
    ``after_epoch(epoch, mean_loss)`` runs after each epoch with the model back on the CPU
    (it may evaluate or export it; training then goes on in train mode on the device).
    The model is left in eval mode, on the CPU.
    """
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        device = torch_device(settings.device, purpose="training")
        torch.manual_seed(settings.seed)
        layout = training_layout(model)
        model.to(device, memory_format=layout)  # type: ignore[call-overload]  # untyped kwarg
        train_x = in_layout(torch.tensor(dataset.train_x, device=device), layout)
        train_y = torch.tensor(dataset.train_y, device=device)
        start = time.perf_counter()
        loss = _train(model, train_x, train_y, settings, _on_cpu(model, device, after_epoch))
        _synchronize(device)
        train_seconds = time.perf_counter() - start
        accuracy = _accuracy(model, in_layout(torch.tensor(dataset.test_x, device=device), layout),
                             torch.tensor(dataset.test_y, device=device))
    finally:
        torch.set_num_threads(previous_threads)
        model.to("cpu")
        model.eval()
    return TrainingResult(accuracy=accuracy, train_loss=loss, train_seconds=train_seconds,
                          epochs=settings.epochs)


def _on_cpu(model: nn.Module, device: torch.device,
            after_epoch: Callable[[int, float], None] | None
            ) -> Callable[[int, float], None] | None:
    """``after_epoch`` run with ``model`` moved to the CPU and back to ``device`` after."""
    if after_epoch is None or device.type == "cpu":
        return after_epoch

    def on_cpu(epoch: int, loss: float) -> None:
        model.to("cpu")  # parameters keep their identity, so the optimiser still holds them
        try:
            after_epoch(epoch, loss)
        finally:
            model.to(device)

    return on_cpu


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_layout(model: nn.Module) -> torch.memory_format:
    """Channels-last for a model with grouped (e.g. depthwise) convolutions, else contiguous.

    On a CPU the same arithmetic then trains MobileNet-style blocks 1.3-2.3x faster;
    plain convolutions gain nothing (``benchmarks/training_layout.py``), so other models
    keep the layout their code may rely on (``.view`` needs contiguous tensors)."""
    grouped = any(isinstance(module, nn.Conv2d) and module.groups > 1 for module in model.modules())
    return torch.channels_last if grouped else torch.contiguous_format


def in_layout(x: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    """``x`` in ``layout`` when it is a batch of images (4-D); other inputs as they are."""
    return x.contiguous(memory_format=layout) if x.dim() == 4 else x


def layout_hint(model: nn.Module, error: BaseException) -> str:
    """A hint for a ``.view`` that the channels-last layout broke, else ``""``."""
    if ("view size is not compatible" in str(error)
            and training_layout(model) == torch.channels_last):
        return ("; the model has grouped convolutions, so it trains channels-last: "
                "reshape with .reshape or torch.flatten, not .view")
    return ""


def held_out_accuracy(model: nn.Module, dataset: Dataset) -> float:
    """Accuracy of ``model`` on ``dataset``'s test split (puts it in eval mode)."""
    return _accuracy(model, torch.tensor(dataset.test_x), torch.tensor(dataset.test_y))


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: TrainingSettings,
           after_epoch: Callable[[int, float], None] | None = None) -> float:
    """Run the epochs; return the last epoch's mean training loss."""
    if not any(parameter.requires_grad for parameter in model.parameters()):
        raise TrainingError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    full, rest = divmod(len(x), settings.batch_size)
    steps = settings.epochs * (full + (rest >= 2))  # a trailing batch of one is skipped
    decay = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
             if settings.schedule == "cosine" else None)
    criterion = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(settings.seed)
    model.train()
    mean_loss = math.nan
    for epoch in range(1, settings.epochs + 1):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        total, seen = 0.0, 0
        for batch in order.split(settings.batch_size):
            if len(batch) < 2:
                continue
            try:
                optimizer.zero_grad(set_to_none=True)
                loss = criterion(model(x[batch]), y[batch])
                loss.backward()
                optimizer.step()
                if decay is not None:
                    decay.step()
            except (RuntimeError, ValueError) as error:  # RuntimeError includes OOM
                raise TrainingError(f"training failed in epoch {epoch}: {error}"
                                    f"{layout_hint(model, error)}") from error
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingError(f"training diverged in epoch {epoch}: loss is {value}; "
                                    f"try a lower learning_rate")
            total += value * len(batch)
            seen += len(batch)
        mean_loss = total / seen if seen else math.nan
        if after_epoch is not None:
            after_epoch(epoch, mean_loss)
            model.train()
    return mean_loss


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = 0
    try:
        with torch.no_grad():
            for start in range(0, len(x), _EVAL_BATCH_SIZE):
                logits = model(x[start:start + _EVAL_BATCH_SIZE])
                correct += int((logits.argmax(dim=1) == y[start:start + _EVAL_BATCH_SIZE]).sum())
    except RuntimeError as error:
        raise TrainingError(f"evaluating the trained model failed: {error}") from error
    return correct / len(x)
