"""Pictures of a search: accuracy vs latency per target (front highlighted), hypervolume.

PNG through matplotlib (Agg, no display needed) and one interactive plotly HTML page
(self-contained: it opens without network, also inside MLflow's artifact viewer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from orchestrator.objectives import target_metric
from orchestrator.records import TrialRecord

ACCURACY = "accuracy"
LATENCY = "latency_ms"


def front_png(path: Path, records: Sequence[TrialRecord], front_ids: set[str],
              targets: Sequence[str]) -> Path:
    """Accuracy vs latency, one panel per target; front members highlighted and labelled."""
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
            axis.scatter(xs, ys, s=46, color="#d93025", zorder=3, label="Pareto front")
            axis.plot(xs, ys, color="#d93025", alpha=0.35, zorder=2)
        axis.set_xlabel(f"latency (ms) on {target}")
        axis.set_ylabel("accuracy")
        axis.set_title(target)
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right", fontsize=8)
    figure.suptitle(f"{len(records)} candidates, {len(front_ids)} on the front")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


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
               targets: Sequence[str], *, highlight: str | None = None) -> Path:
    """Interactive accuracy vs latency per target; hover shows architecture and metrics."""
    from plotly import graph_objects as go
    from plotly.subplots import make_subplots

    panels = _panels(records, targets)
    figure = make_subplots(rows=1, cols=max(len(panels), 1), subplot_titles=list(panels) or [""])
    for column, (target, points) in enumerate(panels.items(), start=1):
        groups = {
            "candidate": [p for p in points if p[2].trial_id not in front_ids],
            "Pareto front": [p for p in points if p[2].trial_id in front_ids
                             and p[2].trial_id != highlight],
            "this run": [p for p in points if p[2].trial_id == highlight],
        }
        styles = {"candidate": ("#9aa0a6", 8), "Pareto front": ("#d93025", 11),
                  "this run": ("#1a73e8", 16)}
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
