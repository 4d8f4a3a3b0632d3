"""The sglang engine against a real sglang 0.5.23 server on this machine's CPU.

One server for the whole run, launched through the engine's own launch path (the bundled
SmolLM2 converted to a Hugging Face checkpoint; see ``devtools/sglang_cpu``). Slow but
real: constrained decoding, logprobs and the radix cache are the server's own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from devtools.tricky import tricky_pairs_once, tricky_pairwise
from icrm_sgl import ICRM
from icrm_sgl.engines import create_engine
from icrm_sgl.errors import EngineError, InputError, VerdictError
from icrm_sgl.judges import default_judge
from icrm_sgl.judges.verdicts import CHOICES
from tests.conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.sglang_server

#: Small budgets: the CPU server decodes ~28 tokens/s when the machine is idle.
BUDGET = {"max_tokens": 40}


@pytest.fixture(scope="module")
def sglang_url(sglang_backend):
    return sglang_backend.base_url


def judge_model(backend, rm_type="pairwise", **kwargs) -> ICRM:
    return ICRM(rm_type=rm_type, engine="sglang", backend=backend, num_shots=1, **kwargs)


def test_launched_server_is_real_and_knows_its_chat_template(sglang_backend):
    assert sglang_backend.server is not None and sglang_backend.server.proc.poll() is None
    assert sglang_backend.get_model_name().endswith("smollm2-135m-hf-v1")
    assert sglang_backend.chat_template.name == "chatml" and sglang_backend.chat_template_known


@pytest.mark.parametrize(
    "layout", ["one_request", pytest.param("per_field", marks=pytest.mark.slow)]
)  # the local engine runs both layouts by default
def test_greedy_pairwise_verdict_has_probabilities(sglang_backend, pairwise_example, layout):
    sglang_backend.options.layout = layout
    try:
        result = judge_model(sglang_backend).judge(pairwise_example, **BUDGET)
    finally:
        sglang_backend.options.layout = "one_request"
    default_judge("pairwise").validate(result.verdict)
    probs = result.meta["probabilities"]
    assert set(probs) == set(CHOICES) and abs(sum(probs.values()) - 1) < 1e-3
    assert result.verdict["choice"] == max(probs, key=probs.get)
    assert result.meta["prompt_tokens"] > 500 and result.meta["completion_tokens"] > 0


@pytest.mark.slow  # chat mode runs on the local engine by default; the template check above
def test_chat_mode_individual_uses_the_models_template(sglang_backend, individual_example):
    model = judge_model(sglang_backend, "individual", completion=False, verbose=False)
    result = model.judge(individual_example, **BUDGET)
    assert default_judge("individual").validate(result.verdict).score in range(1, 11)
    assert set(result.meta["probabilities"]) == {str(n) for n in range(1, 11)}


@pytest.mark.slow  # sampling on the local engine runs by default
def test_sampled_verdicts_are_valid_and_differ_by_seed(sglang_backend, pairwise_example):
    model = judge_model(sglang_backend)
    result = model.judge(pairwise_example, temperature=0.9, top_p=0.95, **BUDGET)
    default_judge("pairwise").validate(result.verdict)
    assert "probabilities" not in result.meta


def test_tricky_batch_is_all_valid_and_reuses_the_prefix(sglang_backend):
    """The tricky texts but the 3,319-character reply (over a minute of CPU prefill here;
    the local engine's tricky batch judges it in the default run, this one with -m slow),
    with short fields: validity and the prefix are the point."""
    examples = [ex for ex in tricky_pairs_once() if len(json.dumps(ex)) < 2000]
    assert len(examples) == 4
    model = judge_model(sglang_backend)
    results = list(model.judge_batch(examples, max_tokens=8, num_threads=4))
    assert [r.error for r in results if not r.ok] == []
    for r in results:
        default_judge("pairwise").validate(r.verdict)
    prompt = sum(r.meta["prompt_tokens"] for r in results)
    cached = sum(r.meta["cached_tokens"] for r in results)
    assert cached / prompt > 0.5, (cached, prompt)


@pytest.mark.slow
def test_the_long_tricky_reply_is_judged_on_the_server(sglang_backend):
    (example,) = [ex for ex in tricky_pairs_once() if len(json.dumps(ex)) >= 2000]
    result = judge_model(sglang_backend).judge(example, max_tokens=20)
    default_judge("pairwise").validate(result.verdict)


def test_a_request_past_its_timeout_fails_cleanly(sglang_url, pairwise_example):
    backend = create_engine("sglang", endpoint=sglang_url, generate_timeout=0.05)
    model = judge_model(backend)
    started = time.monotonic()
    with pytest.raises(VerdictError, match=r"no answer within 0\.05 s"):
        model.judge(pairwise_example, max_tokens=200)
    assert time.monotonic() - started < 30


def test_unknown_chat_template_is_refused_in_chat_mode(sglang_url, monkeypatch):
    from icrm_sgl.engines.sglang import backend

    monkeypatch.setattr(backend, "local_chat_template", lambda path: "")
    backend = create_engine("sglang", endpoint=sglang_url)
    assert not backend.chat_template_known
    with pytest.raises(InputError, match="chat_template=NAME"):
        judge_model(backend, completion=False)
    judge_model(backend, completion=True)  # completion mode needs no template


def test_connecting_to_a_dead_port_is_an_engine_error():
    from icrm_sgl.engines.server_process import free_port

    with pytest.raises(EngineError, match="cannot reach"):
        create_engine("sglang", endpoint=f"http://127.0.0.1:{free_port()}", request_timeout=2)


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "icrm_sgl.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.slow  # a subprocess importing sglang; the engine path runs by default
def test_cli_scores_the_example_through_the_server(sglang_url):
    done = run_cli(
        "score", str(EXAMPLES / "test_pairwise.json"), "--engine", "sglang", "--endpoint",
        sglang_url, "--num-shots", "1", "--max-tokens", "40",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)
    default_judge("pairwise").validate(verdict)


@pytest.mark.slow
def test_eval_through_the_server_prints_the_metrics_table(sglang_url, tmp_path):
    data = tmp_path / "pairs.jsonl"
    with data.open("w") as f:
        for ex in tricky_pairwise(3):
            f.write(json.dumps({**ex, "label": "A"}) + "\n")
    done = run_cli(
        "eval", str(data), "--engine", "sglang", "--endpoint", sglang_url, "--num-shots", "1",
        "--max-tokens", "20", "--output-dir", str(tmp_path / "run"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "overall" in done.stdout and "accuracy" in done.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["overall"]["n"] == 3


@pytest.mark.slow  # a subprocess importing all of sglang; the engine path runs by default
def test_generate_then_judge_example_runs_on_the_server(sglang_url):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "generate_then_judge.py"), sglang_url],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    # Answer B is sampled (temperature 0.8, stop at a newline): it may be empty.
    assert isinstance(out["answer_A"], str) and isinstance(out["answer_B"], str)
    default_judge("pairwise").validate(out["verdict"])
    assert set(out["probabilities"]) == set(CHOICES)


def test_rubric_judge_on_the_sglang_server_gives_every_fields_probabilities(sglang_backend):
    """A rubric's program (a text field, then three 1-5 integers) on the real server."""
    rubric = EXAMPLES / "judges" / "helpful_harmless.toml"
    examples = [
        json.loads(line)
        for line in (EXAMPLES / "judges" / "helpful_harmless.jsonl").read_text().splitlines()
    ]
    model = ICRM(judge=rubric, engine="sglang", backend=sglang_backend, num_shots=1)
    results = list(model.judge_batch(examples[:2], **BUDGET))
    assert len(results) == 2
    for result in results:
        assert result.ok, result.error
        model.definition.validate(result.verdict)
        fields = result.meta["field_probabilities"]
        assert set(fields) == {"helpfulness", "harmlessness", "overall"}
        for key, dist in fields.items():
            assert set(dist) == {"1", "2", "3", "4", "5"} and abs(sum(dist.values()) - 1) < 1e-3
            assert str(result.verdict[key]) == max(dist, key=dist.get)
        assert 1.0 <= result.meta["reward"] <= 5.0
        assert result.meta["reward"] == result.meta["expected"]["overall"]
