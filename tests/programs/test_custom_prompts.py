"""User pools in the original IC-RM format and seed-style templates, end to end."""

import json

import pytest

from icrm_sgl import ICRM
from icrm_sgl.errors import InputError
from icrm_sgl.judges import default_judge
from tests.conftest import EXAMPLES, FAST

OVERALL = (
    "Rate the assistant's last reply from 1 to 10 and explain, as JSON.\n\n"
    "{$shots}=== Task ===\nContext: {$history}\nUser: {$user_query}\n"
    "Reply: {$model_output}\nJSON:\n"
)
SHOT = (
    "=== Example {$index} ===\nUser: {$user_query}\nReply: {$model_output}\nJSON: {$feedback}\n\n"
)


@pytest.fixture
def custom_files(tmp_path):
    conv = [
        {"role": "user", "content": "What is the boiling point of water at sea level in C?"},
        {"role": "assistant", "content": "100 degrees Celsius."},
    ]
    feedback = {
        "intent": "A quick fact.",
        "checklist": "1. Correct value; 2. Right unit.",
        "strengths": "Correct and concise.",
        "weaknesses": "None worth noting.",
        "score": 9,
    }
    pool = tmp_path / "icrm_pool_individual.json"
    pool.write_text(json.dumps([{"conversation": conv, "feedback": json.dumps(feedback)}]))
    overall = tmp_path / "overall.template"
    overall.write_text(OVERALL)
    shot = tmp_path / "shot.template"
    shot.write_text(SHOT)
    return pool, overall, shot


def test_python_api_with_original_pool_and_custom_templates(
    local_backend, custom_files, individual_example
):
    pool, overall, shot = custom_files
    model = ICRM(
        rm_type="individual",
        shots_pool_path=str(pool),
        num_shots=1,
        template_path=str(overall),
        shot_template_path=str(shot),
        backend=local_backend,
    )
    prompt = model.render_prompt(individual_example)
    assert prompt.startswith("Rate the assistant's last reply")
    assert "=== Example 1 ===" in prompt and '"score": 9}' in prompt
    assert prompt.endswith("Reply: Sure, where do you want to go?\nJSON:\n")
    result = model.judge(individual_example, **FAST)
    default_judge("individual").validate(result.verdict)
    assert result.meta["shots"] == ["individual-0"]


def test_template_missing_a_key_fails_at_load(local_backend, custom_files, tmp_path):
    pool, _, shot = custom_files
    broken = tmp_path / "broken.template"
    broken.write_text("{$shots} {$user_query}")
    with pytest.raises(InputError, match=r"missing placeholder\(s\) \{\$model_output\}"):
        ICRM(
            rm_type="individual",
            shots_pool_path=str(pool),
            template_path=str(broken),
            shot_template_path=str(shot),
            backend=local_backend,
        )


def test_cli_with_original_pool_and_custom_templates(custom_files, run_cli):
    pool, overall, shot = custom_files
    proc = run_cli(
        "score",
        EXAMPLES / "test_individual.json",
        "--shots-pool",
        pool,
        "--num-shots",
        "1",
        "--template",
        overall,
        "--shot-template",
        shot,
        "--max-tokens",
        "30",
    )
    assert proc.returncode == 0, proc.stderr
    default_judge("individual").validate(proc.stdout)
