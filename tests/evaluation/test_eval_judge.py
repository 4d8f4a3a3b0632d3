"""``icrm-sgl eval --judge``: a rubric of one reply (rewards, ties as half, ECE, resume),
a rubric of two replies (both orders, flip rate), and the refusals before the engine loads."""

from __future__ import annotations

import json

import pytest

from icrm_sgl.evaluation.metrics import compute_metrics
from icrm_sgl.judges.rubric import load_rubric

FAST = ["--num-shots", "0", "--max-tokens", "8"]

ONE_REPLY = """name = "tiny_one"
reward = "score"
template = \"\"\"Rate the reply from 1 (wrong) to 3 (right).
Question: {$user_query}
Reply: {$model_output}
{$fields}
\"\"\"

[[fields]]
name = "score"
type = "int"
min = 1
max = 3
"""

TWO_REPLIES = """name = "tiny_two"
reward = "better"
template = \"\"\"Which reply answers better?
Question: {$user_query}
Reply A: {$reply_a}
Reply B: {$reply_b}
{$fields}
\"\"\"

[pair]
replies = ["reply_a", "reply_b"]
swap = { A = "B", B = "A", tie = "tie" }

[[fields]]
name = "better"
type = "choice"
choices = ["A", "B", "tie"]
scores = [1, 0, 0.5]
"""

QUESTIONS = [
    ("What is 3 + 4?", "7", "8"),
    ("Capital of France?", "Paris", "Lyon"),
    ("Plural of mouse?", "mice", "mouses"),
]


def llmbar_folder(root):
    """An LLMBar-style folder: Natural/dataset.json with labels 1 and 2."""
    folder = root / "llmbar" / "Natural"
    folder.mkdir(parents=True)
    records = [
        {"input": q, "output_1": good, "output_2": bad, "label": 1}
        if i % 2 == 0
        else {"input": q, "output_1": bad, "output_2": good, "label": 2}
        for i, (q, good, bad) in enumerate(QUESTIONS)
    ]
    (folder / "dataset.json").write_text(json.dumps(records))
    return folder.parent


