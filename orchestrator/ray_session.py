"""The Ray session a search runs in: embedded, or connected to a cluster."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from orchestrator.config import SearchConfig


@contextmanager
def ray_session(config: SearchConfig) -> Iterator[None]:
    """Connect to the configured cluster, or start Ray in-process; shut down what we start."""
    if ray.is_initialized():
        yield
        return
    embedded = config.ray.address is None
    ray.init(
        address=config.ray.address,
        num_cpus=config.ray.num_cpus if embedded else None,
        # this node's targets as custom resources (a cluster's nodes declare their own)
        resources=node_resources() if embedded else None,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    try:
        yield
    finally:
        ray.shutdown()


def node_resources() -> dict[str, float]:
    """The custom resources of the targets this machine can serve (see hardware_pool.discovery)."""
    from hardware_pool.discovery import probe_node

    return probe_node().ray_resources()


@contextmanager
def environment(**values: str) -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
