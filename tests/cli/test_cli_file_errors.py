"""A line of a .jsonl file that cannot be read is named by its file and the line an
editor shows, whichever command reads it (score and rank skip it, the others stop)."""

import pytest

#: Line 1 holds an object that no command accepts, line 2 is blank, line 3 is not JSON.
LINES = b'{"note": 1}\n\n{oops\n'
BAD_LINE = "line 3: invalid JSON (Expecting property name enclosed in double quotes, column 2)"


@pytest.mark.parametrize(
    "args,prefix",
    [
        (["score"], "skipped "),
        (["rank"], "skipped "),
        (["eval"], "error: "),
        (["shots", "validate"], "error: shots pool "),
        (["shots", "list", "--shots-pool"], "error: shots pool "),
    ],
    ids=["score", "rank", "eval", "shots-validate", "shots-list"],
)
def test_an_unreadable_jsonl_line_names_the_file_and_its_line(run_cli, tmp_path, args, prefix):
    src = tmp_path / "batch.jsonl"
    src.write_bytes(LINES)
    proc = run_cli(*args, src)
    assert proc.returncode == 2, proc.stderr
    assert f"{prefix}{src}: {BAD_LINE}" in proc.stderr.splitlines(), proc.stderr
    assert "Traceback" not in proc.stderr


def test_rank_names_a_bad_item_by_its_line_not_its_position(run_cli, tmp_path):
    src = tmp_path / "items.jsonl"
    src.write_bytes(b'\n{"prompt": "p", "responses": ["a", "b"]}\n{"prompt": "p"}\n')
    proc = run_cli("rank", src, "--num-shots", "0", "--max-tokens", "15")
    assert proc.returncode == 2, proc.stderr
    assert "skipped line 3: missing 'responses'" in proc.stderr.splitlines(), proc.stderr
    assert '{"id": "line 3", "error": "line 3: missing \'responses\'"}' in proc.stdout
    assert '"id": "line 2", "ranking"' in proc.stdout
