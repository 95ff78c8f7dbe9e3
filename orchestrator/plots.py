"""Pictures of a search: accuracy vs latency per target (front highlighted), hypervolume.

PNG through matplotlib (Agg, no display needed), one interactive plotly HTML page of
all candidates (self-contained: it opens without network, also inside MLflow's
artifact viewer), and a small static HTML page per front run.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.objectives import target_metric
from orchestrator.records import TrialRecord

ACCURACY = "accuracy"
LATENCY = "latency_ms"


def front_png(path: Path, records: Sequence[TrialRecord], front_ids: set[str],
              targets: Sequence[str]) -> Path:
    """Accuracy vs latency, one panel per target; front members highlighted."""
    from matplotlib import pyplot as plt

    figure = _front_figure(records, front_ids, targets)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def run_pages(directory: Path, records: Sequence[TrialRecord], front_ids: set[str],
              targets: Sequence[str], members: Sequence[TrialRecord]) -> dict[str, Path]:
    """One page per front member, ``directory/<trial id>/front.html``: where it sits among
    all candidates (inline SVG) and its metrics.

    Small (no JavaScript), so every front run can carry one; the interactive page of
    all candidates is the search run's ``plots/front.html``. One figure is drawn and
    only its highlight moves from member to member.
    """
    from matplotlib import pyplot as plt

    figure = _front_figure(records, front_ids, targets)
    panels = _panels(records, targets)
    marks = [axis.scatter([], [], s=160, facecolors="none", edgecolors="#1a73e8", linewidths=2.5,
                          zorder=4) for axis in figure.axes[:len(panels)]]
    pages: dict[str, Path] = {}
    try:
        for member in members:
            for mark, points in zip(marks, panels.values(), strict=True):
                mark.set_offsets([(x, y) for x, y, r in points if r.trial_id == member.trial_id]
                                 or np.empty((0, 2)))
            buffer = io.StringIO()
            figure.savefig(buffer, format="svg")
            svg = buffer.getvalue()
            pages[member.trial_id] = _write_page(directory / member.trial_id / "front.html",
                                                 member, svg[svg.index("<svg"):])
    finally:
        plt.close(figure)
    return pages


def _write_page(path: Path, member: TrialRecord, svg: str) -> Path:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.5g}</td></tr>"
                   for k, v in sorted(member.metrics.items()) if not k.startswith("time_"))
    arch = html.escape(json.dumps(member.arch.as_dict(), sort_keys=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{member.arch.key}</title>"
        f"<style>body{{font-family:sans-serif;margin:16px}}td{{padding:2px 12px}}</style></head>"
        f"<body><h3>Candidate {member.arch.key} on the Pareto front (circled)</h3><p>{arch}</p>"
        f"{svg}<table>{rows}</table></body></html>")
    return path


def _front_figure(records: Sequence[TrialRecord], front_ids: set[str],
                  targets: Sequence[str]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    panels = _panels(records, targets)
    figure, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.2 * max(len(panels), 1), 4.2),
                                squeeze=False)
    for axis, (target, points) in zip(axes[0], panels.items(), strict=False):
        others = [(x, y) for x, y, r in points if r.trial_id not in front_ids]
        front = sorted((p for p in points if p[2].trial_id in front_ids), key=lambda p: p[:2])
        if others:
            axis.scatter(*zip(*others, strict=True), s=22, color="#9aa0a6", label="candidate")
        if front:
            xs, ys = [p[0] for p in front], [p[1] for p in front]
            axis.scatter(xs, ys, s=46, color="#d93025", zorder=3, label="Pareto front (all objectives)")
        staircase = _front_2d([(x, y) for x, y, _ in points])
        axis.step([x for x, _ in staircase], [y for _, y in staircase], where="post",
                  color="#d93025", alpha=0.35, zorder=2, label="accuracy/latency front here")
        axis.set_xlabel(f"latency (ms) on {target}")
        axis.set_ylabel("accuracy")
        axis.set_title(target)
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize=8)
    figure.suptitle(f"{len(records)} candidates, {len(front_ids)} on the Pareto front")
    figure.tight_layout()
    return figure


def hypervolume_png(path: Path, history: Sequence[tuple[int, float]]) -> Path:
    """Hypervolume of the front after each candidate."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(5.2, 3.6))
    if history:
        axis.step([s for s, _ in history], [h for _, h in history], where="post", color="#1a73e8")
    axis.set_xlabel("candidates evaluated")
    axis.set_ylabel("hypervolume")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def front_html(path: Path, records: Sequence[TrialRecord], front_ids: set[str],
               targets: Sequence[str]) -> Path:
    """Interactive accuracy vs latency per target; hover shows architecture and metrics."""
    from plotly import graph_objects as go
    from plotly.subplots import make_subplots

    panels = _panels(records, targets)
    figure = make_subplots(rows=1, cols=max(len(panels), 1), subplot_titles=list(panels) or [""])
    for column, (target, points) in enumerate(panels.items(), start=1):
        groups = {
            "candidate": [p for p in points if p[2].trial_id not in front_ids],
            "Pareto front": [p for p in points if p[2].trial_id in front_ids],
        }
        styles = {"candidate": ("#9aa0a6", 8), "Pareto front": ("#d93025", 11)}
        for label, group in groups.items():
            if not group:
                continue
            color, size = styles[label]
            figure.add_trace(go.Scatter(
                x=[p[0] for p in group], y=[p[1] for p in group], mode="markers", name=label,
                legendgroup=label, showlegend=column == 1,
                marker={"color": color, "size": size, "line": {"width": 1, "color": "white"}},
                hovertext=[_hover(p[2]) for p in group], hoverinfo="text",
            ), row=1, col=column)
        figure.update_xaxes(title_text=f"latency (ms) on {target}", row=1, col=column)
        figure.update_yaxes(title_text="accuracy", row=1, col=column)
    figure.update_layout(title=f"{len(records)} candidates, {len(front_ids)} on the Pareto front",
                         template="plotly_white", height=480, width=max(520 * len(panels), 620))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(str(path), include_plotlyjs=True, full_html=True)
    return path


def _front_2d(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both lower latency and higher accuracy, by latency."""
    staircase: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not staircase or y > staircase[-1][1]:
            staircase.append((x, y))
    return staircase


def _panels(records: Sequence[TrialRecord],
            targets: Sequence[str]) -> dict[str, list[tuple[float, float, TrialRecord]]]:
    """(latency, accuracy, record) of every completed record, per target that has both."""
    panels: dict[str, list[tuple[float, float, TrialRecord]]] = {}
    for target in targets:
        key = target_metric(LATENCY, target)
        points = [(r.metrics[key], r.metrics[ACCURACY], r) for r in records
                  if r.ok and key in r.metrics and ACCURACY in r.metrics]
        if points:
            panels[target] = points
    return panels


def _hover(record: TrialRecord) -> str:
    metrics = "<br>".join(f"{k} = {v:.4g}" for k, v in sorted(record.metrics.items())
                          if not k.startswith("time_"))
    arch = json.dumps(record.arch.as_dict(), sort_keys=True)
    return f"<b>{record.arch.key}</b><br>{arch}<br>{metrics}"
