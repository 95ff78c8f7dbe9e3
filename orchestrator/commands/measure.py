"""``paretonas measure``: time ONNX files on a config's targets through the hardware pool."""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.commands.search import add_overrides
from orchestrator.errors import ConfigError

if TYPE_CHECKING:
    from hardware_pool.worker import MeasureRequest


def register(commands: argparse._SubParsersAction) -> None:
    measure = commands.add_parser(
        "measure", help="time ONNX models on a config's targets (same pool and protocol as run)",
    )
    measure.add_argument("models", nargs="+", metavar="MODEL.onnx")
    measure.add_argument("--config", required=True, help="YAML config whose targets, timing "
                                                         "and ray sections are used")
    measure.add_argument("--input-shape", default=None, metavar="C,H,W",
                         help="one sample's shape (no batch) when the model's is not fixed")
    measure.add_argument("--rounds", type=int, default=1,
                         help="each model's timing budget in multiples of the config's "
                              "(default 1); the models alternate in short rounds")
    measure.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_overrides(measure)
    measure.set_defaults(handler=_measure)


def _measure(args: argparse.Namespace, console: Console) -> int:
    from hardware_pool.pool import HardwarePool
    from orchestrator.commands.search import load_from_args
    from orchestrator.ray_session import ray_session

    if args.rounds < 1:
        raise ConfigError(f"--rounds must be >= 1, got {args.rounds}")
    config = load_from_args(args)
    shape = _parse_shape(args.input_shape) if args.input_shape else None
    requests = {str(path): model_request(Path(path), sample_shape=shape) for path in args.models}
    settings = config.timing.settings()
    with ray_session(config), HardwarePool(
        [t.target() for t in config.targets], timing=settings,
        measure_timeout_s=config.timing.measure_timeout_s, **config.pool.options(),
    ) as pool:
        # round-robin over all models (the confirmation pass's protocol): each latency
        # spans the same stretch of the device's time
        confirmed = pool.client().confirm(list(requests.values()), timing=settings,
                                          rounds=args.rounds)
        results = {path: confirmed[request.candidate] for path, request in requests.items()}
    if args.json:
        rows = [{"model": path, "target": target, **asdict(measurement)}
                for path, per_target in results.items() for target, measurement in per_target.items()]
        print(json.dumps(rows, indent=2, default=_jsonable))
        return 0
    table = Table(title=f"latency on {len(config.targets)} target(s)")
    for column in ("model", "target", "median ms", "p90 ms", "runs", "compile s", "device",
                   "runtime"):
        table.add_column(column, justify="right" if column.endswith(("ms", "s", "runs")) else "left")
    for path, per_target in results.items():
        for target, m in per_target.items():
            provenance = m.provenance
            table.add_row(escape(path), target, f"{m.median_ms:.4f}", f"{m.p90_ms:.4f}",
                          str(m.runs), f"{m.compile_seconds:.2f}",
                          escape(provenance.device_name if provenance else m.device),
                          escape(provenance.runtime_version if provenance else m.backend))
    console.print(table)
    return 0


def model_request(path: Path, *, sample_shape: tuple[int, ...] | None = None) -> MeasureRequest:
    """A request for an ONNX file; its sample shape comes from the model's first input."""
    import onnx

    from evaluators.backends.torch_backend import program_path
    from hardware_pool.worker import MeasureRequest

    try:
        data = path.read_bytes()
        model = onnx.load_model_from_string(data)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    except Exception as error:  # onnx raises DecodeError and friends
        raise ConfigError(f"{path} is not an ONNX model: {error}") from None
    if sample_shape is None:
        initialisers = {init.name for init in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in initialisers]
        if len(inputs) != 1:
            raise ConfigError(f"{path} has {len(inputs)} inputs; paretonas times "
                              f"single-input models")
        dims = [d.dim_value if d.HasField("dim_value") else 0
                for d in inputs[0].type.tensor_type.shape.dim][1:]
        if not dims or min(dims) < 1:
            raise ConfigError(f"{path}: input {inputs[0].name!r} has a dynamic or missing "
                              f"sample shape; pass --input-shape C,H,W")
        sample_shape = tuple(dims)
    digest = hashlib.sha256(data).hexdigest()[:12]
    program = program_path(path)  # the PyTorch program beside it, for torch-* targets
    return MeasureRequest(f"{path.stem}-{digest}", data, sample_shape,
                          torch_program=program.read_bytes() if program.is_file() else None)


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise ConfigError(f"--input-shape must be positive integers like 1,28,28, got {text!r}")
    return shape


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | set) else str(value)
