"""Tiny models shared by the evaluator tests."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SAMPLE_SHAPE = (1, 8, 8)


def tiny_conv_net(seed: int = 0) -> nn.Module:
    """A small conv classifier for 1×8×8 inputs and 10 classes, in eval mode."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).eval()


def torch_logits(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(inputs)).numpy()
