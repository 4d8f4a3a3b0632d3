"""``serve --both-orders``: each pair judged A/B and B/A through ``judge_pairs`` and
answered as ``score --both-orders`` writes it; a panel of two-reply members in both
orders; the queue counting a pair as its two calls (the real local engine, in process)."""

from __future__ import annotations

import json
import threading

from icrm_sgl.judges import BUILTIN_NAMES, default_judge
from icrm_sgl.judging.pair_judging import PairJudgement
from icrm_sgl.judging.pair_orders import Reconciliation
from tests.conftest import EXAMPLES

PAIRWISE = json.loads((EXAMPLES / "test_pairwise.json").read_text())
INDIVIDUAL = json.loads((EXAMPLES / "test_individual.json").read_text())
JUDGES = (EXAMPLES / "judges").resolve()
#: A short verdict and no shots: the record's shape is the point, not its quality.
GEN = {"max_tokens": 16}


def _client(config, open_judges):
    from fastapi.testclient import TestClient

    from icrm_sgl.serve.app import create_app

    return TestClient(create_app(config, open_judges))


def _as_reward_request(pair):
    """The /get_reward request whose one query is ``pair``'s A, compared with its B."""
    (user, reply_a), (_, reply_b) = pair["conversation_A"], pair["conversation_B"]
    prompt = user["content"]
    return {
        "query": [prompt + reply_a["content"]],
        "prompts": [prompt],
        "labels": [reply_b["content"]],
    }


def test_a_pair_gets_scores_reconciled_record_and_reward_and_one_reply_is_422(
    local_backend, run_cli, tmp_path
):
    from icrm_sgl.serve.config import ServeConfig
    from icrm_sgl.serve.judges import Judges

    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(json.dumps(PAIRWISE) + "\n" + json.dumps(INDIVIDUAL) + "\n")
    refused = run_cli("score", mixed, "--both-orders")  # refused before any engine loads
    assert refused.returncode == 2

    def judges():
        return Judges.open(BUILTIN_NAMES, backend=local_backend, num_shots=0, use_cache=True)

    config = ServeConfig(both_orders=True, max_queue=3, gen=GEN)
    with _client(config, judges) as client:
        judged = client.post("/v1/judge", json={"id": "p", **PAIRWISE})
        rewarded = client.post("/get_reward", json=_as_reward_request(PAIRWISE))
        one_reply = client.post("/v1/judge", json=[PAIRWISE, INDIVIDUAL])
        too_many = client.post("/v1/judge", json=[PAIRWISE, PAIRWISE])  # 4 calls, 3 places
    # the shape of what score --both-orders writes for a pair (PairJudgement.record)
    reconciled = Reconciliation(0.5, 0.0, 0.0, False)
    written = PairJudgement("p", {"A/B": {}, "B/A": {}}, reconciled).record()

    assert judged.status_code == 200, judged.text
    record = judged.json()
    assert record["id"] == "p" and set(record) == set(written)
    result = record["result"]
    assert set(result) == set(written["result"])
    assert list(result["verdicts"]) == ["A/B", "B/A"]
    for verdict in result["verdicts"].values():
        default_judge("pairwise").validate(verdict)
    assert isinstance(result["flipped"], bool) and list(record["meta"]["orders"]) == ["A/B", "B/A"]

    assert rewarded.status_code == 200, rewarded.text
    assert rewarded.json()["rewards"] == [result["expected_margin"]]  # the reconciled margin

    assert one_reply.status_code == 422, one_reply.text
    (problem,) = one_reply.json()["problems"]
    assert (problem["example"], problem["field"]) == (1, None)
    message = problem["message"].removeprefix("example 1: ")
    assert problem["message"] != message and message in refused.stderr  # score's words

    assert too_many.status_code == 413
    assert too_many.json()["error"] == "2 examples (4 engine calls); the queue holds 3"


def test_a_panel_judges_both_orders_and_a_per_query_field_clash_is_422(tmp_path):
    """Each member of a two-reply panel judges both orders; a per-query field that one
    member reads as an input and another gets as a reply is a 422 naming the query and
    the field (it was a 500)."""
    from icrm_sgl.judging.settings import Settings
    from icrm_sgl.panel import load_panel
    from icrm_sgl.serve.config import ServeConfig
    from icrm_sgl.serve.judges import Judges

    panel_file = tmp_path / "panel.toml"
    panel_file.write_text(
        f'[[members]]\njudge = "{JUDGES / "multiturn_pairwise.toml"}"\n'
        f'[[members]]\njudge = "{JUDGES / "prometheus_relative.toml"}"\n'
    )
    settings = Settings.from_flat({"num_shots": 0, "use_cache": True})
    (user, reply_a), (_, reply_b) = PAIRWISE["conversation_A"], PAIRWISE["conversation_B"]
    texts = {"response_a": reply_a["content"], "response_b": reply_b["content"]}
    example = {**PAIRWISE, "user_query": user["content"], **texts}
    clash = {**_as_reward_request(PAIRWISE), "response_a": ["not the reply"]}
    config = ServeConfig(both_orders=True, gen={"max_tokens": 12})
    with _client(config, lambda: Judges.open_panel(load_panel(panel_file), settings)) as client:
        clashed = client.post("/get_reward", json=clash)
        judged = client.post("/v1/judge", json=example)
        rewarded = client.post("/get_reward", json=_as_reward_request(PAIRWISE))

    assert clashed.status_code == 422, clashed.text
    (problem,) = clashed.json()["problems"]
    assert (problem["example"], problem["field"]) == (0, "response_a")
    assert problem["message"].startswith("query 0: ") and "\n" not in problem["message"]

    assert judged.status_code == 200, judged.text
    record = judged.json()
    for member in record["meta"]["members"]:
        assert list(member["verdicts"]) == ["A/B", "B/A"] and "flipped" in member
    assert rewarded.status_code == 200, rewarded.text
    assert rewarded.json()["rewards"] == [record["reward"]]


def test_a_pair_in_both_orders_takes_two_places_in_a_batch_standin():
    """``--max-batch`` counts engine calls: a pair judged in both orders is two of them.
    The runner is a stand-in that records its batches (the server tests time the real one)."""
    from icrm_sgl.serve.batcher import Batcher
    from icrm_sgl.serve.judges import BothOrders
    from icrm_sgl.serve.metrics import Metrics

    sizes, done = [], threading.Event()

    def run(examples, **gen):
        sizes.append(len(examples))
        if sum(sizes) == 3:
            done.set()
        return iter(())

    batcher = Batcher({"pairwise": BothOrders(run)}, {}, Metrics(), max_queue=6, max_batch=5)
    try:
        assert batcher.depth()["queue_depth"] == 0
        batcher.submit(["pairwise"] * 3, [PAIRWISE] * 3, deadline=1e12)
        assert done.wait(30)
    finally:
        batcher.close(join_timeout=30)
    assert sizes == [2, 1]
