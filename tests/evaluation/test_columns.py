"""Preference files with their own field names (``--columns``), annotator majorities, ties."""

from __future__ import annotations

import json

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.columns import majority_label, parse_columns
from icrm_sgl.evaluation.loaders import load_pairs
from icrm_sgl.evaluation.metrics import compute_metrics

COLUMNS = "prompt=instruction,input=context,a=response_1,b=response_2,label=votes,id=uid"

#: Three annotators per pair; the majority decides, a draw is a tie.
RECORDS = [
    {
        "uid": "q1",
        "instruction": "Add the numbers.",
        "context": "2 and 3",
        "response_1": "5",
        "response_2": "6",
        "votes": [1, 1, 2],
    },  # A
    {
        "uid": "q2",
        "instruction": "Capital of Italy?",
        "context": "",
        "response_1": "Milan",
        "response_2": "Rome",
        "votes": ["B", "B", "tie"],
    },  # B
    {
        "uid": "q3",
        "instruction": "Say hi.",
        "context": None,
        "response_1": "Hi!",
        "response_2": "Hello!",
        "votes": [1, 2, 0],
    },  # draw: tie
    {
        "uid": "q4",
        "instruction": "Greet me.",
        "context": "politely",
        "response_1": "Good day.",
        "response_2": "Hello there.",
        "votes": [0, 0, 2],
    },  # tie
]


def write(path, records=RECORDS):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([1, 1, 2], "A"),
        (["B", "B", "tie"], "B"),
        ([1, 2, 0], "tie"),
        ([0, 0, 1], "tie"),
        ([1, 2], "tie"),
        (2, "B"),
        ("A", "A"),
        (0, "tie"),
    ],
)
def test_majority_label(labels, expected):
    assert majority_label(labels, "r") == expected


@pytest.mark.parametrize("bad", [3, "C", True, [], [1, "x"]])
def test_bad_labels_are_named(bad):
    with pytest.raises(InputError, match=r"^r: "):
        majority_label(bad, "r")


def test_parse_columns_text_and_errors():
    cmap = parse_columns(COLUMNS)
    assert (cmap.prompt, cmap.input, cmap.a, cmap.b, cmap.label) == (
        "instruction",
        "context",
        "response_1",
        "response_2",
        "votes",
    )
    assert parse_columns({"prompt": "p", "a": "x", "b": "y", "label": "l"}).input is None
    with pytest.raises(InputError, match="label: Field required"):
        parse_columns("prompt=p,a=x,b=y")
    with pytest.raises(InputError, match="extra: Extra inputs"):
        parse_columns("prompt=p,a=x,b=y,label=l,extra=z")
    with pytest.raises(InputError, match="expected NAME=FIELD"):
        parse_columns("prompt")


def test_load_with_columns_majority_and_ties(tmp_path):
    pairs = load_pairs(str(write(tmp_path / "prefs.jsonl")), columns=COLUMNS)
    assert [(p.id, p.tie) for p in pairs] == [
        ("q1", False),
        ("q2", False),
        ("q3", True),
        ("q4", True),
    ]
    # the instruction and its input are joined into the user turn
    assert pairs[0].chosen[0]["content"] == "Add the numbers.\n\n2 and 3"
    assert pairs[0].chosen[1]["content"] == "5"
    assert pairs[1].chosen[1]["content"] == "Rome" and pairs[1].chosen[0]["content"] == (
        "Capital of Italy?"
    )
    assert pairs[3].chosen[1]["content"] == "Good day."  # a tie keeps the file's order


def test_columns_errors_name_the_record(tmp_path):
    bad = [{**RECORDS[0], "votes": [1, 5]}]
    with pytest.raises(InputError, match=r"line 1 \(id 'q1'\): label must be"):
        load_pairs(str(write(tmp_path / "a.jsonl", bad)), columns=COLUMNS)
    missing = [{k: v for k, v in RECORDS[0].items() if k != "response_2"}]
    with pytest.raises(InputError, match="missing field 'response_2'"):
        load_pairs(str(write(tmp_path / "b.jsonl", missing)), columns=COLUMNS)
    with pytest.raises(InputError, match="not both"):
        load_pairs(str(write(tmp_path / "c.jsonl")), fmt="pairs", columns=COLUMNS)


