"""The Ray session a search runs in: embedded, or connected to a cluster."""

from __future__ import annotations

import logging
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import ray

from orchestrator.config import SearchConfig
from orchestrator.errors import ClusterError
from orchestrator.preflight import cluster_shortfalls
from search_spaces.loading import PLUGINS_ENV

logger = logging.getLogger(__name__)

AUTH_HINT = ("if the cluster uses token authentication, give its token as RAY_AUTH_TOKEN (or a file "
             "in RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token; `ray get-auth-token` on the head prints it)")


@contextmanager
def ray_session(config: SearchConfig) -> Iterator[None]:
    """Connect to the configured cluster, or start Ray in-process; shut down what we start."""
    if ray.is_initialized():
        yield
        return
    address = config.ray.address
    embedded = address is None
    if address is not None:
        check_reachable(address)
        use_cluster_token(address)
    try:
        ray.init(
            address=address or "local",  # null: a new in-process Ray, never a stray one
            num_cpus=config.ray.num_cpus if embedded else None,
            # this node's targets as custom resources (a cluster's nodes declare their own)
            resources=node_resources() if embedded else None,
            runtime_env=worker_runtime_env(config),
            include_dashboard=config.ray.dashboard,
            dashboard_host=config.ray.dashboard_host,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    except (ConnectionError, ray.exceptions.AuthenticationError) as error:
        raise ClusterError(f"cannot connect to the Ray cluster at {address}: "
                           f"{str(error).strip().splitlines()[0]}; {AUTH_HINT}") from None
    if not embedded:
        nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
        for shortfall in cluster_shortfalls(config, nodes):
            logger.warning("%s", shortfall)
    try:
        yield
    finally:
        ray.shutdown()


def use_cluster_token(address: str) -> None:
    """Send this machine's Ray token to a cluster at an explicit address that asks for one.

    Ray turns token mode on by itself only for a local cluster found with ``auto``; an
    explicit ``HOST:PORT`` or ``http://HEAD:8265`` would otherwise connect without the
    token and be refused. A cluster without authentication gets no token (token mode
    towards it breaks its workers' calls back). ``RAY_AUTH_MODE`` set by the user wins.
    """
    if "RAY_AUTH_MODE" in os.environ or address == "auto" or address.startswith("ray://"):
        return
    if not _asks_for_token(address):
        return
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    if not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
        raise ClusterError(f"the Ray cluster at {address} uses token authentication and this "
                           f"machine has no token: {AUTH_HINT}")
    os.environ["RAY_AUTH_MODE"] = "token"
    Config.initialize("")  # Ray caches its config: re-read the mode


def _asks_for_token(address: str) -> bool:
    """Whether the cluster refuses a client without a token (a quick, token-less probe)."""
    if address.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(f"{address.rstrip('/')}/api/version", timeout=10).close()
        except urllib.error.HTTPError as error:
            return error.code == 401
        except OSError:
            return False  # unreachable: check_reachable says so
        return False
    from ray._raylet import GcsClient  # type: ignore[attr-defined]

    try:
        GcsClient(address=address)
    except ray.exceptions.AuthenticationError:
        return True
    except Exception:  # noqa: BLE001 (anything else is ray.init's to report, with its message)
        return False
    return False


def check_reachable(address: str, *, timeout_s: float = 5.0) -> None:
    """Fail fast with one clear message when nothing listens at ``address``'s host:port.

    ``auto`` and ``ray://`` addresses are left to Ray; ``host:port`` and ``http(s)://``
    ones are probed with a TCP connection (Ray itself retries for a minute or more).
    """
    if address == "auto" or address.startswith("ray://"):
        return
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise ClusterError(f"Ray address {address!r} must look like HOST:PORT, http://HOST:PORT, "
                           f"ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as error:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {error.strerror or error}; "
                           f"check the head's address and port and that it is running") from None


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
