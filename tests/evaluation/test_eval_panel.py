"""``icrm-sgl eval --panel``: a panel of the built-in pairwise judge on the local engine and
a rubric on the loopback llama.cpp server (the panel's accuracy, each member's and their
agreement, recomputed here from the records); a third member added with ``--use-cache``
judged alone (engine calls counted); a one-reply panel's records and report from members'
verdicts made by hand; the refusals before any engine loads."""

from __future__ import annotations

import json
from collections import Counter
from itertools import combinations

import pytest

from icrm_sgl.evaluation.chart import write_chart
from icrm_sgl.evaluation.loaders import LabelledPair
from icrm_sgl.evaluation.panel import format_panel_table, panel_metrics, panel_record
from icrm_sgl.panel import combine
from icrm_sgl.panel.spec import load_panel
from icrm_sgl.plumbing.judgement import Judgement
from icrm_sgl.runners.hosted import HostedRunner
from icrm_sgl.runners.programs import ProgramRunner
from tests.evaluation.test_eval_judge import QUESTIONS, TWO_REPLIES

FAST = ["--num-shots", "0", "--max-tokens", "12"]


def pairs_file(tmp_path):
    user = [{"role": "user", "content": q} for q, _, _ in QUESTIONS]
    rows = [
        {
            "id": f"p{i}",
            "label": "A",
            "conversation_A": [turn, {"role": "assistant", "content": good}],
            "conversation_B": [turn, {"role": "assistant", "content": bad}],
        }
        for i, (turn, (_, good, bad)) in enumerate(zip(user, QUESTIONS, strict=True))
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def panel_file(tmp_path, name, server, third=False):
    (tmp_path / "tiny_two.toml").write_text(TWO_REPLIES)
    text = '[[members]]\njudge = "pairwise"\n'
    text += '[[members]]\njudge = "tiny_two.toml"\nengine = "openai"\n'
    text += f'base_url = "{server}"\nmodel = "smollm2"\n'
    text += "options = { logprobs = false }\n"  # ~0.2 s a token on llama-cpp-python's server
    if third:
        text += '[[members]]\njudge = "tiny_two.toml"\n'
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def engine_calls(monkeypatch):
    """Examples each (judge, engine) sent to its engine: what the verdict cache missed."""
    calls: Counter[tuple[str, str]] = Counter()
    for runner in (ProgramRunner, HostedRunner):
        original = runner.run

        def counting(self, batch, original=original):
            calls[self.context.judge.name, self.context.engine] += len(batch.ids)
            return original(self, batch)

        monkeypatch.setattr(runner, "run", counting)
    return calls


def evaluate(run_cli, source, panel, out, cache, *extra):
    args = ["eval", source, "--panel", panel, "--output-dir", out, *FAST, *extra]
    done = run_cli(*args, "--use-cache", "--cache-dir", cache)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return records, json.loads((out / "metrics.json").read_text()), done


def outcome(reward):
    """Which reply a member's 0-1 reward for A (the chosen reply) says wins."""
    if reward is None:
        return None
    return "chosen" if reward > 0.5 else "rejected" if reward < 0.5 else "tie"


def accuracy(rewards):
    """Right when the chosen reply (shown as A) gets more than 0.5; a tie counts half."""
    credit = {"chosen": 1.0, "tie": 0.5, "rejected": 0.0, None: 0.0}
    return round(sum(credit[outcome(r)] for r in rewards) / len(rewards), 4)


def cohen(a, b):
    """Cohen's kappa from its definition, over the pairs both members judged."""
    both = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    n = len(both)
    observed = sum(x == y for x, y in both) / n
    labels = {x for pair in both for x in pair}
    chance = sum(sum(x == k for x, _ in both) * sum(y == k for _, y in both) / n**2 for k in labels)
    return None if chance == 1 else round((observed - chance) / (1 - chance), 4)


def check_report(records, metrics, size):
    """metrics.json's accuracies and kappas against the records' rewards."""
    assert [len(r["members"]) for r in records] == [size] * len(records)
    for record in records:  # equal weights: the panel's reward is the members' mean
        rewards = [m["reward"] for m in record["members"]]
        assert record["reward"] == pytest.approx(sum(rewards) / size, abs=1e-4)
    panel = [r["reward"] for r in records]
    assert metrics["overall"]["accuracy"] == accuracy(panel)
    members = [[r["members"][k]["reward"] for r in records] for k in range(size)]
    assert [m["overall"]["accuracy"] for m in metrics["members"]] == list(map(accuracy, members))
    flips = [sum(r["members"][k]["flipped"] is True for r in records) for k in range(size)]
    assert [m["overall"]["flips"] for m in metrics["members"]] == flips
    labels = [[outcome(r) for r in rewards] for rewards in members]
    expected = [cohen(labels[i], labels[j]) for i, j in combinations(range(size), 2)]
    assert [p["kappa"] for p in metrics["agreement"]["cohen_kappa"]] == expected
    assert [p["members"] for p in metrics["agreement"]["cohen_kappa"]] == [
        [i + 1, j + 1] for i, j in combinations(range(size), 2)
    ]


def test_a_panel_eval_reports_members_and_agreement_and_a_new_member_is_judged_alone(
    run_cli, tmp_path, llama_server, engine_calls
):
    source, cache = pairs_file(tmp_path), tmp_path / "cache"
    duo = panel_file(tmp_path, "duo.toml", llama_server)
    records, metrics, done = evaluate(run_cli, source, duo, tmp_path / "duo", cache)
    assert engine_calls == {("pairwise", "local"): 6, ("tiny_two", "openai"): 6}  # both orders
    assert [(m["judge"], m["engine"]) for m in metrics["members"]] == [
        ("pairwise", "local"),
        ("tiny_two", "openai"),
    ]
    assert metrics["mode"] == metrics["panel"]["name"] == "duo"
    check_report(records, metrics, 2)
    assert "Cohen's kappa, members 1 and 2" in done.stdout
    assert (tmp_path / "duo" / "chart.png").read_bytes()[:4] == b"\x89PNG"

    engine_calls.clear()
    trio = panel_file(tmp_path, "trio.toml", llama_server, third=True)
    # one order (chosen as A) this time: the members' A/B verdicts come from the cache
    again, metrics, _ = evaluate(run_cli, source, trio, tmp_path / "trio", cache, "--orders", "ab")
    assert engine_calls == {("tiny_two", "local"): 3}  # the new member only
    assert all(r["meta"]["cache_hits"] == 2 for r in again)
    for old, new in zip(records, again, strict=True):
        assert [m["fingerprint"] for m in new["members"][:2]] == [
            m["fingerprint"] for m in old["members"]
        ]
    check_report(again, metrics, 3)
    assert len(metrics["agreement"]["cohen_kappa"]) == 3


ONE_REPLY = """name = "{name}"
reward = "score"
template = \"\"\"Rate the reply from 1 to 3. Question: {{$user_query}} Reply: {{$model_output}}
{{$fields}}\"\"\"

[[fields]]
name = "score"
type = "int"
min = 1
max = 3
"""


def test_a_one_reply_panel_scores_each_reply_and_names_a_failed_member(tmp_path):
    """Members' verdicts made by hand, combined by the panel's own code: the record holds
    each member's 0-1 rewards; a member that failed a reply fails that pair for it alone."""
    for name in ("rater_a", "rater_b"):
        (tmp_path / f"{name}.toml").write_text(ONE_REPLY.format(name=name))
    path = tmp_path / "panel.toml"
    path.write_text('[[members]]\njudge = "rater_a.toml"\n[[members]]\njudge = "rater_b.toml"\n')
    spec = load_panel(path)
    turn = [{"role": "user", "content": "q"}]
    # (rater_a's chosen, rejected scores; rater_b's), None for a failure; and the pair's label
    scores = [((3, 1), (2, 2), False), ((1, 3), (1, 3), False), ((2, 2), (2, None), True)]
    records = []
    for i, (a, b, tie) in enumerate(scores):
        pair = LabelledPair(
            f"p{i}",
            "s",
            [*turn, {"role": "assistant", "content": "x"}],
            [*turn, {"role": "assistant", "content": "y"}],
            tie=tie,
        )
        results = []
        for side, (score_a, score_b) in zip(
            ("chosen", "rejected"), zip(a, b, strict=True), strict=True
        ):
            outcomes = [
                combine.one_reply(member, "m", verdict(f"p{i}#{side}", score))
                for member, score in zip(spec.members, (score_a, score_b), strict=True)
            ]
            results.append((side, combine.combine(spec, f"p{i}#{side}", outcomes, False)))
        records.append(panel_record(pair, spec, results))
    assert [m["rewards"] for m in records[0]["members"]] == [
        {"chosen": 1.0, "rejected": 0.0},
        {"chosen": 0.5, "rejected": 0.5},
    ]
    assert records[2]["members"][1]["margin"] is None and records[2]["members"][1]["errors"]
    assert records[2]["margin"] == 0  # 0.5 from both against rater_a's 0.5 alone
    metrics = panel_metrics(records)
    # panel: 0.75 - 0.25 (right), 0 - 1 (wrong), a tie label at 0 (right)
    assert metrics["overall"]["accuracy"] == round(2 / 3, 4)
    # rater_a: right, wrong, tie label at 0 right; rater_b: tie (half), wrong, failed
    assert [m["overall"]["accuracy"] for m in metrics["members"]] == [round(2 / 3, 4), 0.1667]
    assert [m["overall"]["failures"] for m in metrics["members"]] == [0, 1]
    # rater_a: chosen, rejected, tie; rater_b: tie, rejected, failed. Over the two pairs
    # both judged p_o = 1/2, and p_e = 1/2·0 (chosen) + 1/2·1/2 (rejected) + 0 (tie) = 1/4,
    # so kappa = (1/2 - 1/4) / (1 - 1/4) = 1/3
    (pair,) = metrics["agreement"]["cohen_kappa"]
    assert (pair["n"], pair["kappa"]) == (2, round(1 / 3, 4))
    assert metrics["agreement"]["fleiss_n"] == 2
    table = format_panel_table(metrics)
    assert "1 rater_a on local" in table and "Krippendorff's alpha" in table
    assert write_chart(metrics, tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


def verdict(example_id, score):
    if score is None:
        return Judgement(example_id, error="no valid verdict")
    return Judgement(example_id, verdict={"score": score}, meta={"engine": "local"})


def test_panel_refusals_come_before_any_engine_loads(run_cli, tmp_path):
    (tmp_path / "tiny_two.toml").write_text(TWO_REPLIES)
    panel = tmp_path / "panel.toml"
    panel.write_text('[[members]]\njudge = "pairwise"\n[[members]]\njudge = "tiny_two.toml"\n')
    rows = tmp_path / "scored.jsonl"
    rows.write_text(json.dumps({"q": "2+2?", "r": "4", "s": 5}) + "\n")
    out = tmp_path / "out"
    cases = [
        (["--reconcile", "choice"], "--reconcile is for one judge"),
        (["--columns", "prompt=q,reply=r,score=s"], "human scores take --judge"),
    ]
    for extra, message in cases:
        source = rows if "--columns" in extra else pairs_file(tmp_path)
        done = run_cli("eval", source, "--panel", panel, "--output-dir", out, *extra, *FAST)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr.strip().splitlines()[-1], done.stderr
        assert "Traceback" not in done.stderr
        assert not (out / "results.jsonl").exists()
