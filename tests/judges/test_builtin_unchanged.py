"""The built-in modes give the outputs recorded for them: a guard on the public numbers.

``tests/data/builtin_outputs.json`` holds the greedy local-engine verdicts and
probabilities of the example file of each mode and ten pool examples per mode (one shot,
40 tokens), recorded by ``devtools/record_builtin_outputs.py``. History: the judge
mechanism reproduced the recording of the code before judges became data (f6aa282),
then b3cb875's after the same-input fix; the recording was last made when the local
engine began reusing the KV of a program's decoded text instead of evaluating that text
again (9/11 verdicts per mode unchanged, every score and choice unchanged, probabilities
within 0.048 of b3cb875's), and again when a ``select`` began decoding its choices' tokens
one at a time (11/11 verdicts per mode unchanged, probabilities within 0.011), and when the
local engine began running the packaged Q4_1 model as a Q8_0 copy (``requantize.py``; every
score and choice unchanged, texts unchanged in 2/11 individual and 5/11 pairwise verdicts,
probabilities within 0.19).

The numbers belong to a llama.cpp build and CPU: llama-cpp-python compiles for the
machine it is installed on, and another CPU's kernels round differently (the recording of
the machine before gave 4/11 and 6/11 equal verdicts on this one). It was made again on
an AMD EPYC (AVX2, no AVX-512) with llama-cpp-python 0.3.36, where 327ce26 and the code
after issue 27 give bit-identical outputs. On another machine, record 327ce26's outputs
there first (``python -m devtools.record_builtin_outputs FILE``).
"""

import json
from pathlib import Path

import pytest

from devtools.record_builtin_outputs import record

RECORDED = Path(__file__).resolve().parent.parent / "data" / "builtin_outputs.json"


#: The default run judges the example and one pool entry per mode (a batch gives each the
#: verdict it gets alone); ``-m slow`` all eleven.
PER_MODE = 2


@pytest.fixture(scope="module")
def outputs(local_backend):
    return record(local_backend, PER_MODE)


@pytest.mark.parametrize("mode", ["individual", "pairwise"])
def test_greedy_outputs_match_the_recording(outputs, mode):
    check(json.loads(RECORDED.read_text("utf-8"))[mode][:PER_MODE], outputs[mode])


@pytest.mark.slow
def test_every_recorded_output_is_unchanged(local_backend):
    outputs = record(local_backend)
    for mode, before in json.loads(RECORDED.read_text("utf-8")).items():
        check(before, outputs[mode])


def check(before: list[dict], after: list[dict]) -> None:
    assert [r["id"] for r in after] == [r["id"] for r in before]
    for old, new in zip(before, after, strict=True):
        assert new["verdict"] == old["verdict"], old["id"]
        assert list(new["verdict"]) == list(old["verdict"])  # key order is public too
        assert new["probabilities"].keys() == old["probabilities"].keys()
        for value, p in old["probabilities"].items():
            assert new["probabilities"][value] == pytest.approx(p, abs=1e-4), old["id"]
