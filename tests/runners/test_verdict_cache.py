"""The one verdict cache: every command finds what another stored, every command refuses a
bad entry the same way, and a hit carries the meta of the verdict it stored."""

from __future__ import annotations

import json
import sqlite3

import pytest

from icrm_sgl import ICRM
from tests.conftest import EXAMPLES

USER = {"role": "user", "content": "What is 3 + 4?"}
GEN = ["--num-shots", "0", "--max-tokens", "15"]


def pairs_file(tmp_path):
    """Two labelled pairs, chosen shown as A: a valid input for both score and eval."""
    records = [
        {
            "id": f"p{i}",
            "label": "A",
            "conversation_A": [USER, {"role": "assistant", "content": good}],
            "conversation_B": [USER, {"role": "assistant", "content": bad}],
        }
        for i, (good, bad) in enumerate([("7", "8"), ("Seven.", "Twelve.")])
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def score(run_cli, src, tmp_path, *extra):
    out = tmp_path / "scored.jsonl"
    args = ["score", src, "--rm-type", "pairwise", "-o", out, *GEN, *extra]
    result = run_cli(*args, "--use-cache", "--cache-dir", tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in out.read_text().splitlines()], result.stderr


def evaluate(run_cli, src, tmp_path, name, *extra):
    out = tmp_path / name
    args = ["eval", src, "--orders", "ab", "--output-dir", out, *GEN, *extra]
    result = run_cli(*args, "--use-cache", "--cache-dir", tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    lines = (out / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines], result.stderr


def test_score_then_eval_hits_the_cache(run_cli, tmp_path):
    src = pairs_file(tmp_path)
    scored, _ = score(run_cli, src, tmp_path)
    assert not any(r["meta"].get("from_cache") for r in scored)
    evaluated, _ = evaluate(run_cli, src, tmp_path, "run")
    assert [r["meta"]["cache_hits"] for r in evaluated] == [1, 1]
    assert [r["judgements"][0]["choice"] for r in evaluated] == [
        r["verdict"]["choice"] for r in scored
    ]


def test_eval_then_score_hits_the_cache(run_cli, tmp_path):
    src = pairs_file(tmp_path)
    evaluated, _ = evaluate(run_cli, src, tmp_path, "run")
    assert [r["meta"]["cache_hits"] for r in evaluated] == [0, 0]
    scored, _ = score(run_cli, src, tmp_path)
    assert all(r["meta"]["from_cache"] for r in scored)
    assert [r["verdict"]["choice"] for r in scored] == [
        r["judgements"][0]["choice"] for r in evaluated
    ]


def spoil_every_entry(tmp_path):
    """Replace every stored verdict with one whose choice is out of range."""
    db = sqlite3.connect(tmp_path / "cache" / "verdicts.sqlite")
    rows = db.execute("SELECT key, entry FROM judgements").fetchall()
    for key, text in rows:
        entry = json.loads(text)
        verdict = entry["verdict"]
        bad = "ZZZ" if "choice" in verdict else 99
        entry["verdict"] = {**verdict, ("choice" if "choice" in verdict else "score"): bad}
        db.execute("UPDATE judgements SET entry = ? WHERE key = ?", (json.dumps(entry), key))
    db.commit()
    db.close()
    return len(rows)


def test_a_bad_entry_is_refused_the_same_way_by_score_eval_and_rank(run_cli, tmp_path):
    src = pairs_file(tmp_path)
    score(run_cli, src, tmp_path)
    note = "invalid entries ignored, judged again and replaced"

    assert spoil_every_entry(tmp_path) == 2
    scored, stderr = score(run_cli, src, tmp_path)
    assert f"2 {note}" in stderr
    assert not any(r["meta"].get("from_cache") for r in scored)

    assert spoil_every_entry(tmp_path) == 2
    evaluated, stderr = evaluate(run_cli, src, tmp_path, "run")
    assert f"2 {note}" in stderr
    assert [r["meta"]["cache_hits"] for r in evaluated] == [0, 0]
    assert all(r["judgements"][0]["error"] is None for r in evaluated)

    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"id": "r", "prompt": "2 + 2?", "responses": ["4", "5"]}) + "\n")
    rank = ["rank", items, *GEN, "--use-cache", "--cache-dir", tmp_path / "cache"]
    assert run_cli(*rank).returncode == 0
    assert spoil_every_entry(tmp_path) == 4  # the two pairs and the two ranked replies
    again = run_cli(*rank)
    assert again.returncode == 0, again.stderr
    assert f"2 {note}" in again.stderr


