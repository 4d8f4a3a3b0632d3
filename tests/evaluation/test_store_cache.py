"""Result store (append, resume, config check) and the verdict cache key."""

import json

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.store import ResultStore
from icrm_sgl.judges import default_judge
from icrm_sgl.plumbing.judgement import Judgement
from icrm_sgl.runners import VerdictCache, cache_key

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


FIELDS = {"history": "", "user_query": "q", "candidate_A": "a", "candidate_B": "b"}


def test_cache_key_covers_the_identity_and_the_fields_as_shown():
    identity = json.dumps({"engine": "local", "seed": 42})
    assert cache_key(identity, FIELDS) == cache_key(str(identity), dict(FIELDS))
    assert cache_key(identity + " ", FIELDS) != cache_key(identity, FIELDS)
    swapped = {**FIELDS, "candidate_A": "b", "candidate_B": "a"}
    assert cache_key(identity, swapped) != cache_key(identity, FIELDS)


def test_verdict_cache_round_trip_keeps_the_meta(tmp_path):

    verdict = {
        "intent": "i",
        "checklist": "c",
        "strengths": "s",
        "weaknesses": "w",
        "score": 7,
    }
    meta = {"engine": "local", "seconds": 1.25, "probabilities": {"7": 0.9}}

    def check(data):
        return default_judge("individual").validate(data).to_public()

    cache = VerdictCache(tmp_path)
    assert cache.get("k", check) is None
    cache.put("k", Judgement("x", verdict=verdict, meta=meta))
    cache.close()
    hit = VerdictCache(tmp_path).get("k", check)
    assert hit.verdict == verdict
    assert hit.meta == {**meta, "from_cache": True}
