"""Fixtures: a tiny model and its ONNX export, shared by the evaluator tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from evaluators import export_onnx
from evaluators.backends.torch_backend import save_torch_program
from tests.evaluators.models import SAMPLE_SHAPE, tiny_conv_net


@pytest.fixture(scope="session")
def tiny_model() -> nn.Module:
    return tiny_conv_net()


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_model`` exported once with a dynamic batch axis, its PyTorch program
    (for the torch backends) beside it."""
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    example = torch.randn(1, *SAMPLE_SHAPE)
    save_torch_program(tiny_model, example_input=example, onnx_path=path)
    return export_onnx(tiny_model, example_input=example, path=path, candidate="tiny")


@pytest.fixture
def corrupt_onnx(tiny_onnx: Path, tmp_path: Path) -> Path:
    """The first 200 bytes of a valid ONNX file."""
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(tiny_onnx.read_bytes()[:200])
    return path
