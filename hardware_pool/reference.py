"""A fixed reference model, re-timed now and then to notice a device that drifts.

A small dense network (two 256-wide layers, fixed seed): the same bytes in every
process and run, so its latency on a device moves only when the device does
(thermal throttling, a noisy neighbour, a changed clock).
"""

from __future__ import annotations

import functools

import numpy as np

from hardware_pool.worker import MeasureRequest

REFERENCE_NAME = "paretonas-reference"
WIDTH = 256


@functools.cache
def reference_request() -> MeasureRequest:
    """The reference model as a request (input: one sample of ``WIDTH`` floats)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(
        (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(np.float32), f"w{i}")
        for i in range(2)]
    nodes = [helper.make_node("MatMul", ["input", "w0"], ["h0"]),
             helper.make_node("Relu", ["h0"], ["r0"]),
             helper.make_node("MatMul", ["r0", "w1"], ["output"])]
    graph = helper.make_graph(
        nodes, "reference",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", WIDTH])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return MeasureRequest(REFERENCE_NAME, model.SerializeToString(), (WIDTH,))
