"""Best-of-N sets in RewardBench 2's format: loading, scoring by hand, and an eval run."""

from __future__ import annotations

import json

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.loaders import detect_format, load_pairs
from icrm_sgl.evaluation.metrics import compute_metrics, format_table


def rb2(rid, subset, chosen, rejected, prompt="What is 2 + 2?"):
    return {
        "id": rid,
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "num_correct": len(chosen),
        "num_incorrect": len(rejected),
        "total_completions": len(chosen) + len(rejected),
        "models": ["m"] * (len(chosen) + len(rejected)),
        "subset": subset,
    }


RECORDS = [
    rb2("m1", "Math", ["4"], ["5", "22", "four hundred"]),
    rb2("f1", "Factuality", ["Paris"], ["Lyon", "Nice", "Rome"], "Capital of France?"),
]


def test_detects_and_expands_best_of_four(tmp_path):
    assert detect_format(RECORDS) == "rewardbench2"
    path = tmp_path / "rb2.json"
    path.write_text(json.dumps(RECORDS))
    pairs = load_pairs(str(path))
    assert [p.id for p in pairs] == ["m1/0", "m1/1", "m1/2", "f1/0", "f1/1", "f1/2"]
    assert {p.group for p in pairs} == {"m1", "f1"}
    assert all(p.chosen[1]["content"] == "4" for p in pairs[:3])
    assert [p.rejected[1]["content"] for p in pairs[:3]] == ["5", "22", "four hundred"]


def test_bad_best_of_n_record_is_named(tmp_path):
    path = tmp_path / "rb2.json"
    path.write_text(json.dumps([rb2("x", "Math", ["4"], [])]))
    with pytest.raises(InputError, match=r"record 0 \(id 'x'\): 'rejected' must be a non-empty"):
        load_pairs(str(path))


def record(pid, group, subset, choices):
    judgements = [
        {"order": o, "choice": c, "error": None}
        for o, c in zip(("chosen_first", "rejected_first"), choices, strict=True)
    ]
    return {
        "id": pid,
        "subset": subset,
        "mode": "pairwise",
        "judgements": judgements,
        "group": group,
    }


def test_a_prompt_is_right_only_when_the_chosen_beats_every_rejected():
    records = [
        # m1: chosen wins all three pairs -> right
        record("m1/0", "m1", "Math", ["A+", "B+"]),
        record("m1/1", "m1", "Math", ["A++", "B++"]),
        record("m1/2", "m1", "Math", ["A+", "B++"]),
        # f1: wins two, ties one (A+ then A+: margin 0) -> wrong
        record("f1/0", "f1", "Factuality", ["A+", "B+"]),
        record("f1/1", "f1", "Factuality", ["A+", "A+"]),
        record("f1/2", "f1", "Factuality", ["A++", "B+"]),
    ]
    m = compute_metrics(records)
    bon = m["reconciliations"]["choice"]["best_of_n"]
    assert bon["overall"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert bon["per_subset"]["Math"]["accuracy"] == 1.0
    assert bon["per_subset"]["Factuality"]["accuracy"] == 0.0
    assert m["overall"]["correct"] == 5  # pair-level accuracy is still reported
    assert "best-of-N prompts" in format_table(m)


def test_eval_a_best_of_four_file(tmp_path, run_cli):
    path = tmp_path / "rb2.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS[:1]) + "\n")
    out = tmp_path / "out"
    proc = run_cli(
        "eval", path, "--output-dir", out, "--orders", "ab", "--num-shots", "0", "--max-tokens", 15
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 3 and metrics["best_of_n"]["overall"]["n"] == 1
    assert "best-of-N prompts" in proc.stdout
