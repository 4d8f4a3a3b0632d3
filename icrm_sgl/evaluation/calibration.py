"""Calibration of the judge's preference probabilities against the labels.

For each pair the model gives P(chosen reply is better). The side it prefers is the one
with more than half of that probability, and its confidence is max(p, 1 - p). Pairs are
binned by confidence (0.5-0.6 … 0.9-1.0); a well-calibrated judge is right in a bin as
often as its mean confidence there. The expected calibration error (ECE) is the mean
absolute gap, weighted by each bin's share of the pairs. A pair at exactly 0.5 prefers
neither side and counts as half right.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Equal-width confidence bins over [0.5, 1].
BINS = 5
DECIMALS = 4


def _bin(confidence: float, bins: int) -> int:
    # the small epsilon keeps 0.6 in the 0.6-0.7 bin despite floating-point rounding
    return min(int((confidence - 0.5) * 2 * bins + 1e-9), bins - 1)


def calibration(p_chosen: Sequence[float], bins: int = BINS) -> dict[str, Any]:
    """The calibration table (per bin: range, n, mean confidence, observed accuracy) and ECE."""
    sums = [[0, 0.0, 0.0] for _ in range(bins)]  # n, confidence total, correct total
    for p in p_chosen:
        confidence = max(p, 1.0 - p)
        correct = 1.0 if p > 0.5 else 0.0 if p < 0.5 else 0.5
        row = sums[_bin(confidence, bins)]
        row[0] += 1
        row[1] += confidence
        row[2] += correct
    total = sum(row[0] for row in sums)
    table, ece = [], 0.0
    for k, (n, conf, right) in enumerate(sums):
        low, high = 0.5 + k * 0.5 / bins, 0.5 + (k + 1) * 0.5 / bins
        entry: dict[str, Any] = {"bin": f"{low:.2f}-{high:.2f}", "n": n}
        if n:
            entry["confidence"] = round(conf / n, DECIMALS)
            entry["accuracy"] = round(right / n, DECIMALS)
            ece += n / total * abs(right / n - conf / n)
        else:
            entry["confidence"] = entry["accuracy"] = None
        table.append(entry)
    return {"n": total, "bins": table, "ece": round(ece, DECIMALS) if total else None}


def format_calibration(cal: dict[str, Any] | None) -> list[str]:
    """The table as text lines (empty when no pair had a probability)."""
    if not cal or not cal["n"]:
        return []
    lines = [
        "calibration: confidence in the preferred reply vs how often it was the chosen one",
        f"  {'confidence':<10}  {'n':>5}  {'mean':>6}  {'observed':>8}",
    ]
    for row in cal["bins"]:
        mean = "-" if row["confidence"] is None else f"{row['confidence']:.3f}"
        seen = "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        lines.append(f"  {row['bin']:<10}  {row['n']:>5}  {mean:>6}  {seen:>8}")
    lines.append(f"  expected calibration error (ECE): {cal['ece']:.3f} over {cal['n']} pairs")
    return lines


def write_calibration_chart(cal: dict[str, Any], path: str | Path) -> Path | None:
    """A reliability diagram (observed accuracy per confidence bin against the diagonal)."""
    if not cal or not cal["n"]:
        return None
    from icrm_sgl.evaluation.chart import new_figure

    fig = new_figure((5.5, 4.5))
    ax = fig.add_subplot()
    rows = [r for r in cal["bins"] if r["n"]]
    ax.bar(
        [r["confidence"] for r in rows],
        [r["accuracy"] for r in rows],
        width=0.5 / len(cal["bins"]) * 0.8,
        color="#2f6db5",
        label="observed accuracy",
    )
    for r in rows:
        ax.annotate(str(r["n"]), (r["confidence"], r["accuracy"]), ha="center", va="bottom")
    ax.plot([0.5, 1.0], [0.5, 1.0], color="grey", linestyle="--", label="perfect calibration")
    ax.set_xlim(0.5, 1.0)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence in the preferred reply (bin mean; labels: pairs)")
    ax.set_ylabel("share where it was the chosen reply")
    ax.set_title(f"calibration, n = {cal['n']}, ECE = {cal['ece']:.3f}")
    ax.legend(loc="upper left", fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120)
    return path
