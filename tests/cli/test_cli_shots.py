"""``icrm-sgl shots`` subcommands."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner

from icrm_sgl.cli import cli
from icrm_sgl.judges import default_judge
from icrm_sgl.judges.shots import builtin_pool_path, load_shots

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def test_validate_passes_on_both_builtin_pools():
    for rm_type in ("individual", "pairwise"):
        result = invoke("shots", "validate", str(builtin_pool_path(rm_type)))
        assert result.exit_code == 0, result.output
        assert f"valid {rm_type} shots, 0 problems" in result.output


def test_validate_reports_one_line_per_problem(tmp_path):
    good = load_shots(default_judge("individual"))[0]
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
    assert len(rows) == len(load_shots(default_judge("individual")))
    assert all(int(row[-1]) > 50 for row in rows)
    shown = invoke("shots", "show", "pair-chat-01")
    assert shown.exit_code == 0 and '"id": "pair-chat-01"' in shown.output
    assert "## Example 1" in shown.output
    sampled = invoke("shots", "sample", "--n", "2", "--mode", "balanced", "--seed", "3")
    assert sampled.exit_code == 0
    lines = sampled.output.splitlines()
    assert lines[0] == "# pairwise: 28 shots from the built-in pool"  # the pool it used
    assert len(lines) == 4 and lines[-1].startswith("prefix: ")
    assert int(lines[-1].split()[1]) > 300


def test_sample_names_the_pool_it_used(tmp_path):
    individual = invoke("shots", "sample", "--n", "1", "--rm-type", "individual")
    assert individual.output.startswith("# individual: 28 shots from the built-in pool\n")
    pool = tmp_path / "mine.json"
    pool.write_text(json.dumps(load_shots(default_judge("individual"))[:2]))
    detected = invoke("shots", "sample", "--n", "1", "--shots-pool", str(pool))
    assert detected.exit_code == 0, detected.output
    assert detected.output.startswith(f"# individual: 2 shots from {pool}\n")


def test_a_rubric_pool_is_checked_and_sampled_with_its_judge():
    rubric = str(EXAMPLES / "judges" / "helpful_harmless.toml")
    pool = str(EXAMPLES / "judges" / "helpful_harmless_shots.json")
    checked = invoke("shots", "validate", pool, "--judge", rubric)
    assert checked.exit_code == 0, checked.output
    assert "2 valid helpful_harmless shots, 0 problems" in checked.output
    unchecked = invoke("shots", "validate", pool)  # its keys look individual; its fields are not
    assert unchecked.exit_code == 2
    assert "--judge" in unchecked.output.splitlines()[-1]
    listed = invoke("shots", "list", "--judge", rubric)
    assert listed.exit_code == 0, listed.output
    rows = [line.split() for line in listed.output.splitlines()[2:]]
    assert {row[0] for row in rows} == {"hh-capital", "hh-lock"}
    assert {row[2] for row in rows} == {"2", "5"}  # the reward field, overall
    sampled = invoke("shots", "sample", "--n", "2", "--mode", "balanced", "--judge", rubric)
    assert sampled.exit_code == 0, sampled.output
    assert sampled.output.splitlines()[0].startswith("# helpful_harmless: 2 shots")


def test_a_missing_pool_file_is_one_line_and_exit_2(run_cli, tmp_path):
    missing = tmp_path / "nope.json"
    for args in (("validate", missing), ("list", "--shots-pool", missing)):
        result = run_cli("shots", *args)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            f"error: shots pool {missing}: cannot read (No such file or directory)"
        ]


def test_shots_commands_do_not_import_sglang():
    """``shots`` counts tokens with llama.cpp's tokenizer alone: sglang (and torch) would
    cost 15-20 s of imports on a busy machine. (icrm_sgl registers sglang's package
    unexecuted, plumbing/deferred_import.py: a module of it, its own ``__init__``'s
    included, would show here.)"""
    script = textwrap.dedent(
        """
        import sys
        from click.testing import CliRunner
        from icrm_sgl.cli import cli

        for args in (["shots", "--help"], ["shots", "validate", sys.argv[1]],
                     ["shots", "sample", "--n", "1"], ["shots", "list", "--rm-type", "pairwise"]):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 0, (args, result.output)
        sglang = {m for m in sys.modules if m.startswith("sglang.")}
        heavy = sorted(sglang | ({"torch", "openai", "anthropic"} & set(sys.modules)))
        print("heavy:", heavy)
        """
    )
    pool = str(builtin_pool_path("pairwise"))
    done = subprocess.run(
        [sys.executable, "-c", script, pool], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "heavy: []"
