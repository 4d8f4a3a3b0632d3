"""The example judges of examples/judges/: each rubric loads, and each judge the README
lists runs through score and eval as the README writes them, and through rank and serve,
on the real local engine (SmolLM2) with small budgets."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

import pytest

from icrm_sgl.judges import Judge, as_judge
from tests.conftest import EXAMPLES

JUDGES = EXAMPLES / "judges"
README = JUDGES / "README.md"
#: Validity and the plumbing are the point, not good judging: short fields, two examples.
BUDGET = ("--num-shots", "0", "--max-tokens", "16")
GEN = {"max_tokens": 16}
#: The eight formats of issue 28, as their rubrics are named.
FORMATS = (
    "prometheus_reference",
    "prometheus_relative",
    "mtbench_single",
    "mtbench_pairwise",
    "mtbench_math",
    "hhh_likert",
    "constraints",
    "multiturn_pairwise",
)
#: The default run takes one judge of each kind (human scores with a reference, a weighted
#: reward over labelled pairs, two replies with a tie) through ``eval``, ``rank`` and
#: ``serve``, and those and the conversation judge through ``score``; ``-m slow`` every
#: format through each (every rubric loads by default).
KINDS = ("prometheus_reference", "hhh_likert", "mtbench_pairwise")
SOME = tuple(
    name if name in KINDS else pytest.param(name, marks=pytest.mark.slow) for name in FORMATS
)
SCORED = tuple(
    name if name in (*KINDS, "multiturn_pairwise") else pytest.param(name, marks=pytest.mark.slow)
    for name in FORMATS
)


def readme_commands() -> dict[str, dict[str, list[str]]]:
    """Each rubric's ``score`` and ``eval`` arguments, as the README's commands give them."""
    commands: dict[str, dict[str, list[str]]] = {}
    for line in README.read_text("utf-8").splitlines():
        if not line.startswith("icrm-sgl "):
            continue
        command, *args = shlex.split(line)[1:]
        rubric = Path(args[args.index("--judge") + 1]).stem
        commands.setdefault(rubric, {})[command] = args
    return commands


COMMANDS = readme_commands()


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def first_example(name: str) -> dict[str, Any]:
    """The first example of the file the README scores with the judge."""
    return records(Path(COMMANDS[name]["score"][0]))[0]


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_verdict(judge: Judge, verdict: dict[str, Any]) -> None:
    assert judge.public(judge.validate(verdict)) == verdict


def check_one_reply(judge: Judge, record: dict[str, Any]) -> None:
    """A valid verdict and a finite reward, within the reward's range (one order of a
    judge of two replies: its choice's score)."""
    check_verdict(judge, record["verdict"])
    reward = record["meta"]["reward"]
    assert finite(reward), record
    if judge.reward is None:  # a combined reward with normalize: each term 0-1
        assert set(record["meta"]["reward_terms"]) == set(judge.weights)
        assert 0.0 <= reward <= sum(judge.weights.values())
    else:
        low, high = judge.value_range(judge.field_named(judge.reward))
        assert low <= reward <= high


def check_both_orders(judge: Judge, result: dict[str, Any]) -> None:
    """Both orders' verdicts valid and reconciled into one preference for A."""
    assert set(result["verdicts"]) == {"A/B", "B/A"}
    for verdict in result["verdicts"].values():
        check_verdict(judge, verdict)
    assert 0.0 <= result["p_a_better"] <= 1.0
    assert finite(result["expected_margin"]) and isinstance(result["flipped"], bool)


def test_every_example_rubric_loads_and_the_readme_lists_each_format():
    for path in sorted(JUDGES.glob("*.toml")):
        as_judge(path)
    assert set(FORMATS) <= set(COMMANDS)
    for name in FORMATS:
        assert set(COMMANDS[name]) == {"score", "eval"}, name
    pairs = {name for name in FORMATS if as_judge(JUDGES / f"{name}.toml").pair is not None}
    assert pairs == {"prometheus_relative", "mtbench_pairwise", "multiturn_pairwise"}
    assert as_judge(JUDGES / "mtbench_pairwise.toml").reward == "verdict"


@pytest.mark.parametrize("name", SCORED)
def test_score_as_the_readme_writes_it(name, run_cli, tmp_path):
    judge = as_judge(JUDGES / f"{name}.toml")
    out = tmp_path / "out.jsonl"
    done = run_cli("score", *COMMANDS[name]["score"], *BUDGET, "--limit", "2", "-o", out)
    assert done.returncode == 0, done.stderr
    got = records(out)
    assert len(got) == 2
    for record in got:
        if judge.pair is not None:
            check_both_orders(judge, record["result"])
        else:
            check_one_reply(judge, record)