def test_load_parquet_with_columns(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    # a parquet column has one type: the votes as text ("1", "B", "tie", ...)
    rows = [
        {**r, "context": r["context"] or "", "votes": [str(v) for v in r["votes"]]} for r in RECORDS
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "prefs.parquet")
    pairs = load_pairs(str(tmp_path / "prefs.parquet"), columns=COLUMNS)
    assert [p.tie for p in pairs] == [False, False, True, True]


def test_tie_labels_are_scored_as_ties():
    def record(rid, choices, label=None):
        judgements = [
            {"order": o, "choice": c, "error": None}
            for o, c in zip(("chosen_first", "rejected_first"), choices, strict=True)
        ]
        out = {"id": rid, "subset": "s", "mode": "pairwise", "judgements": judgements}
        return {**out, "label": label} if label else out

    m = compute_metrics(
        [
            record("t1", ["A=B", "A=B"], "tie"),  # margin 0: right
            record("t2", ["A+", "A=B"], "tie"),  # margin 0.5: within half a step, right
            record("t3", ["A++", "B+"], "tie"),  # margin 1.5: wrong
            record("d1", ["A+", "B+"]),  # an ordinary pair: right
        ]
    )
    overall = m["overall"]
    assert (overall["correct"], overall["tie_labels"], overall["n"]) == (3, 3, 4)
    assert m["calibration"]["n"] == 1  # tie labels have no side to be right about


def test_eval_with_columns_three_annotators_and_ties(tmp_path, run_cli):
    src = write(tmp_path / "prefs.jsonl")
    out = tmp_path / "out"
    proc = run_cli(
        "eval",
        src,
        "--columns",
        COLUMNS,
        "--output-dir",
        out,
        "--orders",
        "ab",
        "--num-shots",
        "0",
        "--max-tokens",
        "15",
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r.get("label") for r in records] == [None, None, "tie", "tie"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"]["tie_labels"] == 2 and metrics["n"] == 4


def test_eval_columns_bad_spec_is_one_line(tmp_path, run_cli):
    src = write(tmp_path / "prefs.jsonl")
    proc = run_cli("eval", src, "--columns", "prompt=x")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --columns:") and "Traceback" not in proc.stderr


def _three_columns(record):
    votes = record["votes"]
    rest = {k: v for k, v in record.items() if k != "votes"}
    return {**rest, **{f"annotator{i + 1}": v for i, v in enumerate(votes)}}


@pytest.mark.parametrize(
    "label",
    [
        "label=annotator1+annotator2+annotator3",
        "label=annotator1,label=annotator2,label=annotator3",
    ],
)
def test_several_label_columns_are_decided_by_majority(tmp_path, label):
    """PandaLM-style files keep each annotator in a column of its own."""
    src = write(tmp_path / "pandalm.jsonl", [_three_columns(r) for r in RECORDS])
    spec = COLUMNS.replace("label=votes", label)
    by_id = {p.id: p for p in load_pairs(str(src), columns=spec)}
    from_lists = {p.id: p for p in load_pairs(str(write(tmp_path / "l.jsonl")), columns=COLUMNS)}
    assert {k: (p.tie, p.chosen) for k, p in by_id.items()} == {
        k: (p.tie, p.chosen) for k, p in from_lists.items()
    }


def test_a_missing_label_column_names_it(tmp_path):
    src = write(tmp_path / "p.jsonl", [_three_columns(RECORDS[0])])
    spec = COLUMNS.replace("label=votes", "label=annotator1+annotator4")
    with pytest.raises(InputError, match=r"line 1 \(id 'q1'\): missing field 'annotator4'"):
        load_pairs(str(src), columns=spec)


@pytest.mark.parametrize("votes", [[[1]], [1, [2]], {"a": 1}])
def test_a_nested_label_is_one_line_naming_the_record(tmp_path, votes):
    src = write(tmp_path / "p.jsonl", [{**RECORDS[0], "votes": votes}])
    with pytest.raises(InputError, match=r"line 1 \(id 'q1'\): label must be"):
        load_pairs(str(src), columns=COLUMNS)


def test_the_subset_is_named_after_the_file(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    pairs = load_pairs(str(write(folder / "pandalm_test.jsonl")), columns=COLUMNS)
    assert {p.subset for p in pairs} == {"pandalm_test"}
