"""What a node can measure on: its CPU, GPUs, OpenVINO devices, runtimes, and targets.

Each (backend, device) a node can serve becomes a Ray custom resource named
``paretonas/<backend>/<device>`` (``resource_name``), e.g. ``paretonas/openvino/cpu``
or ``paretonas/onnxruntime/cuda``. The embedded Ray registers this node's
resources itself; on a cluster, start each node with::

    ray start ... --resources "$(paretonas targets --ray-resources)"

A target's actor then asks for its resource, so Ray places it only on a node
that offers it. A CPU resource's amount is 1 (actors ask for a sliver of it);
a GPU resource's (``cuda``, ``tensorrt``) amount is the node's GPU count.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import platform
import shutil
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from evaluators.backends import BACKENDS
from evaluators.backends.base import BackendOptions
from evaluators.backends.openvino_backend import shared_core
from hardware_pool.target import GPU_DEVICES, usable_cores

RESOURCE_PREFIX = "paretonas/"
#: What an actor asks of its target's resource: enough to place it, never a limit.
RESOURCE_REQUEST = 0.001
#: ISA extensions worth knowing for inference speed (others are left out of reports).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve")
#: Python distributions whose versions are reported (the first installed name wins).
RUNTIMES = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "openvino": ("openvino",),
            "tensorrt": ("tensorrt", "tensorrt-cu12"), "torch": ("torch",), "nncf": ("nncf",)}


def resource_name(backend: str, device: str) -> str:
    """The Ray custom resource of a (backend, device kind): ``paretonas/openvino/cpu``."""
    return f"{RESOURCE_PREFIX}{backend}/{device.split(':', 1)[0]}"


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mb: int
    compute_capability: str


@dataclass(frozen=True)
class ServedTarget:
    """A (backend, device) this node can measure on, and at which precisions."""

    backend: str
    device: str
    precisions: tuple[str, ...]
    resource: str


@dataclass(frozen=True)
class NodeInventory:
    """One node's hardware and software, as probed on the node."""

    hostname: str
    node_id: str | None
    cpu_model: str
    architecture: str
    isa_flags: tuple[str, ...]
    cores: tuple[int, ...]
    gpus: tuple[Gpu, ...]
    openvino_devices: dict[str, str]  # "CPU" -> full device name
    runtimes: dict[str, str]  # module -> version
    targets: tuple[ServedTarget, ...]
    unavailable: dict[str, str] = field(default_factory=dict)  # "backend/device" -> why not

    def ray_resources(self) -> dict[str, float]:
        """The custom resources this node offers (``ray start --resources`` / ``ray.init``)."""
        resources: dict[str, float] = {}
        for target in self.targets:
            amount = float(len(self.gpus)) if target.device in GPU_DEVICES else 1.0
            resources[target.resource] = max(amount, 1.0)
        return resources

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def device_name(self, device: str) -> str:
        """A human name of ``device`` here: the CPU model, the GPU's name, OpenVINO's name."""
        kind, _, index = device.partition(":")
        if kind in GPU_DEVICES and self.gpus:
            gpu = self.gpus[int(index)] if index.isdigit() and int(index) < len(self.gpus) \
                else self.gpus[0]
            return gpu.name
        if kind in ("gpu", "npu"):
            return self.openvino_devices.get(kind.upper(), kind)
        return self.cpu_model


def probe_node(*, node_id: str | None = None) -> NodeInventory:
    """Probe the machine this runs on (a few seconds: it asks every backend)."""
    gpus = cuda_gpus()
    served: list[ServedTarget] = []
    unavailable: dict[str, str] = {}
    for backend_name in BACKENDS.names():
        backend = BACKENDS.get(backend_name)
        for device in backend.devices:
            precisions, reasons = [], []
            for precision in backend.precisions:
                reason = backend.availability(BackendOptions(device=device, precision=precision))
                if reason is None:
                    precisions.append(precision)
                else:
                    reasons.append(reason)
            if precisions:
                served.append(ServedTarget(backend_name, device, tuple(precisions),
                                           resource_name(backend_name, device)))
            else:
                unavailable[f"{backend_name}/{device}"] = reasons[0] if reasons else "no precision"
    model, flags = probe_cpu()
    return NodeInventory(
        hostname=socket.gethostname(), node_id=node_id, cpu_model=model,
        architecture=platform.machine(), isa_flags=flags, cores=tuple(usable_cores()),
        gpus=gpus, openvino_devices=_openvino_devices(), runtimes=runtime_versions(),
        targets=tuple(served), unavailable=unavailable,
    )


def cuda_gpus() -> tuple[Gpu, ...]:
    """NVIDIA GPUs visible here, from ``nvidia-smi`` (else torch); empty when there are none."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=index,name,memory.total,compute_cap",
                 "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=20, check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        gpus = []
        for line in out.strip().splitlines():
            parts = [part.strip() for part in line.split(",")]
            if len(parts) == 4 and parts[0].isdigit():
                memory = int(float(parts[2])) if parts[2].replace(".", "").isdigit() else 0
                gpus.append(Gpu(int(parts[0]), parts[1], memory, parts[3]))
        if gpus:
            return tuple(_visible(gpus))
    try:
        import torch
    except ImportError:
        return ()
    if not torch.cuda.is_available():
        return ()
    return tuple(
        Gpu(i, torch.cuda.get_device_name(i),
            torch.cuda.get_device_properties(i).total_memory // 2**20,
            "{}.{}".format(*torch.cuda.get_device_capability(i)))
        for i in range(torch.cuda.device_count())
    )


def _visible(gpus: list[Gpu]) -> Iterable[Gpu]:
    """nvidia-smi lists every GPU; keep those ``CUDA_VISIBLE_DEVICES`` shows (renumbered)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return gpus
    indices = [int(v) for v in visible.split(",") if v.strip().isdigit()]
    by_index = {gpu.index: gpu for gpu in gpus}
    return [Gpu(new, by_index[old].name, by_index[old].memory_mb, by_index[old].compute_capability)
            for new, old in enumerate(indices) if old in by_index]


def runtime_versions() -> dict[str, str]:
    """Installed runtime packages and their versions (absent ones are left out)."""
    versions: dict[str, str] = {}
    for module, distributions in RUNTIMES.items():
        for distribution in distributions:
            try:
                versions[module] = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions


def probe_cpu() -> tuple[str, tuple[str, ...]]:
    """This machine's CPU model name and the ISA extensions of ``ISA_FLAGS`` it has."""
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine(),
                                                                platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, tuple(flag for flag in ISA_FLAGS if flag in flags)


def _openvino_devices() -> dict[str, str]:
    try:
        core = shared_core()
        return {name: str(core.get_property(name, "FULL_DEVICE_NAME"))
                for name in core.available_devices}
    except Exception as error:  # a broken driver must not break discovery; report it
        return {"error": f"{type(error).__name__}: {error}"}


def cluster_inventory(*, address: str | None = None, timeout_s: float = 120.0
                      ) -> list[NodeInventory]:
    """Every alive node's inventory, probed by a Ray task on that node.

    Uses the current Ray session, or connects to ``address`` (``auto``,
    ``ray://host:port``) for the call and disconnects afterwards.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    try:
        probe = ray.remote(num_cpus=0, max_retries=0)(_probe_this_node)
        refs = [probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
        ).remote() for node in ray.nodes() if node.get("Alive")]
        return list(ray.get(refs, timeout=timeout_s))
    finally:
        if started:
            ray.shutdown()


def _probe_this_node() -> NodeInventory:
    import ray

    return probe_node(node_id=ray.get_runtime_context().get_node_id())
