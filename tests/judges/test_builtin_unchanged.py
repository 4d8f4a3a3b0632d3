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
machine it is installed on, and another CPU's kernels round differently. The file keeps one
recording per build (``build_identity``): an AMD EPYC's (AVX2, no AVX-512; its build line
written from those features, not read off the machine), where 327ce26 and the code after
issue 27 give bit-identical outputs, and an Intel Xeon's (AVX-512, AMX), recorded with
the commit that keeps llama.cpp's AMX buffers off (every score and choice the same as the
EPYC's, texts equal in 5/11 individual and 6/11 pairwise verdicts, probabilities within
0.39 where the texts differ, 0.042 where not). On a build with a recording the outputs must
be that recording's, bit for bit; on another, what no CPU changed between those two: the
cases, each verdict's fields in order, the values its probabilities cover, and the scores
and choices (by wide margins here: 8 and A+ on every case). To add a build, run the
recorder there at a commit where this test passes on a recorded build
(``python -m devtools.record_builtin_outputs tests/data/builtin_outputs.json``).
"""

from pathlib import Path

import pytest

from devtools.record_builtin_outputs import record, recordings
from icrm_sgl.engines.local.llama_adapter import build_identity

RECORDED = Path(__file__).resolve().parent.parent / "data" / "builtin_outputs.json"
#: The field each mode decides by.
DECISION = {"individual": "score", "pairwise": "choice"}


#: The default run judges the example and one pool entry per mode (a batch gives each the
#: verdict it gets alone); ``-m slow`` all eleven.
PER_MODE = 2


def reference() -> tuple[dict, bool]:
    """This build's recording and True, or the first recording and False."""
    every = recordings(RECORDED)
    mine = [r for r in every if r["build"] == build_identity()]
    return (mine[0], True) if mine else (every[0], False)


@pytest.fixture(scope="module")
def outputs(local_backend):
    return record(local_backend, PER_MODE)


@pytest.mark.parametrize("mode", ["individual", "pairwise"])
def test_greedy_outputs_match_the_recording(outputs, mode):
    recorded, exact = reference()
    check(recorded[mode][:PER_MODE], outputs[mode], mode, exact)


@pytest.mark.slow
def test_every_recorded_output_is_unchanged(local_backend):
    recorded, exact = reference()
    outputs = record(local_backend)
    for mode in DECISION:
        check(recorded[mode], outputs[mode], mode, exact)


def check(before: list[dict], after: list[dict], mode: str, exact: bool) -> None:
    """``after`` is ``before`` bit for bit (``exact``), or in all that no CPU changes."""
    assert [r["id"] for r in after] == [r["id"] for r in before]
    for old, new in zip(before, after, strict=True):
        assert list(new["verdict"]) == list(old["verdict"])  # key order is public too
        assert new["probabilities"].keys() == old["probabilities"].keys()
        decision = DECISION[mode]
        assert new["verdict"][decision] == old["verdict"][decision], old["id"]
        if exact:
            assert new["verdict"] == old["verdict"], old["id"]
            for value, p in old["probabilities"].items():
                assert new["probabilities"][value] == pytest.approx(p, abs=1e-4), old["id"]