def test_a_hit_keeps_the_meta_so_the_readme_loop_works(local_backend, tmp_path):
    """The README's loop reads ``meta["seconds"]``; a cached result has it (issue 21)."""
    example = json.loads((EXAMPLES / "test_individual.json").read_text())
    options = {"num_shots": 1, "use_cache": True, "cache_dir": str(tmp_path / "cache")}
    other = json.loads(json.dumps(example))
    other["conversation"][-1]["content"] += " Anything else?"
    runs = []
    for _ in range(2):
        with ICRM(backend=local_backend, **options) as model:
            runs.append(list(model.judge_batch([example, other | {"id": "x"}], max_tokens=15)))
            for result in runs[-1]:
                print(result.id, result.verdict or result.error, result.meta["seconds"])
    fresh, cached = runs
    for first, again in zip(fresh, cached, strict=True):
        assert "from_cache" not in first.meta and again.meta["from_cache"] is True
        assert again.meta == {**first.meta, "from_cache": True}
        assert again.verdict == first.verdict
    keys = {"engine", "model", "program_version", "seconds", "probabilities", "expected_score"}
    assert keys <= set(cached[0].meta)


@pytest.mark.parametrize("change", [{"num_shots": 0}, {"num_shots": 2}, {"seed": 7}])
def test_the_key_covers_the_judging_identity(local_backend, change):
    a = [USER, {"role": "assistant", "content": "7"}]
    b = [USER, {"role": "assistant", "content": "8"}]
    example = {"conversation_A": a, "conversation_B": b}
    base = {"rm_type": "pairwise", "num_shots": 1, "seed": 42}
    key = ICRM(backend=local_backend, **base).cache_key(example, max_tokens=15)
    model = ICRM(backend=local_backend, **base)
    assert model.cache_key(example, max_tokens=15) == key
    assert model.cache_key(example, max_tokens=20) != key  # 4 tokens a field, not 3
    assert model.cache_key(example, max_tokens=15, temperature=0.5) != key
    assert model.cache_key({"conversation_A": b, "conversation_B": a}, max_tokens=15) != key
    other = ICRM(backend=local_backend, **{**base, **change})
    assert other.cache_key(example, max_tokens=15) != key


def test_serve_answers_from_the_cache_and_refuses_a_bad_entry_alike(local_backend, tmp_path):
    """``/v1/judge`` finds what the Python API stored, and re-judges a spoiled entry."""
    from fastapi.testclient import TestClient

    from icrm_sgl.serve.app import create_app
    from icrm_sgl.serve.config import ServeConfig
    from icrm_sgl.serve.judges import Judges

    example = json.loads((EXAMPLES / "test_individual.json").read_text())
    options = {"num_shots": 1, "use_cache": True, "cache_dir": str(tmp_path / "cache")}
    with ICRM(backend=local_backend, **options) as model:
        (stored,) = model.judge_batch([example], max_tokens=15)
    config = ServeConfig(gen={"max_tokens": 15})

    def ask() -> dict:
        judges = lambda: Judges.open(("individual",), backend=local_backend, **options)  # noqa: E731
        with TestClient(create_app(config, judges)) as client:
            reply = client.post("/v1/judge", json=example)
        assert reply.status_code == 200, reply.text
        return reply.json()

    hit = ask()
    assert hit["meta"]["from_cache"] is True and hit["verdict"] == stored.verdict
    assert hit["meta"]["seconds"] == stored.meta["seconds"]
    assert spoil_every_entry(tmp_path) == 1
    fresh = ask()
    assert "from_cache" not in fresh["meta"]
    assert fresh["verdict"]["score"] in range(1, 11)
