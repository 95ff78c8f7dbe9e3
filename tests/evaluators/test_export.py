from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

from evaluators import ExportError, count_parameters, export_onnx
from tests.evaluators.models import SAMPLE_SHAPE, tiny_conv_net, torch_logits

pytestmark = pytest.mark.slow


def test_export_is_checked_single_file_with_dynamic_batch(tiny_model: nn.Module,
                                                          tiny_onnx: Path) -> None:
    model = onnx.load(str(tiny_onnx))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    # no external-data or partial files (tiny.pt2 is the fixture's PyTorch program)
    assert sorted(p.name for p in tiny_onnx.parent.iterdir()) == ["tiny.onnx", "tiny.pt2"]
    session = onnxruntime.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    for batch in (1, 4):
        inputs = np.random.default_rng(batch).standard_normal((batch, *SAMPLE_SHAPE),
                                                              dtype=np.float32)
        actual = session.run(None, {"input": inputs})[0]
        np.testing.assert_allclose(actual, torch_logits(tiny_model, inputs),
                                   rtol=1e-3, atol=1e-4)


def test_export_puts_the_model_in_eval_mode(tmp_path: Path) -> None:
    model = tiny_conv_net().train()
    export_onnx(model, example_input=torch.randn(1, *SAMPLE_SHAPE),
                path=tmp_path / "sub" / "m.onnx", candidate="c")
    assert not model.training and (tmp_path / "sub" / "m.onnx").is_file()


class ReturnsNone(nn.Module):
    def forward(self, x: torch.Tensor) -> None:
        return None


class UsesSvd(nn.Module):
    """``linalg_svd`` has no ONNX symbolic in the TorchScript exporter."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svd(x.flatten(1)[:, :4].reshape(-1, 2, 2))[1]


class FixedBatch(nn.Module):
    """Traces fine at batch 1, but bakes batch 1 into a reshape."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.reshape(1, -1))


@pytest.mark.parametrize(("model", "stage"), [
    (ReturnsNone(), "torch.onnx.export failed"),
    (UsesSvd(), "torch.onnx.export failed: Exporting the operator 'aten::linalg_svd'"),
    (FixedBatch(), "at batch 2"),
])
def test_unexportable_model_raises_naming_the_candidate(
    model: nn.Module, stage: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="^candidate abc123: ") as caught:
        export_onnx(model, example_input=torch.randn(1, *SAMPLE_SHAPE), path=path,
                    candidate="abc123")
    assert stage in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # no partial file is left behind
    assert capfd.readouterr().out == ""  # the exporter's graph dump is silenced


def test_count_parameters() -> None:
    assert count_parameters(nn.Linear(64, 10)) == 650
