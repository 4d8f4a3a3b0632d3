"""Result store (append, resume, config check) and the verdict cache key."""

import json

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.cache import VerdictCache, cache_key
from icrm_sgl.evaluation.store import ResultStore

CONFIG = {"engine": "local", "seed": 42, "orders": "both"}


def test_append_then_resume_skips_done_and_repairs_a_cut_line(tmp_path):
    store = ResultStore(tmp_path)
    assert store.open(CONFIG, resume=False, overwrite=False) == set()
    store.append({"id": "a", "margin": 1})
    store.append({"id": "b", "margin": -1})
    store.close()
    with store.results_path.open("a") as f:
        f.write('{"id": "c", "mar')  # killed mid-write
    again = ResultStore(tmp_path)
    assert again.open(CONFIG, resume=True, overwrite=False) == {"a", "b"}
    again.append({"id": "c", "margin": 0})
    again.close()
    lines = again.results_path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b", "c"]


def test_resume_refuses_a_different_configuration(tmp_path):
    store = ResultStore(tmp_path)
    store.open(CONFIG, resume=False, overwrite=False)
    store.append({"id": "a"})
    store.close()
    with pytest.raises(InputError, match=r"different configuration \(changed: seed\)"):
        ResultStore(tmp_path).open({**CONFIG, "seed": 1}, resume=True, overwrite=False)


def test_existing_results_need_resume_or_overwrite(tmp_path):
    store = ResultStore(tmp_path)
    store.open(CONFIG, resume=False, overwrite=False)
    store.append({"id": "a"})
    store.close()
    with pytest.raises(InputError, match="--resume"):
        ResultStore(tmp_path).open(CONFIG, resume=False, overwrite=False)
    fresh = ResultStore(tmp_path)
    assert fresh.open(CONFIG, resume=False, overwrite=True) == set()
    fresh.close()
    assert fresh.records() == []


EXAMPLE = {"conversation_A": [{"role": "user", "content": "q"}], "conversation_B": []}


@pytest.mark.parametrize(
    "change",
    [
        {"engine": "sglang"},
        {"model": "other.gguf"},
        {"program_version": "2"},
        {"prompt_sha256": "beef"},
        {"shots": ["x"]},
        {"sampling": {"temperature": 0.7}},
        {"seed": 7},
    ],
)
def test_cache_key_covers_everything_that_changes_an_answer(change):
    base = {
        "engine": "local",
        "model": "m",
        "program_version": "1",
        "prompt_sha256": "ab",
        "shots": ["s1"],
        "sampling": {"temperature": 0.0},
        "seed": 42,
    }
    assert cache_key(base, EXAMPLE) == cache_key(dict(base), dict(EXAMPLE))
    assert cache_key({**base, **change}, EXAMPLE) != cache_key(base, EXAMPLE)
    swapped = {
        "conversation_A": EXAMPLE["conversation_B"],
        "conversation_B": EXAMPLE["conversation_A"],
    }
    assert cache_key(base, swapped) != cache_key(base, EXAMPLE)


def test_verdict_cache_round_trip(tmp_path):
    verdict = {
        "intent": "i",
        "checklist": "c",
        "strengths": "s",
        "weaknesses": "w",
        "score": 7,
    }
    cache = VerdictCache(tmp_path)
    assert cache.get("k", "individual") is None
    cache.put("k", verdict)
    cache.close()
    assert VerdictCache(tmp_path).get("k", "individual") == verdict
