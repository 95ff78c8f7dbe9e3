"""The Ray session a search runs in: embedded, or connected to a cluster."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray

from orchestrator.config import SearchConfig
from search_spaces.loading import PLUGINS_ENV


@contextmanager
def ray_session(config: SearchConfig) -> Iterator[None]:
    """Connect to the configured cluster, or start Ray in-process; shut down what we start."""
    if ray.is_initialized():
        yield
        return
    embedded = config.ray.address is None
    ray.init(
        address=config.ray.address or "local",  # null: a new in-process Ray, never a stray one
        num_cpus=config.ray.num_cpus if embedded else None,
        # this node's targets as custom resources (a cluster's nodes declare their own)
        resources=node_resources() if embedded else None,
        runtime_env=worker_runtime_env(config),
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


def worker_runtime_env(config: SearchConfig) -> dict[str, Any]:
    """What every Ray worker of the search needs to import the user's code.

    The driver's current directory goes on the workers' ``PYTHONPATH`` (a
    ``module:Class`` space beside the config imports there too), and each worker
    imports the config's ``plugins`` when it starts (they register spaces, searchers
    and backends). On a remote cluster the folder must exist on every node, or the
    code must be installed there (see the README's cluster notes).
    """
    # ${PYTHONPATH}: Ray appends the node's own value, so a cluster's paths are kept
    env_vars = {"PYTHONPATH": f"{os.getcwd()}{os.pathsep}${{PYTHONPATH}}"}
    if not config.plugins:
        return {"env_vars": env_vars}
    return {"env_vars": {**env_vars, PLUGINS_ENV: ",".join(config.plugins)},
            "worker_process_setup_hook": "search_spaces.loading.import_plugins_from_env"}
