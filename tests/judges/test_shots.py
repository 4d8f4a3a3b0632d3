import json

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.judges import default_judge
from icrm_sgl.judges.shots import load_shots, sample_shots


@pytest.mark.parametrize("rm_type", ["individual", "pairwise"])
def test_builtin_pools_are_valid_and_large_enough(rm_type):
    pool = load_shots(default_judge(rm_type))
    assert len(pool) >= 6
    assert len({s["id"] for s in pool}) == len(pool)
    for shot in pool:
        default_judge(rm_type).validate(shot["feedback"])


def test_fixed_and_random_sampling():
    pool = load_shots(default_judge("pairwise"))
    assert sample_shots(pool, 3, "fixed") == pool[:3]
    first = sample_shots(pool, 4, "random", seed=1)
    assert first == sample_shots(pool, 4, "random", seed=1)
    assert first != sample_shots(pool, 4, "random", seed=2)
    assert sample_shots(pool, 0) == []
    with pytest.raises(InputError, match="between 0 and"):
        sample_shots(pool, len(pool) + 1)
    with pytest.raises(InputError, match="unknown shot sampling mode"):
        sample_shots(pool, 1, "nearest")


def test_original_pool_format_loads_with_defaults(tmp_path):
    conv = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]
    fb = {"intent": "i", "checklist": "c", "strengths": "s", "weaknesses": "w", "score": 2}
    path = tmp_path / "pool.json"
    path.write_text(json.dumps([{"conversation": conv, "feedback": json.dumps(fb)}]))
    (shot,) = load_shots(default_judge("individual"), path)
    assert shot["feedback"] == fb
    assert shot["id"] == "individual-0" and shot["category"] == "general"


def test_bad_pool_errors_name_the_shot(tmp_path):
    conv = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]
    path = tmp_path / "pool.json"
    path.write_text(json.dumps([{"id": "s1", "conversation": conv, "feedback": {"score": 3}}]))
    with pytest.raises(InputError, match="shot s1: feedback intent: Field required"):
        load_shots(default_judge("individual"), path)
    path.write_text("[1, 2")
    with pytest.raises(InputError, match="invalid JSON"):
        load_shots(default_judge("individual"), path)
