"""A hosted engine registered by a third party may hand back a verdict that breaks the
judge's schema: the runner checks it with the judge's own model, and that example fails
alone while the rest of the batch is judged."""

from __future__ import annotations

from typing import Any

import pytest

from icrm_sgl import ICRM
from icrm_sgl.engines import register_engine
from icrm_sgl.errors import VerdictError
from tests.engines.test_register_engine import FixedOptions, FixedVerdictEngine

TEXTS = {"intent": "i", "checklist": "c", "strengths": "s", "weaknesses": "w"}
OUT_OF_RANGE = (
    "eleven_hosted returned an invalid verdict: score: Input should be less than or equal to 10"
)


class ScoreFromPromptEngine(FixedVerdictEngine):
    """A third-party engine that gives an individual verdict of 11 (out of range) when
    the reply it judges says ELEVEN, else a valid 7; it does not validate its verdicts."""

    def judge(
        self, prompt: str, judge: Any, completion: bool, gen: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return {**TEXTS, "score": 11 if "ELEVEN" in prompt else 7}, {"prompt_tokens": 0}


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """The engine registered for one test; the registry is as before afterwards."""
    from icrm_sgl import engines

    monkeypatch.setattr(engines, "_ENGINES", dict(engines._ENGINES))
    register_engine(
        "eleven_hosted", lambda model_name=None, **o: ScoreFromPromptEngine(FixedOptions(**o))
    )


def example(reply: str, ex_id: str) -> dict[str, Any]:
    turns = [
        {"role": "user", "content": "Count to three."},
        {"role": "assistant", "content": reply},
    ]
    return {"id": ex_id, "conversation": turns}


def model() -> ICRM:
    return ICRM(rm_type="individual", engine="eleven_hosted", num_shots=0)


def test_an_out_of_range_score_is_that_examples_error_and_the_batch_goes_on():
    batch = [example("1 2 3", "a"), example("ELEVEN", "b"), example("one two three", "c")]
    with model() as judge:
        results = {r.id: r for r in judge.judge_batch(batch)}
    assert results["b"].verdict is None
    assert results["b"].error == f"verdict error: {OUT_OF_RANGE}"
    assert [results[i].verdict for i in "ac"] == [{**TEXTS, "score": 7}] * 2


def test_a_single_invalid_verdict_raises_a_verdict_error():
    with model() as judge, pytest.raises(VerdictError, match=OUT_OF_RANGE):
        judge.judge(example("ELEVEN", "b"))
