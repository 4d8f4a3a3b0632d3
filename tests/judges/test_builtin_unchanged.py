"""The built-in modes on the judge mechanism give the outputs they gave before it.

``tests/data/builtin_outputs_b3cb875.json`` holds the greedy local-engine verdicts and
probabilities recorded by ``devtools/record_builtin_outputs.py`` at commit b3cb875: the
code before judges became data (f6aa282) plus the local engine's same-input-same-verdict
fix, which changes llama.cpp's rounding and so the numbers (the judge mechanism matched
f6aa282's own recording on the engine before that fix). The example file of each mode and
ten pool examples per mode, one shot, 40 tokens.
"""

import json
from pathlib import Path

import pytest

from devtools.record_builtin_outputs import record

RECORDED = Path(__file__).resolve().parent.parent / "data" / "builtin_outputs_b3cb875.json"


@pytest.fixture(scope="module")
def outputs(local_backend):
    return record(local_backend)


@pytest.mark.parametrize("mode", ["individual", "pairwise"])
def test_greedy_outputs_match_commit_b3cb875(outputs, mode):
    before = json.loads(RECORDED.read_text("utf-8"))[mode]
    after = outputs[mode]
    assert [r["id"] for r in after] == [r["id"] for r in before]
    for old, new in zip(before, after, strict=True):
        assert new["verdict"] == old["verdict"], old["id"]
        assert list(new["verdict"]) == list(old["verdict"])  # key order is public too
        assert new["probabilities"].keys() == old["probabilities"].keys()
        for value, p in old["probabilities"].items():
            assert new["probabilities"][value] == pytest.approx(p, abs=1e-4), old["id"]
