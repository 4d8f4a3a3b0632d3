"""``icrm-sgl shots`` subcommands."""

import json

from click.testing import CliRunner

from icrm_sgl.cli import cli
from icrm_sgl.shots import builtin_pool_path, load_shots


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def test_validate_passes_on_both_builtin_pools():
    for rm_type in ("individual", "pairwise"):
        result = invoke("shots", "validate", str(builtin_pool_path(rm_type)))
        assert result.exit_code == 0, result.output
        assert f"valid {rm_type} shots, 0 problems" in result.output


def test_validate_reports_one_line_per_problem(tmp_path):
    good = load_shots("individual")[0]
    records = [
        good,
        {**good, "id": "bad-score", "feedback": {**good["feedback"], "score": 11}},
        {**good, "id": "bad-turns", "conversation": good["conversation"][:1]},
        good,
    ]
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    result = invoke("shots", "validate", str(path))
    assert result.exit_code == 2
    problems = [line for line in result.output.splitlines() if line.startswith(str(path))]
    assert len(problems) == 4  # two bad records, a duplicate id, and the summary line
    assert any("bad-score: feedback score" in p for p in problems)
    assert any("bad-turns" in p and "assistant turn" in p for p in problems)
    assert any("duplicate shot id" in p for p in problems)


def test_list_show_and_sample():
    listed = invoke("shots", "list", "--rm-type", "individual")
    assert listed.exit_code == 0
    rows = [line.split() for line in listed.output.splitlines()[2:]]
    assert len(rows) == len(load_shots("individual"))
    assert all(int(row[-1]) > 50 for row in rows)
    shown = invoke("shots", "show", "pair-chat-01")
    assert shown.exit_code == 0 and '"id": "pair-chat-01"' in shown.output
    assert "## Example 1" in shown.output
    sampled = invoke("shots", "sample", "--n", "2", "--mode", "balanced", "--seed", "3")
    assert sampled.exit_code == 0
    lines = sampled.output.splitlines()
    assert len(lines) == 3 and lines[-1].startswith("prefix: ")
    assert int(lines[-1].split()[1]) > 300
