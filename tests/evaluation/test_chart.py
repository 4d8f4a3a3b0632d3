"""The PNG chart is written for both judging modes."""

from __future__ import annotations

import pytest

from icrm_sgl.evaluation.chart import write_chart
from icrm_sgl.evaluation.metrics import compute_metrics
from icrm_sgl.evaluation.rewardbench import SUBSETS

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def pairwise_records() -> list[dict]:
    """Three pairs in each of the 23 RewardBench subsets: a win, a position flip, a failure."""
    records = []
    for subset in SUBSETS:
        win = [
            {"order": "chosen_first", "choice": "A+", "error": None},
            {"order": "rejected_first", "choice": "B+", "error": None},
        ]
        flip = [
            {"order": "chosen_first", "choice": "A+", "error": None},
            {"order": "rejected_first", "choice": "A+", "error": None},
        ]
        fail = [{"order": "chosen_first", "choice": None, "error": "engine error"}]
        for judgements in (win, flip, fail):
            records.append(
                {
                    "id": str(len(records)),
                    "subset": subset,
                    "mode": "pairwise",
                    "judgements": judgements,
                }
            )
    return records


def individual_records() -> list[dict]:
    scores = [(8, 3), (4, 6), (None, 5)]
    return [
        {
            "id": str(i),
            "subset": "a" if i % 2 else "b",
            "mode": "individual",
            "scores": {"chosen": c, "rejected": r},
        }
        for i, (c, r) in enumerate(scores)
    ]


@pytest.mark.parametrize("records", [pairwise_records(), individual_records()])
def test_write_chart_png(tmp_path, records):
    metrics = compute_metrics(records)
    target = tmp_path / "charts" / "eval.png"
    result = write_chart(metrics, str(target))
    assert result == target
    data = target.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 5000
