"""A PNG bar chart of accuracy, flip rate and failure rate per subset; for a panel of
judges, also each member's accuracy beside the panel's and the members' agreement.

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


def _label(ax: Any, values: list[float | None]) -> None:
    """Each bar's value beside it, "undefined" where there is none (no bar)."""
    for i, value in enumerate(values):
        text = "undefined" if value is None else f"{value:.2f}"
        ax.annotate(text, (value or 0.0, i), xytext=(4, 0), textcoords="offset points", va="center")


def _draw_members(ax: Any, metrics: dict[str, Any]) -> None:
    """A panel's members' overall accuracy (each from its own reward) and the panel's."""
    rows = [(f"{m['member']}: {m['judge']} on {m['engine']}", m) for m in metrics["members"]]
    rows.append((f"panel ({metrics['panel']['combine']})", metrics))
    values = [
        float("nan") if r["overall"]["accuracy"] is None else r["overall"]["accuracy"]
        for _, r in rows
    ]
    colours = ["#7f8c8d"] * (len(rows) - 1) + ["#2f6db5"]
    ax.barh(range(len(rows)), values, color=colours)
    _label(ax, [r["overall"]["accuracy"] for _, r in rows])
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("overall accuracy (0 to 1)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title("members and panel")


def _draw_agreement(ax: Any, agreement: dict[str, Any]) -> None:
    """Cohen's kappa of each two members, Fleiss' kappa and Krippendorff's alpha (-1 to 1)."""
    rows = [
        (f"Cohen's κ {p['members'][0]}–{p['members'][1]}", p["kappa"])
        for p in agreement["cohen_kappa"]
    ]
    rows += [
        ("Fleiss' κ", agreement["fleiss_kappa"]),
        ("Krippendorff's α", agreement["krippendorff_alpha"]),
    ]
    values = [float("nan") if v is None else v for _, v in rows]
    ax.barh(range(len(rows)), values, color="#27ae60")
    _label(ax, [v for _, v in rows])
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(-1, 1)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("agreement on which reply wins (-1 to 1; 0: chance)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(f"agreement between members, n = {agreement['n']}")


def write_chart(metrics: dict, path: str | Path) -> Path:
    """Write a grouped bar chart of the metrics to a PNG file and return its path; a
    panel's chart adds its members' accuracy and their agreement below."""
    path = Path(path)
    height = 2.0 + ROW_HEIGHT_IN * (len(metrics["per_subset"]) + 1)
    members = metrics.get("members")
    if members is None:
        fig = new_figure((9, height))
        _draw(fig.add_subplot(), metrics)
    else:
        pairs = len(metrics["agreement"]["cohen_kappa"]) + 2
        extra = 1.5 + ROW_HEIGHT_IN * (len(members) + 1), 1.5 + ROW_HEIGHT_IN * pairs
        fig = new_figure((9, height + sum(extra)))
        axes = fig.subplots(3, 1, height_ratios=[height, *extra])
        _draw(axes[0], metrics)
        _draw_members(axes[1], metrics)
        _draw_agreement(axes[2], metrics["agreement"])
    fig.legend(loc="outside lower center", ncols=len(_series(metrics)), fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path
