"""A PNG bar chart of accuracy, flip rate and failure rate per subset.

Drawn with matplotlib's Agg canvas directly (no pyplot, no display), so it works on
headless machines and leaves no global figure state behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from icrm_sgl.errors import MissingDependencyError

#: (metrics key, legend label, colour) of each bar in a group.
SERIES = (
    ("accuracy", "accuracy", "#2f6db5"),
    ("flip_rate", "position-flip rate", "#e08a1e"),
    ("failure_rate", "failure rate", "#c0392b"),
)
#: The bars of a run over replies with human scores: the reward's correlations with them.
CORRELATION_SERIES = (
    ("pearson", "Pearson", "#2f6db5"),
    ("spearman", "Spearman", "#e08a1e"),
    ("kendall", "Kendall", "#27ae60"),
)
ROW_HEIGHT_IN = 0.42
DPI = 120


def _rows(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [*metrics["per_subset"].items(), ("overall", metrics["overall"])]


def _series(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The bars worth drawing: flip rate only where some pair was judged in two orders;
    the correlations for replies with human scores."""
    if metrics.get("kind") == "correlation":
        return list(CORRELATION_SERIES)
    has_flips = any(row["flip_n"] for _, row in _rows(metrics))
    return [s for s in SERIES if s[0] != "flip_rate" or has_flips]


def _title(metrics: dict[str, Any]) -> str:
    title = f"{metrics['mode']} judging, n = {metrics['n']}"
    score = (metrics.get("rewardbench") or {}).get("score")
    if score is not None:
        title += f" — RewardBench score {score * 100:.1f}%"
    return title


def _draw(ax: Any, metrics: dict[str, Any]) -> None:
    rows = _rows(metrics)
    series = _series(metrics)
    bar = 0.8 / len(series)
    for k, (key, label, colour) in enumerate(series):
        offsets = [i + (k - (len(series) - 1) / 2) * bar for i in range(len(rows))]
        values = [float("nan") if r[key] is None else r[key] for _, r in rows]
        ax.barh(offsets, values, height=bar, label=label, color=colour)
    ax.set_yticks(range(len(rows)), [f"{name} ({r['n']})" for name, r in rows])
    ax.axhline(len(rows) - 1.5, color="grey", linewidth=0.8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first subset on top, overall at the bottom
    if metrics.get("kind") == "correlation":
        ax.set_xlim(-1, 1)
        ax.set_xlabel("correlation with the human scores (-1 to 1)")
    else:
        ax.set_xlim(0, 1)
        ax.set_xlabel("rate (0 to 1)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(_title(metrics))


def new_figure(size: tuple[float, float]) -> Any:
    """A matplotlib Figure on an Agg canvas (no pyplot), or a clear missing-package error."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(
            "the evaluation chart needs matplotlib (pip install matplotlib)"
        ) from exc
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def write_chart(metrics: dict, path: str | Path) -> Path:
    """Write a grouped bar chart of the metrics to a PNG file and return its path."""
    path = Path(path)
    height = 2.0 + ROW_HEIGHT_IN * (len(metrics["per_subset"]) + 1)
    fig = new_figure((9, height))
    _draw(fig.add_subplot(), metrics)
    fig.legend(loc="outside lower center", ncols=len(_series(metrics)), fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path