@pytest.mark.parametrize("name", SOME)
def test_eval_as_the_readme_writes_it(name, run_cli, tmp_path):
    judge = as_judge(JUDGES / f"{name}.toml")
    folder = tmp_path / "run"
    args = COMMANDS[name]["eval"]
    done = run_cli("eval", *args, *BUDGET, "--limit", "2", "--output-dir", folder)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((folder / "metrics.json").read_text("utf-8"))
    assert metrics["judge"] == {"name": judge.name, "fingerprint": judge.fingerprint()}
    assert metrics["overall"]["n"] == 2
    results = records(folder / "results.jsonl")
    assert len(results) == 2
    if judge.pair is not None:  # both orders of every pair, and how often they disagree
        assert metrics["overall"]["flip_n"] == 2
        assert 0.0 <= metrics["overall"]["flip_rate"] <= 1.0
        for result in results:
            assert finite(result["margin"])
            orders = [j["order"] for j in result["judgements"]]
            assert orders == ["chosen_first", "rejected_first"]
            assert all(j["choice"] in judge.scale for j in result["judgements"])
    elif "score=" in " ".join(args):
        assert all(finite(r["reward"]) for r in results)
        assert {"pearson", "spearman", "kendall"} <= set(metrics["overall"])
    else:  # chosen and rejected each judged: the pair is decided by their rewards
        overall = metrics["overall"]
        rewards = [r["rewards"] for r in results]
        wins = sum(r["chosen"] > r["rejected"] for r in rewards)
        ties = sum(r["chosen"] == r["rejected"] for r in rewards)
        assert (overall["correct"], overall["ties"]) == (wins + 0.5 * ties, ties)


def rank_item(name: str) -> dict[str, Any]:
    """The first example's question with two responses, and the example's other inputs
    (``reference``, ``constraints``) as item keys."""
    example = first_example(name)
    extras = {k: example[k] for k in ("reference", "constraints") if k in example}
    if "conversation_A" in example:  # two conversations that differ in the last reply
        a, b = example["conversation_A"], example["conversation_B"]
        asked = {"conversation": a[:-1]}
        responses = [a[-1]["content"], b[-1]["content"]]
    elif "conversation" in example:
        turns = example["conversation"]
        asked = {"conversation": turns[:-1]}
        responses = [turns[-1]["content"], "No idea."]
    else:
        asked = {"prompt": example["user_query"]}
        replies = [example[k] for k in ("response_a", "response_b") if k in example]
        responses = replies or [example["model_output"], "No idea."]
    return {**asked, "responses": responses, **extras}


@pytest.mark.parametrize("name", SOME)
def test_rank_orders_two_responses(name, run_cli, tmp_path):
    judge = as_judge(JUDGES / f"{name}.toml")
    item = tmp_path / "item.json"
    item.write_text(json.dumps({"id": name, **rank_item(name)}), "utf-8")
    done = run_cli("rank", item, "--judge", JUDGES / f"{name}.toml", *BUDGET)
    assert done.returncode == 0, done.stderr
    ranking = json.loads(done.stdout)
    assert sorted(ranking["order"]) == [0, 1]
    if judge.pair is not None:  # one comparison, judged in both orders
        (comparison,) = ranking["comparisons"]
        assert 0.0 <= comparison["p_a_better"] <= 1.0 and ranking["judge_calls"] == 2
    else:
        assert all(finite(r["reward"]) for r in ranking["responses"])


def reward_request(name: str, judge: Judge) -> dict[str, Any]:
    """/get_reward's body for the rank item's question and first response; the label is
    the second response for a judge of two replies (it compares the two), else the
    reference where the judge has one; other inputs go as per-query fields."""
    item = rank_item(name)
    prompt = item.get("prompt") or item["conversation"][-1]["content"]
    first, second = item["responses"]
    body: dict[str, Any] = {"query": [prompt + first], "prompts": [prompt]}
    if judge.pair is not None:
        body["labels"] = [second]
    elif "reference" in item:
        body["labels"] = [item["reference"]]
    if "constraints" in item:
        body["constraints"] = [item["constraints"]]
    return body


@pytest.mark.parametrize("name", SOME)
def test_serve_judges_the_example_and_gives_a_reward(name, local_backend):
    from fastapi.testclient import TestClient

    from icrm_sgl.serve.app import create_app
    from icrm_sgl.serve.config import ServeConfig
    from icrm_sgl.serve.judges import Judges

    judge = as_judge(JUDGES / f"{name}.toml")

    def judges() -> Judges:
        return Judges.open((judge,), backend=local_backend, num_shots=0)

    with TestClient(create_app(ServeConfig(gen=GEN), judges)) as client:
        judged = client.post("/v1/judge", json=first_example(name))
        rewarded = client.post("/get_reward", json=reward_request(name, judge))
    assert judged.status_code == 200, judged.text
    record = judged.json()
    check_one_reply(judge, record)
    assert record["reward"] == record["meta"]["reward"]
    assert rewarded.status_code == 200, rewarded.text
    (reward,) = rewarded.json()["rewards"]
    assert finite(reward)
