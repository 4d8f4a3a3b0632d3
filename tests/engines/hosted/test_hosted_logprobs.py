"""Score / choice probabilities from hosted log-probabilities: the token-tree walk on
hand-made token lists, stand-ins for an API that returns none (OpenAI shape, Claude), and
the real llama.cpp server, which returns them."""

from __future__ import annotations

import json
import math

import pytest

from icrm_sgl.engines import create_engine
from icrm_sgl.engines.hosted.logprobs import TokenLogprobs, Unavailable, value_probabilities
from icrm_sgl.judges import default_judge
from icrm_sgl.judging.expectation import expected_score
from tests.engines.hosted.test_hosted_claude import claude, message
from tests.engines.hosted.test_hosted_standin import GEN, VALID, engine
from tests.engines.standin import StandinServer, chat_reply

ln = math.log


def tokens(*pieces):
    """(token, {alternative: probability}) pairs; the token itself needs no entry."""
    return [
        TokenLogprobs(tok, {alt: ln(p) for alt, p in (alts or {tok: 1.0}).items()})
        for tok, alts in pieces
    ]


SCORE_7 = tokens(
    ('{"', None),
    ("score", None),
    ('":', None),
    (" ", None),
    ("7", {"7": 0.5, "8": 0.3, "1": 0.2}),
    ("}", None),
)


def test_score_probabilities_by_hand():
    asked = []

    def extend(prefix):  # after '{"score": 1': "0" makes 10, "}" ends 1
        asked.append(prefix)
        return {"0": ln(0.5), "}": ln(0.5)}

    probs, requests = value_probabilities(
        SCORE_7, '{"score": 7}', default_judge("individual"), extend
    )
    assert asked == ['{"score": 1'] and requests == 1
    by_hand = {"7": 0.5, "8": 0.3, "1": 0.1, "10": 0.1}
    assert probs == {str(s): pytest.approx(by_hand.get(str(s), 0.0)) for s in range(1, 11)}
    assert expected_score(probs) == pytest.approx(3.5 + 2.4 + 0.1 + 1.0)


def test_a_prefix_that_cannot_be_resolved_is_unavailable_not_guessed():
    with pytest.raises(Unavailable, match="cannot tell 1, 10 apart"):
        value_probabilities(SCORE_7, '{"score": 7}', default_judge("individual"))


def test_choice_probabilities_along_the_path_and_off_it():
    toks = tokens(
        ('{"choice": "', None),
        ("A", {"A": 0.8, "B": 0.2}),
        ('+"', {'+"': 0.5, "++": 0.25, "=": 0.25}),  # A+ ends; A++ and A=B are the only ways on
        ("}", None),
    )

    def extend(prefix):
        assert prefix == '{"choice": "B'
        return {"++": ln(0.5), '+"': ln(0.5), "x": ln(0.1)}  # "Bx" is no choice: ignored

    probs, _ = value_probabilities(toks, '{"choice": "A+"}', default_judge("pairwise"), extend)
    by_hand = {"A++": 0.2, "A+": 0.4, "A=B": 0.2, "B+": 0.1, "B++": 0.1}
    total = sum(by_hand.values())
    assert probs == {c: pytest.approx(p / total) for c, p in by_hand.items()}


def test_tokens_that_do_not_spell_the_reply_are_refused():
    with pytest.raises(Unavailable, match="do not spell out the reply"):
        value_probabilities(SCORE_7, '{"score": 8}', default_judge("individual"))


def test_api_returning_no_logprobs_is_marked_unavailable_with_standin_server():
    with StandinServer([chat_reply(json.dumps(VALID))]) as server:
        verdict, meta = engine(server.url).judge(
            "Judge this.", default_judge("pairwise"), False, GEN
        )
    assert verdict == VALID
    assert server.requests[0]["logprobs"] is True and server.requests[0]["top_logprobs"] == 20
    assert "probabilities" not in meta
    assert "returned no log-probabilities" in meta["probabilities_unavailable"]


def test_logprobs_off_are_not_requested_with_standin_server():
    with StandinServer([chat_reply(json.dumps(VALID))]) as server:
        _, meta = engine(server.url, logprobs=False).judge(
            "Judge this.", default_judge("pairwise"), False, GEN
        )
    assert "logprobs" not in server.requests[0]
    assert meta["probabilities_unavailable"].startswith("not requested")


def test_claude_is_marked_unavailable_with_standin_server():
    with StandinServer([message(VALID)]) as server:
        _, meta = claude(server.url).judge("Judge this.", default_judge("pairwise"), True, GEN)
    assert meta["probabilities_unavailable"] == "claude gives no log-probabilities"
    assert "probabilities" not in meta


PROMPT = (
    "Rate the reply from 1 to 10 as JSON with keys intent, checklist, strengths, weaknesses, "
    "score; one short sentence each.\nQuestion: What is 2 + 2?\nReply: 4\nJSON: "
)


def test_llama_server_completion_logprobs_give_the_score_distribution(llama_server):
    backend = create_engine("openai", base_url=llama_server, completion_schema="llama.cpp")
    try:
        verdict, meta = backend.judge(
            PROMPT, default_judge("individual"), True, {"max_tokens": 300}
        )
    finally:
        backend.shutdown()
    probs = meta["probabilities"]
    assert set(probs) == {str(s) for s in range(1, 11)}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
    assert probs[str(verdict["score"])] > 0
    assert meta["expected_score"] == pytest.approx(expected_score(probs), abs=1e-5)
    assert meta["logprob_requests"] >= 0
