"""verl's custom reward function (``icrm_sgl.integrations.verl.compute_score``) loaded by
verl 0.9.1's own loader and called as its reward manager calls it, on the real engine.

verl is installed without its dependencies into a folder of this run. Its loader
(``verl.trainer.ppo.reward.get_custom_reward_fn``) runs unchanged, but the package
initialisers of ``verl`` and ``verl.utils`` import ray, torch, tensordict and omegaconf
(gigabytes, and a GPU stack), so the script registers those two packages by path without
running their ``__init__``; the loader's module and ``verl.utils.import_utils`` need only
the standard library. The config is the mapping the loader reads
(``config.reward.custom_reward_function``); the call is ``NaiveRewardManager.run_single``'s
(keywords, with ``extra_info`` carrying verl's ``num_turns`` and
``rollout_reward_scores``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT

VERL = "0.9.1"
RUBRIC = EXAMPLES / "judges" / "reference_correct.toml"
OPTIONS = {"num_shots": 0, "gen": {"max_tokens": 24}}

SCRIPT = """
import json, sys, types
from pathlib import Path
folder = Path(sys.argv[1]) / "verl"
for name, path in (("verl", folder), ("verl.utils", folder / "utils")):
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    sys.modules[name] = module
sys.modules["verl"].DataProto = object  # the loader's module names it in type hints only
from verl.trainer.ppo.reward import get_custom_reward_fn

rubric, options = sys.argv[2], json.loads(sys.argv[3])
function = {"path": "pkg://icrm_sgl.integrations.verl", "name": "compute_score",
            "reward_kwargs": {"judge": rubric, "options": options}}
config = types.SimpleNamespace(reward={"custom_reward_function": function})
compute_score = get_custom_reward_fn(config)
question = "At what temperature does water boil at sea level, in Celsius?"
def call(answer, truth, info):
    return compute_score(data_source="boil", solution_str=answer, ground_truth=truth,
                         extra_info={**info, "num_turns": None, "rollout_reward_scores": {}})
with_question = {"question": question}
rewards = [call("100 degrees Celsius.", "100 degrees Celsius", with_question),
           call("100 degrees Celsius.", "50 degrees Celsius", with_question),
           call("100 degrees Celsius.", "100 degrees Celsius", {})]
from icrm_sgl import ICRM
model = ICRM(judge=rubric, num_shots=0)
chat = [{"role": "user", "content": question},
        {"role": "assistant", "content": "100 degrees Celsius."}]
result = model.judge({"conversation": chat, "reference": "100 degrees Celsius"},
                     **options["gen"])
direct = model.definition.reward_value(result.verdict, result.meta)
print(json.dumps([rewards, direct]))
"""


@pytest.fixture(scope="module")
def verl_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("verl-" + VERL)
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target"]
    subprocess.run([*install, str(folder), f"verl=={VERL}"], check=True, timeout=300)
    return folder


def test_verls_loader_gets_the_rubrics_reward_with_ground_truth_as_reference(verl_folder):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [str(verl_folder), str(RUBRIC), json.dumps(OPTIONS)]
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    (right, wrong, no_question), direct = json.loads(run.stdout.strip().splitlines()[-1])
    assert right == pytest.approx(direct, abs=1e-6)  # what ICRM gives the same example
    assert 0.0 <= right <= 1.0 and right != wrong  # the reference reached the prompt
    assert no_question == 0.0  # no question: the failed reward, the reason logged
    assert "extra_info['question'] must hold the question" in run.stderr


def test_compute_score_keeps_verls_signature():
    import inspect

    from icrm_sgl.integrations.verl import compute_score

    names = list(inspect.signature(compute_score).parameters)
    assert names[:4] == ["data_source", "solution_str", "ground_truth", "extra_info"]
