"""A fixed reference model: re-timed now and then to tell a noisy or throttled device.

The model is built from ONNX operators with weights from a seeded generator, so its bytes
are the same on every machine and run: a change in its latency is the device's, not the
model's. Two convolutions and a classifier on a 3×32×32 input (~1.6 M multiply-adds):
a few tenths of a millisecond on one CPU core, long enough to time precisely, short
enough to repeat often.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: The reference model's input shape (batch first) and ONNX opset.
REFERENCE_INPUT_SHAPE = (1, 3, 32, 32)
REFERENCE_OPSET = 17
_SEED = 20_240_917


def reference_model() -> onnx.ModelProto:
    """The reference model (input ``input`` [batch, 3, 32, 32], output ``logits`` [batch, 10])."""
    rng = np.random.default_rng(_SEED)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        values = rng.standard_normal(shape).astype(np.float32) / np.float32(np.sqrt(fan_in))
        return numpy_helper.from_array(values, name)

    initializers = [
        weight("conv1.w", 16, 3, 3, 3), weight("conv1.b", 16),
        weight("conv2.w", 32, 16, 3, 3), weight("conv2.b", 32),
        weight("fc.w", 10, 32), weight("fc.b", 10),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.w", "conv1.b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "conv2.w", "conv2.b"], ["c2"], pads=[1, 1, 1, 1],
                         strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "paretonas-reference",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                       ["batch", *REFERENCE_INPUT_SHAPE[1:]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializers,
    )
    model = helper.make_model(graph, producer_name="paretonas-reference",
                              opset_imports=[helper.make_opsetid("", REFERENCE_OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def reference_model_bytes() -> bytes:
    """The serialized reference model (identical bytes on every call and machine)."""
    return reference_model().SerializeToString(deterministic=True)


def write_reference_model(path: Path) -> Path:
    """Write the reference model to ``path`` (parents created) and return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(reference_model_bytes())
    return path
