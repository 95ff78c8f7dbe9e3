"""``paretonas targets``: what this machine (or every node of a cluster) can measure on."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from hardware_pool.discovery import NodeInventory


def register(commands: argparse._SubParsersAction) -> None:
    targets = commands.add_parser(
        "targets", help="probe the hardware and runtimes here (or on every node of a cluster)",
        description="Lists the CPU, GPUs, OpenVINO devices and runtimes of this machine and "
                    "the targets (backend/device/precisions) it can serve, each with the Ray "
                    "resource that places a target's actor on a node offering it.",
    )
    targets.add_argument("--json", action="store_true", help="print JSON instead of tables")
    targets.add_argument("--ray-resources", action="store_true",
                         help="print only this node's resources as JSON, for "
                              "`ray start --resources \"$(paretonas targets --ray-resources)\"`")
    targets.add_argument("--address", default=None, metavar="ADDR",
                         help="probe every node of this Ray cluster ('auto', 'ray://host:port')")
    targets.set_defaults(handler=_targets)


def _targets(args: argparse.Namespace, console: Console) -> int:
    from hardware_pool.discovery import cluster_inventory, probe_node

    if args.ray_resources:
        print(json.dumps(probe_node().ray_resources(), sort_keys=True))
        return 0
    nodes = cluster_inventory(address=args.address) if args.address else [probe_node()]
    if args.json:
        print(json.dumps([node.as_dict() for node in nodes], indent=2, sort_keys=True))
        return 0
    for node in nodes:
        _print_node(node, console)
    return 0


def _print_node(node: NodeInventory, console: Console) -> None:
    name = node.hostname + (f" (node {node.node_id[:8]})" if node.node_id else "")
    console.print(f"[bold]{escape(name)}[/]: {escape(node.cpu_model)}, {node.architecture}, "
                  f"{len(node.cores)} usable cores {_ranges(node.cores)}")
    console.print(f"  ISA: {' '.join(node.isa_flags) or '-'}")
    for gpu in node.gpus:
        console.print(f"  GPU cuda:{gpu.index}: {gpu.name}, {gpu.memory_mb} MiB, "
                      f"compute capability {gpu.compute_capability}")
    for device, full in node.openvino_devices.items():
        console.print(f"  OpenVINO {device}: {escape(full)}")
    console.print("  runtimes: " + ", ".join(f"{k} {v}" for k, v in sorted(node.runtimes.items())),
                  highlight=False)
    table = Table(title=f"targets {node.hostname} can serve")
    for column in ("backend", "device", "precisions", "Ray resource"):
        table.add_column(column)
    for target in node.targets:
        table.add_row(target.backend, target.device, ", ".join(target.precisions),
                      target.resource)
    for key, reason in sorted(node.unavailable.items()):
        backend, device = key.split("/", 1)
        table.add_row(f"[dim]{backend}", f"[dim]{device}", f"[dim]unavailable: {escape(reason)}", "")
    console.print(table)


def _ranges(cores: tuple[int, ...]) -> str:
    """``(0, 1, 2, 5)`` -> ``[0-2,5]``."""
    parts: list[str] = []
    for core in cores:
        if parts and core == int(parts[-1].split("-")[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{core}"
        else:
            parts.append(str(core))
    return f"[{','.join(parts)}]"
