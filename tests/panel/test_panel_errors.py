"""A bad panel file, or --panel beside a judge's own flags: one line naming the file and
the member, exit 2, before any engine loads (each run takes well under a second)."""

from __future__ import annotations

import pytest

from icrm_sgl.errors import InputError
from tests.conftest import EXAMPLES

PAIRS = EXAMPLES / "pairs.jsonl"
RUBRIC = (EXAMPLES / "judges" / "multiturn_pairwise.toml").resolve()


def _panel(tmp_path, text):
    path = tmp_path / "panel.toml"
    path.write_text(text)
    return path


def _rubrics_reading_replies_differently(folder):
    """Two rubrics whose replies share names, one reading them as conversations, the
    other as text (a panel of both could read no example)."""
    rubric = RUBRIC.read_text().replace("conversation_A", "answer_A")
    rubric = rubric.replace("conversation_B", "answer_B")
    (folder / "conversations.toml").write_text(rubric)
    (folder / "texts.toml").write_text(rubric.replace('= "conversation"', '= "text"'))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[members]]\njudge = "pairwise"\nengine = "nope"', "member 1: unknown engine 'nope'"),
        ('[[members]]\njudge = "pairwise"\n[[members]]\njudge = "best"', "member 2: unknown judge"),
        ('[[members]]\njudge = "missing.toml"', "member 1: rubric"),
        ('[[members]]\njudge = "pairwise"\nweight = 0', "member 1: weight: 0.0 is not a finite"),
        ('[[members]]\njudge = "pairwise"\nweight = -1', "member 1: weight: -1.0 is not a finite"),
        ('[[members]]\njudge = "pairwise"\nweight = inf', "member 1: weight: inf is not a finite"),
        ('[[members]]\njudge = "pairwise"\nweight = nan', "member 1: weight: nan is not a finite"),
        ('[[members]]\njudge = "pairwise"\nweight = "2"', "member 1: weight: Input should be"),
        ('combine = "mean"', "the panel has no members"),
        ('combine = "median"\n[[members]]\njudge = "pairwise"', "combine: Input should be"),
        ('[[members]]\njudge = "pairwise"\ncolour = 1', "member 1: colour: unknown key"),
        (
            '[[members]]\njudge = "pairwise"\n[[members]]\njudge = "individual"',
            "member 2 (individual on local) judges one reply but member 1 (pairwise on local) "
            "judges two replies",
        ),
        (
            '[[members]]\njudge = "pairwise"\noptions = { num_shots = 2 }',
            "member 1: -E num_shots: a judging setting, not an engine option",
        ),
        ('[[members]]\njudge = "."', "member 1: unknown judge '.': expected one of"),
        ('[[members]]\njudge = "/dev/zero"', "member 1: unknown judge '/dev/zero'"),
        ('[[members]]\njudge = "panel.toml"', "member 1: judge 'panel.toml' is this panel file"),
        ("members = [1]", "member 1: expected a table ([[members]])"),
        (
            '[[members]]\njudge = "conversations.toml"\n[[members]]\njudge = "texts.toml"',
            "member 2 (multiturn_pairwise on local) reads 'answer_A' differently from member 1",
        ),
    ],
)
def test_a_bad_panel_is_one_line_naming_the_file_and_member(run_cli, tmp_path, text, expected):
    _rubrics_reading_replies_differently(tmp_path)
    path = _panel(tmp_path, text)
    result = run_cli("score", PAIRS, "--panel", path, "-o", tmp_path / "out.jsonl")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"panel {path}" in line and expected in line, line
    assert "loading" not in result.stderr  # refused before any engine loads
    assert not (tmp_path / "out.jsonl").exists()


def test_a_member_rubric_path_is_relative_to_the_panel_file(tmp_path):
    from icrm_sgl import load_panel

    (tmp_path / "rubrics").mkdir()
    (tmp_path / "rubrics" / "mt.toml").write_text(RUBRIC.read_text())
    spec = load_panel(_panel(tmp_path, '[[members]]\njudge = "rubrics/mt.toml"\nweight = 2'))
    (member,) = spec.members
    assert member.judge.name == "multiturn_pairwise" and member.weight == 2.0
    assert tmp_path / "rubrics" / "mt.toml" in spec.sources()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--judge", str(RUBRIC)], "--judge"),
        (["--rm-type", "pairwise"], "--rm-type"),
        (["--model", "m.gguf"], "--model"),
        (["-E", "n_ctx=4096"], "-E"),
        (["--engine", "openai"], "--engine"),
    ],
)
@pytest.mark.parametrize("command", ["score", "rank", "serve"])
def test_panel_beside_a_judges_own_flags_is_refused_in_one_line(
    run_cli, tmp_path, command, flags, named
):
    path = _panel(tmp_path, '[[members]]\njudge = "pairwise"')
    source = [] if command == "serve" else [PAIRS]
    result = run_cli(command, *source, "--panel", path, *flags)
    assert result.returncode == 2
    assert f"drop {named}" in result.stderr and "Traceback" not in result.stderr


def test_a_members_options_take_launch_settings_and_panel_takes_only_shared_settings(tmp_path):
    """``options`` holds what ``-E`` takes, launch settings included; ``Panel`` refuses a
    keyword that is not a judging or cache setting instead of dropping it (no engine loads)."""
    from icrm_sgl import Panel, load_panel

    text = '[[members]]\njudge = "pairwise"\noptions = { num_workers = 2, n_ctx = 1024 }'
    (member,) = load_panel(_panel(tmp_path, text)).members
    assert (member.engine.num_workers, member.engine.options) == (2, {"n_ctx": 1024})
    with pytest.raises(InputError, match="unknown setting 'num_shot'"):
        Panel(tmp_path / "panel.toml", num_shot=0)
    with pytest.raises(InputError, match="template_path is each member's"):
        Panel(tmp_path / "panel.toml", template_path="t.txt")


def test_require_all_without_a_panel_is_refused(run_cli):
    result = run_cli("score", PAIRS, "--require-all")
    assert result.returncode == 2 and "--require-all is for --panel" in result.stderr
