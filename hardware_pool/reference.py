"""The fixed reference model (``evaluators.reference``) as a pool request, re-timed now and
then to notice a device that drifts (thermal throttling, a noisy neighbour)."""

from __future__ import annotations

import functools

from evaluators.reference import REFERENCE_INPUT_SHAPE, reference_model
from hardware_pool.worker import MeasureRequest

REFERENCE_NAME = "paretonas-reference"


@functools.cache
def reference_request() -> MeasureRequest:
    """The reference model as a request (one sample of ``REFERENCE_INPUT_SHAPE[1:]``)."""
    return MeasureRequest(REFERENCE_NAME, reference_model().SerializeToString(),
                          tuple(REFERENCE_INPUT_SHAPE[1:]))