def rubric(tmp_path, text, name="rubric.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def read_results(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_one_reply_rubric_rewards_ties_ece_and_resume(tmp_path, run_cli):
    source, judge = llmbar_folder(tmp_path), rubric(tmp_path, ONE_REPLY)
    out = tmp_path / "out"
    proc = run_cli("eval", source, "--judge", judge, "--output-dir", out, "--limit", "2", *FAST)
    assert proc.returncode == 0, proc.stderr
    records = read_results(out)
    assert [r["mode"] for r in records] == ["tiny_one"] * 2
    for r in records:  # each reply judged on its own: greedy value and expected reward
        assert set(r["scores"]) == set(r["rewards"]) == {"chosen", "rejected"}
        assert all(1 <= r["rewards"][side] <= 3 for side in ("chosen", "rejected"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["judge"] == {
        "name": "tiny_one",
        "fingerprint": load_rubric(judge).fingerprint(),
    }
    assert metrics["tie_credit"] == 0.5 and "counts 0.5" in proc.stdout
    choice = metrics["reconciliations"]["choice"]["overall"]
    margins = [r["scores"]["chosen"] - r["scores"]["rejected"] for r in records]
    wins, ties = sum(m > 0 for m in margins), sum(m == 0 for m in margins)
    assert (choice["ties"], choice["correct"]) == (ties, wins + 0.5 * ties)
    assert metrics["calibration"]["n"] == 2 and metrics["calibration"]["ece"] is not None
    assert list(metrics["score_histogram"]["chosen"]) == ["1", "2", "3"]
    assert (out / "chart.png").read_bytes()[:4] == b"\x89PNG"

    again = run_cli(
        "eval", source, "--judge", judge, "--output-dir", out, "--resume", "--limit", "3", *FAST
    )
    assert again.returncode == 0, again.stderr
    assert "resuming: 2 pairs already judged, 1 to go" in again.stderr
    assert [r["id"] for r in read_results(out)] == ["Natural/0", "Natural/1", "Natural/2"]


def test_two_reply_rubric_both_orders_and_flip_rate(tmp_path, run_cli):
    rows = [
        {"q": q, "x": good, "y": bad, "pref": 1}
        if i % 2 == 0
        else {"q": q, "x": bad, "y": good, "pref": 2}
        for i, (q, good, bad) in enumerate(QUESTIONS[:2])
    ]
    source = tmp_path / "prefs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    proc = run_cli(
        "eval", source, "--columns", "prompt=q,a=x,b=y,label=pref",
        "--judge", rubric(tmp_path, TWO_REPLIES), "--output-dir", out, *FAST,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    records = read_results(out)
    for r in records:
        assert [j["order"] for j in r["judgements"]] == ["chosen_first", "rejected_first"]
        assert all(j["choice"] in ("A", "B", "tie") for j in r["judgements"])
    metrics = json.loads((out / "metrics.json").read_text())
    overall = metrics["reconciliations"]["choice"]["overall"]
    assert overall["flip_n"] == 2 and overall["flip_rate"] is not None
    # a verdict that names the same letter in both orders flipped (A then A: +0.5, -0.5)
    same = sum(
        r["judgements"][0]["choice"] == r["judgements"][1]["choice"] != "tie" for r in records
    )
    assert overall["flips"] >= same
    assert set(metrics["choice_distribution"]["A"]) == {"A", "B", "tie"}
    assert metrics["judge"]["name"] == "tiny_two"


def test_a_rubric_whose_inputs_eval_cannot_supply_is_refused_before_loading(tmp_path, run_cli):
    needs = ONE_REPLY.replace("Reply: {$model_output}", "Reply: {$model_output}\n{$criteria}")
    out = tmp_path / "out"
    proc = run_cli(
        "eval", llmbar_folder(tmp_path), "--judge", rubric(tmp_path, needs),
        "--output-dir", out, "--model", tmp_path / "no-such-model.gguf", *FAST,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'criteria'" in lines[0], proc.stderr
    assert "eval supplies history, user_query, model_output" in lines[0]
    assert "no-such-model" not in proc.stderr and not (out / "results.jsonl").exists()


def test_a_row_field_of_an_input_name_fills_it(tmp_path):
    from icrm_sgl.evaluation.loaders import load_pairs
    from icrm_sgl.evaluation.runner import check_judge, jobs_for

    path = tmp_path / "prefs.jsonl"
    row = {"q": "2+2?", "x": "4", "y": "5", "pref": 1, "answer": "4"}
    path.write_text(json.dumps(row) + "\n")
    needs = ONE_REPLY.replace("{$model_output}", "{$model_output} (reference: {$reference})")
    judge = load_rubric(rubric(tmp_path, needs))
    pairs = load_pairs(
        str(path), columns="prompt=q,a=x,b=y,label=pref,reference=answer", inputs=["reference"]
    )
    check_judge(judge, pairs)
    fields = [judge.example_fields(job.example) for job in jobs_for(judge, pairs, "both")]
    assert [(f["reference"], f["model_output"]) for f in fields] == [("4", "4"), ("4", "5")]


def test_a_rubric_without_reward_is_refused_in_one_line(tmp_path, run_cli):
    no_reward = ONE_REPLY.replace('reward = "score"\n', "")
    proc = run_cli(
        "eval", llmbar_folder(tmp_path), "--judge", rubric(tmp_path, no_reward),
        "--output-dir", tmp_path / "out", *FAST,
    )  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "names none" in proc.stderr


def individual(rid, chosen, rejected):
    return {
        "id": rid,
        "subset": "s",
        "mode": "tiny_one",
        "scores": {"chosen": chosen, "rejected": rejected},
    }


@pytest.mark.parametrize(("credit", "accuracy"), [(0.0, 0.3333), (0.5, 0.5)])
def test_a_tie_counts_the_credit_given(tmp_path, credit, accuracy):
    judge = load_rubric(rubric(tmp_path, ONE_REPLY))
    records = [individual("a", 3, 1), individual("b", 2, 2), individual("c", 1, 2)]
    m = compute_metrics(records, judge=judge, tie_credit=credit)
    assert (m["overall"]["accuracy"], m["overall"]["ties"], m["tie_credit"]) == (
        accuracy,
        1,
        credit,
    )


WEIGHTED = """name = "tiny_weighted"
template = \"\"\"Rate the reply. Question: {$user_query} Reply: {$model_output} {$fields}\"\"\"

[reward]
weights = { right = 0.5, kind = 0.5 }
normalize = true

[[fields]]
name = "right"
type = "int"
min = 1
max = 3

[[fields]]
name = "kind"
type = "int"
min = 1
max = 3
"""


def test_a_combined_reward_decides_the_pair_even_where_the_named_values_tie(tmp_path):
    """A combined reward has no one field's label: two replies whose named values give the
    same reward but whose expected rewards differ are told apart by the rewards."""
    judge = load_rubric(rubric(tmp_path, WEIGHTED))
    records = [
        {**individual(rid, named, named), "mode": "tiny_weighted", "rewards": rewards}
        for rid, named, rewards in [
            ("a", 0, {"chosen": 0.4, "rejected": 0.1}),
            ("b", 0.5, {"chosen": 0.2, "rejected": 0.3}),
        ]
    ]
    overall = compute_metrics(records, judge=judge, tie_credit=0.5)["overall"]
    assert (overall["accuracy"], overall["ties"]) == (0.5, 0)
