import json

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.judges import builtin_judge, default_judge
from icrm_sgl.judges.inputs import render_history
from icrm_sgl.judges.template import KNOWN_KEYS, Slot, Template

CONV = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]


def test_template_splits_once_and_never_rescans_user_text():
    t = Template.parse(
        "A {$user_query} B {$model_output}",
        name="t",
        allowed=KNOWN_KEYS,
        required=frozenset({"user_query"}),
    )
    assert t.segments == ("A ", Slot("user_query"), " B ", Slot("model_output"))
    out = t.render({"user_query": "{$model_output}", "model_output": "{$shots}"})
    assert out == "A {$model_output} B {$shots}"


def test_template_unknown_and_missing_keys_are_errors():
    with pytest.raises(InputError, match=r"unknown placeholder\(s\) \{\$bogus\}"):
        Template.parse("{$bogus}", name="t", allowed=KNOWN_KEYS, required=frozenset())
    with pytest.raises(InputError, match=r"missing placeholder\(s\) \{\$feedback\}"):
        Template.parse("x", name="t", allowed=KNOWN_KEYS, required=frozenset({"feedback"}))


def test_fill_keeps_a_constant_prefix_before_the_first_argument():
    judge = default_judge("pairwise")
    shots = list(judge.shots_pool)[:2]
    filled = judge.prompt(shots)
    prefix = filled.segments[0]
    assert isinstance(prefix, str) and isinstance(filled.segments[1], Slot)
    assert "## Example 1" in prefix and "## Example 2" in prefix
    assert judge.render_feedback(shots[1]["feedback"]) in prefix
    assert prefix.rstrip().endswith("### Earlier conversation")


def test_feedback_is_one_json_line_in_public_order():
    fb = {"score": 3, "weaknesses": "w\n", "strengths": "s", "checklist": "c", "intent": "ü"}
    line = default_judge("individual").render_feedback(fb)
    assert "\n" not in line
    assert list(json.loads(line)) == ["intent", "checklist", "strengths", "weaknesses", "score"]
    assert line.startswith('{"intent": "ü", "checklist": "')
    assert line.endswith('"score": 3}')


def test_history_rendering():
    assert render_history([]) == "(none)"
    history = [{"role": "system", "content": "s"}, *CONV]
    assert render_history(history) == "System: s\nUser: q\nAssistant: r"


def test_custom_template_files_load_and_validate(tmp_path):
    good = tmp_path / "t.template"
    good.write_text("Judge.\n{$shots}Q: {$user_query}\nR: {$model_output}\nVerdict:\n")
    shot = tmp_path / "s.template"
    shot.write_text("Q: {$user_query}\nR: {$model_output}\nVerdict: {$feedback}\n\n")
    judge = builtin_judge("individual", good, shot)
    text = judge.prompt(list(judge.shots_pool)[:1]).render(
        {"history": "(none)", "user_query": "uq", "model_output": "mo"}
    )
    assert text.startswith("Judge.\nQ: ") and text.endswith("Q: uq\nR: mo\nVerdict:\n")
    bad = tmp_path / "bad.template"
    bad.write_text("{$shots} {$candidate_A}")
    with pytest.raises(InputError, match="candidate_A"):
        builtin_judge("individual", bad, shot)
