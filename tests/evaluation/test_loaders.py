"""Loading labelled pairs from RewardBench, LLMBar and pairs files, and every error path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.loaders import FORMATS, LabelledPair, detect_format, load_pairs

RB_RECORDS = [
    {"id": 7, "prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Cat.", "subset": "s1"},
    {"id": 8, "prompt": "2+2?", "chosen": "4", "rejected": "5", "subset": "s2"},
]
LLMBAR_RECORDS = [
    {"input": "Say hi.", "output_1": "Hi!", "output_2": "Bye.", "label": 1},
    {"input": "Count to 2.", "output_1": "1, 3", "output_2": "1, 2", "label": 2},
]
CONV_A = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there."}]
CONV_B = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Go away."}]
PAIRS_RECORDS = [
    {"conversation_A": CONV_A, "conversation_B": CONV_B, "label": "A"},
    {"conversation_A": CONV_A, "conversation_B": CONV_B, "label": "B", "subset": "x", "id": "p"},
]


def write_json(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n", encoding="utf-8")
    return path


def turn(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


# ----------------------------------------------------------------------------- RewardBench


def test_rewardbench_json(tmp_path):
    pairs = load_pairs(str(write_json(tmp_path / "rb.json", RB_RECORDS)))
    assert pairs[0] == LabelledPair(
        id="7",
        subset="s1",
        chosen=[turn("user", "Name a colour."), turn("assistant", "Blue.")],
        rejected=[turn("user", "Name a colour."), turn("assistant", "Cat.")],
    )
    assert [p.id for p in pairs] == ["7", "8"]
    assert pairs[1].subset == "s2"


def test_rewardbench_jsonl(tmp_path):
    pairs = load_pairs(str(write_jsonl(tmp_path / "rb.jsonl", RB_RECORDS)))
    assert [(p.id, p.chosen[-1]["content"]) for p in pairs] == [("7", "Blue."), ("8", "4")]


def test_rewardbench_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "rb.parquet"
    pd.DataFrame(RB_RECORDS).to_parquet(path)
    pairs = load_pairs(str(path))
    assert [p.id for p in pairs] == ["7", "8"]
    assert pairs[1].rejected == [turn("user", "2+2?"), turn("assistant", "5")]


def test_rewardbench_missing_key_names_record(tmp_path):
    records = [RB_RECORDS[0], {k: v for k, v in RB_RECORDS[1].items() if k != "subset"}]
    path = write_json(tmp_path / "rb.json", records)
    with pytest.raises(InputError, match=r"rb\.json: record 1 \(id 8\): missing key\(s\) 'subset'"):
        load_pairs(str(path))


def test_rewardbench_invalid_conversation(tmp_path):
    path = write_json(tmp_path / "rb.json", [{**RB_RECORDS[0], "chosen": None}])
    with pytest.raises(InputError, match=r"record 0 \(id 7\).*turn 1 content"):
        load_pairs(str(path))


def test_duplicate_id(tmp_path):
    path = write_json(tmp_path / "rb.json", [RB_RECORDS[0], {**RB_RECORDS[1], "id": "7"}])
    with pytest.raises(InputError, match=r"duplicate id '7' \(records 0 and 1\)"):
        load_pairs(str(path))


# ----------------------------------------------------------------------------- LLMBar


def test_llmbar_file(tmp_path):
    pairs = load_pairs(str(write_json(tmp_path / "Natural" / "dataset.json", LLMBAR_RECORDS)))
    assert [(p.id, p.subset) for p in pairs] == [("Natural/0", "Natural"), ("Natural/1", "Natural")]
    assert pairs[0].chosen[-1]["content"] == "Hi!"  # label 1: output_1 wins
    assert pairs[0].rejected[-1]["content"] == "Bye."
    assert pairs[1].chosen[-1]["content"] == "1, 2"  # label 2: output_2 wins
    assert pairs[1].chosen[0] == turn("user", "Count to 2.")


def test_llmbar_nested_folder(tmp_path):
    root = tmp_path / "llmbar"
    write_json(root / "Natural" / "dataset.json", LLMBAR_RECORDS)
    write_json(root / "Processed" / "FairEval" / "dataset.json", LLMBAR_RECORDS[:1])
    (root / "Processed" / "notes.txt").write_text("ignored")
    pairs = load_pairs(str(root))
    assert [p.id for p in pairs] == ["Natural/0", "Natural/1", "Processed/FairEval/0"]
    assert {p.subset for p in pairs} == {"Natural", "Processed/FairEval"}


def test_llmbar_folder_with_file_directly_inside(tmp_path):
    root = tmp_path / "Adversarial"
    write_json(root / "dataset.json", LLMBAR_RECORDS[:1])
    pairs = load_pairs(str(root), fmt="llmbar")
    assert [(p.id, p.subset) for p in pairs] == [("Adversarial/0", "Adversarial")]


def test_llmbar_bad_label(tmp_path):
    path = write_json(tmp_path / "N" / "dataset.json", [{**LLMBAR_RECORDS[0], "label": 3}])
    with pytest.raises(InputError, match=r"dataset\.json: record 0: label must be 1 or 2, got 3"):
        load_pairs(str(path))


def test_llmbar_folder_without_datasets(tmp_path):
    with pytest.raises(InputError, match=r"no dataset\.json found"):
        load_pairs(str(tmp_path))


def test_folder_with_other_format_is_rejected(tmp_path):
    with pytest.raises(InputError, match="a folder is read as llmbar, not as pairs"):
        load_pairs(str(tmp_path), fmt="pairs")


# ----------------------------------------------------------------------------- pairs


def test_pairs_json_defaults_and_label(tmp_path):
    pairs = load_pairs(str(write_json(tmp_path / "p.json", PAIRS_RECORDS)))
    assert pairs[0] == LabelledPair(id="0", subset="default", chosen=CONV_A, rejected=CONV_B)
    assert pairs[1] == LabelledPair(id="p", subset="x", chosen=CONV_B, rejected=CONV_A)


def test_pairs_jsonl_with_history(tmp_path):
    history = [turn("system", "Be kind."), turn("user", "Hi"), turn("assistant", "Hello")]
    a = [*history, turn("user", "Help?"), turn("assistant", "Sure.")]
    b = [*history, turn("user", "Help?"), turn("assistant", "No.")]
    path = write_jsonl(
        tmp_path / "p.jsonl", [{"conversation_A": a, "conversation_B": b, "label": "B"}]
    )
    (pair,) = load_pairs(str(path))
    assert pair.chosen == b and pair.rejected == a


def test_pairs_bad_label(tmp_path):
    path = write_json(tmp_path / "p.json", [{**PAIRS_RECORDS[1], "label": "C"}])
    with pytest.raises(InputError, match=r"record 0 \(id 'p'\): label must be 'A' or 'B'"):
        load_pairs(str(path))


def test_pairs_missing_key(tmp_path):
    path = write_json(
        tmp_path / "p.json",
        [PAIRS_RECORDS[0], {"conversation_A": CONV_A, "label": "A", "conversation_C": CONV_B}],
    )
    with pytest.raises(InputError, match=r"p\.json: record 1: missing key\(s\) 'conversation_B'"):
        load_pairs(str(path), fmt="pairs")


def test_pairs_histories_must_match(tmp_path):
    other = [turn("user", "Goodbye"), turn("assistant", "Go away.")]
    path = write_json(
        tmp_path / "p.json", [{"conversation_A": CONV_A, "conversation_B": other, "label": "A"}]
    )
    with pytest.raises(InputError, match="record 0: conversations differ at turn 0"):
        load_pairs(str(path))


def test_pairs_duplicate_default_and_explicit_id(tmp_path):
    records = [PAIRS_RECORDS[0], {**PAIRS_RECORDS[0], "id": "0"}]
    with pytest.raises(InputError, match="duplicate id '0'"):
        load_pairs(str(write_json(tmp_path / "p.json", records)))


# ----------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("records", "expected"),
    [(RB_RECORDS, "rewardbench"), (LLMBAR_RECORDS, "llmbar"), (PAIRS_RECORDS, "pairs")],
)
def test_detect_format(records, expected):
    assert detect_format(records) == expected


def test_detect_unknown_format_lists_formats():
    with pytest.raises(InputError, match="unknown record format") as info:
        detect_format([{"question": "?", "answer": "!"}])
    message = str(info.value)
    assert all(fmt in message for fmt in FORMATS)
    assert "conversation_A" in message and "output_1" in message and "prompt" in message


def test_unknown_format_from_file(tmp_path):
    path = write_json(tmp_path / "x.json", [{"question": "?"}])
    with pytest.raises(InputError, match=r"x\.json: unknown record format"):
        load_pairs(str(path))


def test_format_override(tmp_path):
    # An llmbar file whose records also carry RewardBench-looking keys: fmt decides.
    records = [{**LLMBAR_RECORDS[0], "prompt": "p", "chosen": "c", "rejected": "r"}]
    path = write_json(tmp_path / "Mixed" / "dataset.json", records)
    assert detect_format(records) == "rewardbench"
    (pair,) = load_pairs(str(path), fmt="llmbar")
    assert pair.id == "Mixed/0" and pair.chosen[-1]["content"] == "Hi!"
    with pytest.raises(InputError, match="missing key"):
        load_pairs(str(write_json(tmp_path / "rb.json", RB_RECORDS)), fmt="pairs")


def test_unknown_fmt_argument(tmp_path):
    with pytest.raises(InputError, match="unknown format 'csv'"):
        load_pairs(str(write_json(tmp_path / "rb.json", RB_RECORDS)), fmt="csv")


def test_empty_and_non_list_files(tmp_path):
    with pytest.raises(InputError, match="no records"):
        load_pairs(str(write_json(tmp_path / "e.json", [])))
    with pytest.raises(InputError, match="expected a JSON list"):
        load_pairs(str(write_json(tmp_path / "d.json", {"a": 1})))  # type: ignore[arg-type]
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{oops\n')
    with pytest.raises(InputError, match=r"bad\.jsonl: line 2: invalid JSON"):
        load_pairs(str(tmp_path / "bad.jsonl"))


# ----------------------------------------------------------------------------- hub


def test_hub_failure_is_fast_and_clear(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        InputError,
        match=r"cannot load dataset 'nobody/no-such-set' .*HF_HUB_OFFLINE.*pass the file path",
    ):
        load_pairs("nobody/no-such-set")


def test_missing_file_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        load_pairs(str(tmp_path / "missing.json"))
