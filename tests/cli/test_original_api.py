"""Drop-in use for IC-RM users: the original constructor parameters, the verdict cache,
the ``icrm test`` command line and the original README's Python examples."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from icrm_sgl import ICRM
from icrm_sgl.engines.local.engine import LocalBackend, LocalOptions
from icrm_sgl.engines.local.requantize import default_weights
from icrm_sgl.errors import InputError
from icrm_sgl.judges import default_judge
from tests.conftest import EXAMPLES, FAST


def cached_model(backend, tmp_path, **options) -> ICRM:
    return ICRM(
        rm_type="individual",
        num_shots=1,
        backend=backend,
        use_cache=True,
        cache_dir=str(tmp_path / "cache"),
        **options,
    )


def test_use_cache_answers_a_repeated_call_from_the_cache(local_backend, tmp_path):
    example = json.loads((EXAMPLES / "test_individual.json").read_text())
    with cached_model(local_backend, tmp_path) as model:
        first = model.judge(example, **FAST)
    with cached_model(local_backend, tmp_path) as model:
        again = model.judge(example, **FAST)
        as_text = model(conversation=example["conversation"], **FAST)
    assert "from_cache" not in first.meta and again.meta["from_cache"] is True
    assert again.verdict == first.verdict == json.loads(as_text)


def test_a_changed_engine_default_is_a_cache_miss(local_backend, tmp_path):
    """A new default (here the n-gram ban) changes the key though the caller passed nothing."""

    class NewDefaults(LocalOptions):
        no_repeat_ngram: int = 3

    example = json.loads((EXAMPLES / "test_individual.json").read_text())
    with cached_model(local_backend, tmp_path) as model:
        model.judge(example, **FAST)
        before = model.fingerprint(**FAST)
    changed = LocalBackend(NewDefaults(n_ctx=4096))
    try:
        with cached_model(changed, tmp_path) as model:
            after = model.fingerprint(**FAST)
            result = model.judge(example, **FAST)
    finally:
        changed.shutdown()
    assert before["engine_identity"]["options"]["no_repeat_ngram"] == 4
    assert after["engine_identity"]["options"]["no_repeat_ngram"] == 3
    assert "from_cache" not in result.meta


def test_fingerprint_names_the_engine_class_model_and_version(local_backend):
    identity = ICRM(num_shots=1, backend=local_backend).fingerprint()["engine_identity"]
    assert identity["class"] == "icrm_sgl.engines.local.engine.LocalBackend"
    # The packaged Q4_1 model runs as its Q8_0 copy: verdicts of the Q4_1 weights never match.
    assert identity["model"] == "SmolLM2-135M-Instruct.Q8_0" and identity["version"]
    assert "n_threads" not in identity["options"]  # speed settings do not change verdicts


def test_overwrite_cache_judges_again(local_backend, tmp_path):
    example = json.loads((EXAMPLES / "test_individual.json").read_text())
    with cached_model(local_backend, tmp_path) as model:
        model.judge(example, **FAST)
    with cached_model(local_backend, tmp_path, overwrite_cache=True) as model:
        result = model.judge(example, **FAST)
    assert "from_cache" not in result.meta


def test_feedback_template_renders_the_shots_verdicts(local_backend, tmp_path, pairwise_example):
    template = tmp_path / "feedback.template"
    template.write_text("Winner: {$choice}. Why A: {$analysis_of_A} / {$reason_of_A_gt_B}")
    model = ICRM(
        rm_type="pairwise",
        num_shots=1,
        backend=local_backend,
        feedback_template_path=str(template),
    )
    shot = model.default_shots[0]["feedback"]
    prompt = model.render_prompt(pairwise_example)
    assert f"Winner: {shot['choice']}. Why A: {shot['analysis of A']}" in prompt
    assert json.dumps(shot["analysis of A"]) not in prompt  # no JSON line for the shot


def test_feedback_template_with_an_unknown_key_names_it(local_backend, tmp_path):
    template = tmp_path / "feedback.template"
    template.write_text("{$score} {$analysis_of_A}")
    with pytest.raises(InputError, match=r"unknown placeholder.*analysis_of_A"):
        ICRM(rm_type="individual", backend=local_backend, feedback_template_path=str(template))


@pytest.mark.parametrize(
    ("option", "value"),
    [("num_workers", 2), ("num_gpu_per_worker", 2), ("dtype", "bfloat16"), ("quantization", "awq")],
)
def test_launch_parameters_without_meaning_on_the_local_engine_name_it(option, value):
    with pytest.raises(InputError, match=rf"engine 'local': no option '{option}'"):
        ICRM(rm_type="individual", **{option: value})


def test_icrm_test_takes_a_gguf_file_and_the_dashed_spelling_of_every_flag(
    run_cli, tmp_path, monkeypatch
):
    """The original command line, with a GGUF file as the model, in either spelling."""
    from icrm_sgl.cli.original import main

    gguf = default_weights()  # the run's Q8_0 copy: Q4_1 prompts take 1.6x as long
    monkeypatch.setenv("ICRM_CACHE_DIR", str(tmp_path))
    args = [str(EXAMPLES / "test_individual.json"), "--rm-type", "individual", "--num-shots", "0"]
    args += ["--model_name", str(gguf), "--engine", "local"]
    args += ["--use-cache", "--overwrite-cache", "--num-workers", "1", "--num-gpu-per-worker", "1"]
    proc = run_cli("test", *args, main=main)
    assert proc.returncode == 0, proc.stderr
    default_judge("individual").validate(json.loads(proc.stdout))


def test_icrm_test_with_a_meaningless_flag_is_one_line_and_exit_2(run_cli):
    from icrm_sgl.cli.original import main

    args = [str(EXAMPLES / "test_individual.json"), "--engine", "local", "--num_workers", "2"]
    proc = run_cli("test", *args, main=main)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: engine 'local': no option 'num_workers' (it has no meaning for this engine)"
    )


# The original README's example code, unchanged apart from the import line and the engine
# and model names (local engine, packaged SmolLM2), on this project's example texts.
ORIGINAL_INDIVIDUAL = """
inputs = {
    "conversation": [
        {"role": "user", "content": "I want to book a flight"},
        {"role": "assistant", "content": "Sure, where do you want to go?"}
    ]
}
from icrm_sgl import ICRM
model = ICRM(model_name=None, rm_type='individual', engine='local')
generation_kwargs = {
    "max_tokens": 3072,
    "temperature": 0.7,
    "top_p": 0.9,
}
feedback = model(**inputs, **generation_kwargs)
print(feedback)
"""

ORIGINAL_PAIRWISE = """
inputs = {
    "conversation_A": [
        {"role": "user", "content": "I want to book a flight"},
        {"role": "assistant", "content": "Sure, where do you want to go?"}
    ],
    "conversation_B": [
        {"role": "user", "content": "I want to book a flight"},
        {"role": "assistant", "content": "Where from, where to, and when?"}
    ]
}

from icrm_sgl import ICRM
model = ICRM(model_name=None, rm_type='pairwise', engine='local')
generation_kwargs = {
    "max_tokens": 3072,
    "temperature": 0.7,
    "top_p": 0.9,
}
feedback = model(**inputs, **generation_kwargs)
print(feedback)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rm_type", "code"),
    [("individual", ORIGINAL_INDIVIDUAL), ("pairwise", ORIGINAL_PAIRWISE)],
    ids=["individual", "pairwise"],
)
def test_original_readme_examples_run_on_the_local_engine(rm_type, code):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    default_judge(rm_type).validate(json.loads(proc.stdout))
