"""Input files: every entry named by its line, empty files, --limit, mode detection."""

import json

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.judging.examples import load_examples, screen_examples

USER = {"role": "user", "content": "Hi"}
PAIR = {
    "conversation_A": [USER, {"role": "assistant", "content": "Hello!"}],
    "conversation_B": [USER, {"role": "assistant", "content": "Go away."}],
}


def write_lines(path, lines):
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


def test_jsonl_errors_name_the_line_and_the_id_after_skipped_lines(tmp_path):
    src = write_lines(
        tmp_path / "b.jsonl",
        [
            json.dumps(PAIR),
            "",
            "{oops",
            "[1, 2]",
            json.dumps({"id": "x", **PAIR, "conversation_B": []}),
        ],
    )
    ((judge, valid),), problems = screen_examples(load_examples(src), None)
    assert judge.name == "pairwise"
    assert [e["id"] for e in valid] == ["line 1"]
    messages = dict(problems)
    assert messages["line 3"].startswith(f"{src}: line 3: invalid JSON")
    assert messages["line 4"].startswith("line 4: expected an example object, got list")
    assert messages["x"].startswith("line 5 (id x): conversation_B:")


def test_a_non_utf8_line_is_one_error_and_the_others_load(tmp_path):
    src = write_lines(tmp_path / "b.jsonl", [json.dumps(PAIR), b'{"id": "\xff"}', json.dumps(PAIR)])
    loaded = load_examples(src)
    assert len(loaded.entries) == 2
    assert loaded.errors == [("line 2", f"{src}: line 2: not UTF-8 text")]


@pytest.mark.parametrize("name,text", [("e.jsonl", ""), ("blank.jsonl", "\n\n"), ("e.json", "[]")])
def test_a_file_without_examples_says_so(tmp_path, name, text):
    src = tmp_path / name
    src.write_text(text)
    with pytest.raises(InputError, match="no examples to judge"):
        load_examples(src)


def test_limit_stops_reading_a_jsonl_file(tmp_path):
    src = write_lines(tmp_path / "b.jsonl", [json.dumps(PAIR)] * 3 + ["{broken"])
    loaded = load_examples(src, limit=2)
    assert len(loaded.entries) == 2 and loaded.errors == []
    listed = tmp_path / "b.json"
    listed.write_text(json.dumps([PAIR] * 5))
    assert [e.id for e in load_examples(listed, limit=3).entries] == ["0", "1", "2"]


def test_both_conversation_forms_is_rejected_before_detection(tmp_path):
    both = {"conversation": PAIR["conversation_A"], **PAIR}
    individual = {"conversation": PAIR["conversation_A"]}
    src = tmp_path / "b.json"
    src.write_text(json.dumps([both, individual]))
    ((judge, valid),), problems = screen_examples(load_examples(src), None)
    assert judge.name == "individual" and [e["id"] for e in valid] == ["1"]
    assert problems == [
        (
            "0",
            "example 0: has both 'conversation' and 'conversation_A'/'conversation_B'; "
            "keep one form (individual or pairwise)",
        )
    ]


def test_lone_surrogates_are_rejected_in_content_and_ids(tmp_path):
    bad_turn = {"role": "assistant", "content": "ok \ud800"}
    src = tmp_path / "b.jsonl"
    src.write_text(
        json.dumps({"conversation": [USER, bad_turn]})
        + "\n"
        + json.dumps({"id": "a\udfff", "conversation": PAIR["conversation_A"]})
        + "\n"
    )
    groups, problems = screen_examples(load_examples(src), None)
    assert groups == []
    messages = dict(problems)
    assert messages["line 1"] == (
        "line 1: conversation: turn 1 content: contains a lone surrogate '\\ud800' at character 3"
    )
    assert messages["a\\udfff"] == (
        "line 2 (id a\\udfff): id: contains a lone surrogate '\\udfff' at character 1"
    )
