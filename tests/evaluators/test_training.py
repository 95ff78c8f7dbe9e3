from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from evaluators import (
    SettingsError,
    TrainingError,
    TrainingSettings,
    load_dataset,
    train_and_evaluate,
)
from evaluators.training import training_layout


def small_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


@pytest.mark.slow
def test_training_is_deterministic_and_learns_digits() -> None:
    data = load_dataset("digits", seed=0)
    settings = TrainingSettings(epochs=4, seed=7)
    threads = torch.get_num_threads()
    model = small_mlp()
    first = train_and_evaluate(model, data, settings)
    second = train_and_evaluate(small_mlp(), data, settings)
    assert first.accuracy == second.accuracy and first.train_loss == second.train_loss
    assert first.accuracy > 0.85 and first.epochs == 4 and first.train_seconds > 0
    assert not model.training
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize(("field", "value"), [
    ("epochs", 0), ("epochs", 1.5), ("batch_size", -1), ("threads", 0), ("seed", -1),
    ("learning_rate", 0.0), ("learning_rate", math.nan), ("weight_decay", -1e-4),
    ("epochs", True), ("schedule", "linear"), ("device", "tpu"), ("device", "cuda:x"),
])
def test_bad_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(SettingsError, match=rf"TrainingSettings\.{field}"):
        TrainingSettings(**{field: value})


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_the_learning_rate_follows_the_schedule_over_every_step(schedule: str) -> None:
    data = load_dataset("digits", seed=0)
    settings = TrainingSettings(epochs=2, batch_size=100, learning_rate=1e-2, schedule=schedule)
    rates: list[float] = []
    hook = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: rates.append(optimizer.param_groups[0]["lr"]))
    try:
        train_and_evaluate(small_mlp(), data, settings)
    finally:
        hook.remove()
    full, rest = divmod(len(data.train_x), 100)
    assert len(rates) == 2 * (full + (rest >= 2))
    if schedule == "constant":
        assert set(rates) == {1e-2}
    else:  # from the full rate down to nearly zero at the last step
        assert rates[0] == 1e-2 and rates[-1] < 1e-4
        assert all(later < earlier for earlier, later in itertools.pairwise(rates))


def test_diverging_loss_names_the_epoch() -> None:
    model = small_mlp()
    with torch.no_grad():
        model[1].weight.fill_(math.nan)
    with pytest.raises(TrainingError, match="epoch 1"):
        train_and_evaluate(model, load_dataset("digits", seed=0), TrainingSettings(epochs=1))
    assert not model.training


def test_runtime_error_becomes_training_error_with_cause() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 10))  # digits have 64 features
    with pytest.raises(TrainingError, match="epoch 1") as caught:
        train_and_evaluate(model, load_dataset("digits", seed=0), TrainingSettings(epochs=1))
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_model_without_parameters_is_refused() -> None:
    with pytest.raises(TrainingError, match="no trainable parameters"):
        train_and_evaluate(nn.Flatten(), load_dataset("digits", seed=0), TrainingSettings())


class _ViewAfterDepthwise(nn.Module):
    """A depthwise convolution, then ``.view``: needs contiguous activations."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, groups=1)
        self.depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.head = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise(self.conv(x))
        return self.head(x.view(x.size(0), -1))


def test_grouped_convolutions_train_channels_last_and_view_gets_a_hint() -> None:
    model = _ViewAfterDepthwise()
    assert training_layout(model) == torch.channels_last
    assert training_layout(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())) == torch.contiguous_format
    data = load_dataset("digits", seed=0)
    with pytest.raises(TrainingError, match=r"channels-last: reshape with \.reshape"):
        train_and_evaluate(model, data, TrainingSettings(epochs=1))
    # the same model reshaping with torch.flatten trains, its weights channels-last
    model.forward = lambda x: model.head(torch.flatten(model.depthwise(model.conv(x)), 1))  # type: ignore[method-assign]
    result = train_and_evaluate(model, data, TrainingSettings(epochs=1))
    assert result.accuracy > 0.5
    assert model.depthwise.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_training_on_a_gpu_without_one_is_a_clear_error() -> None:
    model = small_mlp()
    with pytest.raises(SettingsError, match="training device 'cuda' asked for, but torch sees no"):
        train_and_evaluate(model, load_dataset("digits", seed=0), TrainingSettings(device="cuda"))
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU: torch sees no CUDA device")
def test_training_on_a_gpu_learns_and_hands_back_a_cpu_model() -> None:
    data = load_dataset("digits", seed=0)
    model = small_mlp()
    devices: list[str] = []

    def after_epoch(epoch: int, loss: float) -> None:  # rungs evaluate and export on the CPU
        devices.append(next(model.parameters()).device.type)
        model(torch.tensor(data.test_x[:4]))

    result = train_and_evaluate(model, data, TrainingSettings(epochs=4, seed=7, device="cuda"),
                                after_epoch=after_epoch)
    assert result.accuracy > 0.85 and devices == ["cpu"] * 4
    assert next(model.parameters()).device.type == "cpu" and not model.training
