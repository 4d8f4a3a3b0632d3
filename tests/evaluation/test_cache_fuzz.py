"""A corrupt verdict cache: a bad entry is re-judged and replaced, a bad file is one line.

Cached verdicts pass the same validation as fresh ones; nothing invalid ever comes out.
The one cache serves every command, so these checks hold for score, eval, rank and serve.
"""

import json
import sqlite3

import pytest

from icrm_sgl import ICRM
from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.loaders import load_pairs
from icrm_sgl.evaluation.runner import Evaluator
from icrm_sgl.evaluation.store import ResultStore
from icrm_sgl.judges import default_judge
from icrm_sgl.plumbing.judgement import Judgement
from icrm_sgl.runners import VerdictCache
from tests.engines.standin import VALID

META = {"engine": "local", "seconds": 0.5}


def raw_put(cache, key, value):
    cache._db.execute("INSERT OR REPLACE INTO judgements VALUES (?, ?)", (key, value))
    cache._db.commit()


def check(data):
    return default_judge("pairwise").validate(data).to_public()


def entry(verdict, meta=META):
    return json.dumps({"verdict": verdict, "meta": meta})


@pytest.mark.parametrize(
    "stored",
    [
        "not json {",
        "",
        entry({**VALID, "choice": "ZZZ"}),
        entry({**VALID, "analysis of A": 12345}),
        entry({k: v for k, v in VALID.items() if k != "choice"}),
        entry({**VALID, "extra": "x"}),
        entry({**VALID, "analysis of B": "x" * 5000}),
        entry([VALID]),
        entry(VALID, meta=None),
        entry(VALID, meta=["seconds"]),
        json.dumps({"verdict": VALID}),
        json.dumps(VALID),  # a verdict without its meta
        json.dumps([VALID]),
        "null",
        12345,
        b"\x00\xff",
    ],
)
def test_a_bad_entry_is_a_counted_miss(tmp_path, stored):
    cache = VerdictCache(tmp_path)
    raw_put(cache, "k", stored)
    assert cache.get("k", check) is None
    assert cache.rejected == 1
    cache.put("k", Judgement("x", verdict=VALID, meta=META))
    assert cache.get("k", check).verdict == VALID
    assert cache.rejected == 1


def _truncated_database(path):
    cache = VerdictCache(path.parent)
    for i in range(400):
        cache.put(f"k{i}", Judgement("x", verdict={**VALID, "analysis of A": "x" * 500}))
    cache.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda p: p.write_bytes(b"\x8f random bytes \x00" * 300),
        lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 40),
        _truncated_database,
    ],
    ids=["random bytes", "bare header", "truncated"],
)
def test_an_unreadable_cache_file_is_one_error_naming_it(tmp_path, corrupt):
    path = tmp_path / "verdicts.sqlite"
    corrupt(path)
    with pytest.raises(InputError) as info:
        VerdictCache(tmp_path)
    message = str(info.value)
    assert message.startswith(f"verdict cache {path} is unreadable (")
    assert "\n" not in message


def test_a_wrong_verdict_in_the_cache_is_judged_again_and_replaced(local_backend, tmp_path):
    src = tmp_path / "pairs.json"
    user = {"role": "user", "content": "What is 3 + 4?"}
    src.write_text(
        json.dumps(
            [
                {
                    "id": "p0",
                    "label": "A",
                    "conversation_A": [user, {"role": "assistant", "content": "7"}],
                    "conversation_B": [user, {"role": "assistant", "content": "8"}],
                }
            ]
        )
    )
    pairs = load_pairs(str(src))
    model = ICRM(
        rm_type="pairwise",
        num_shots=0,
        backend=local_backend,
        use_cache=True,
        cache_dir=str(tmp_path / "c"),
    )
    evaluator = Evaluator(model, orders="ab", max_tokens=15)
    (job,) = evaluator.jobs(pairs)
    key = model.cache_key(job.example, max_tokens=15)
    wrong = {**VALID, "choice": "ZZZ", "analysis of A": 12345}
    raw_put(model.cache, key, entry(wrong))

    store = ResultStore(tmp_path / "run")
    store.open({}, resume=False, overwrite=False)
    evaluator.run(pairs, store, progress=False)
    store.close()

    (record,) = store.records()
    assert record["meta"]["cache_hits"] == 0
    assert record["judgements"][0]["error"] is None
    assert record["judgements"][0]["choice"] in {"A++", "A+", "A=B", "B+", "B++"}
    assert model.cache.rejected == 1
    (stored,) = (
        sqlite3.connect(model.cache.path)
        .execute("SELECT entry FROM judgements WHERE key = ?", (key,))
        .fetchone()
    )
    replaced = check(json.loads(stored)["verdict"])
    assert replaced["choice"] == record["judgements"][0]["choice"]
    assert model.cache.get(key, check).verdict == replaced
