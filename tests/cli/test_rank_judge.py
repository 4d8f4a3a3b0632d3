"""``rank --judge``: item keys reach a rubric (``reference``), and a rubric rank cannot
feed is refused before the engine loads (exit 2), on the real local engine."""

import json

from tests.conftest import EXAMPLES

REFERENCE = EXAMPLES / "judges" / "reference_correct.toml"
ITEM = {
    "id": "boil",
    "prompt": "At what temperature does water boil at sea level, in Celsius?",
    "reference": "100 degrees Celsius",
    "responses": ["100 degrees Celsius.", "50 degrees Celsius."],
}
INSTRUCTION_RESPONSE = """name = "instruction_response"
reward = "good"
template = "{$instruction}\\n{$response}\\n"
[[fields]]
name = "good"
type = "bool"
"""


def test_item_keys_reach_a_reference_rubric(run_cli, tmp_path):
    """Each response is judged against the item's reference: the ranking rests on the
    rubric's reward (P(correct)), once per response."""
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps(ITEM) + "\n", encoding="utf-8")
    run = run_cli("rank", items, "--judge", REFERENCE, "--num-shots", "0", "--max-tokens", "24")
    assert run.returncode == 0, run.stderr
    (record,) = [json.loads(line) for line in run.stdout.splitlines()]
    ranking = record["ranking"]
    assert ranking["method"] == "scores" and ranking["judge_calls"] == 2
    assert sorted(ranking["order"]) == [0, 1]
    assert all(0.0 <= row["reward"] <= 1.0 and "correct" in row for row in ranking["responses"])


def test_an_item_without_the_rubrics_key_is_skipped_in_one_line(run_cli, tmp_path):
    items = tmp_path / "items.jsonl"
    item = {k: v for k, v in ITEM.items() if k != "reference"}
    items.write_text(json.dumps(item) + "\n", encoding="utf-8")
    run = run_cli("rank", items, "--judge", REFERENCE, "--model", tmp_path / "absent.gguf")
    assert run.returncode == 2  # refused before the (absent) model is looked for
    assert "line 1 (id boil): missing 'reference'" in run.stderr
    assert "rank supplies history, user_query, model_output and item keys" in run.stderr


def test_a_rubric_rank_cannot_feed_exits_2_before_the_engine_loads(run_cli, tmp_path):
    """The model path does not exist: had the engine loaded, that would be the error."""
    rubric = tmp_path / "judge.toml"
    rubric.write_text(INSTRUCTION_RESPONSE, encoding="utf-8")
    items = EXAMPLES / "rank_items.jsonl"
    run = run_cli("rank", items, "--judge", rubric, "--model", tmp_path / "absent.gguf")
    assert run.returncode == 2
    (line,) = run.stderr.strip().splitlines()
    assert "rank supplies history, user_query, model_output" in line
    assert "no {$model_output}" in line and "instruction, response" in line
