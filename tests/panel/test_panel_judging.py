"""A panel of the built-in pairwise judge on the local engine and a rubric on the
loopback llama.cpp server, through score, rank and serve; a one-reply panel whose second
member fails every example, through ICRMReward (real engines; the failing member's server
is a scripted stand-in that never gives a valid verdict)."""

from __future__ import annotations

import json

import pytest

from icrm_sgl.judges import as_judge
from tests.conftest import EXAMPLES
from tests.engines.standin import StandinServer, chat_reply

RUBRIC = (EXAMPLES / "judges" / "multiturn_pairwise.toml").resolve()
HELPFUL = (EXAMPLES / "judges" / "helpful_harmless.toml").resolve()
#: The range of each member's margin: the built-in A++ … B++ is ±2, the rubric's A/B/tie ±1.
TOP = {"pairwise": 2.0, "multiturn_pairwise": 1.0}
FLAGS = ["--num-shots", "0", "--max-tokens", "12"]


@pytest.fixture
def panel_file(tmp_path, llama_server):
    path = tmp_path / "panel.toml"
    path.write_text(
        'combine = "mean"\n'
        '[[members]]\njudge = "pairwise"\n'
        f'[[members]]\njudge = "{RUBRIC}"\nengine = "openai"\nbase_url = "{llama_server}"\n'
        'model = "smollm2"\nweight = 2\n'
        # The member's reward is the one its verdict names: llama-cpp-python's server spends
        # ~0.2 s a token on log-probabilities (test_judges_hosted checks those).
        "options = { logprobs = false }\n"
    )
    return path


def _check_members(meta):
    """Each member named with its fingerprint and engine; the panel's reward the weighted
    mean of the members' margins mapped to 0-1, computed here from their verdicts' margins."""
    members = meta["members"]
    assert [(m["judge"], m["engine"]) for m in members] == [
        ("pairwise", "local"),
        ("multiturn_pairwise", "openai"),
    ]
    assert members[1]["fingerprint"] == as_judge(RUBRIC).fingerprint()[:16]
    scaled = [(m["reward"] + TOP[m["judge"]]) / (2 * TOP[m["judge"]]) for m in members]
    weights = [m["weight"] for m in members]
    expected = sum(w * s for w, s in zip(weights, scaled, strict=True)) / sum(weights)
    assert meta["reward"] == pytest.approx(expected, abs=1e-5)
    assert meta["agreement"]["spread"] == pytest.approx(max(scaled) - min(scaled), abs=1e-5)
    assert "members_failed" not in meta


def test_a_two_engine_panel_through_score_rank_and_serve(run_cli, tmp_path, panel_file):
    out = tmp_path / "out.jsonl"
    pairs = EXAMPLES / "pairs.jsonl"
    result = run_cli("score", pairs, "--limit", "1", "--panel", panel_file, *FLAGS, "-o", out)
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    _check_members(record["meta"])
    assert record["verdict"]["reward"] == record["meta"]["reward"]
    assert record["verdict"]["decision"] in ("A", "B", "tie")
    assert all("verdict" in m for m in record["meta"]["members"])
    assert "probabilities" in record["meta"]["members"][0]  # the local engine's select

    item = tmp_path / "item.json"
    item.write_text(
        json.dumps({"prompt": "Say hello in French.", "responses": ["Bonjour !", "Hola."]})
    )
    result = run_cli("rank", item, "--panel", panel_file, *FLAGS)
    assert result.returncode == 0, result.stderr
    ranking = json.loads(result.stdout)
    (comparison,) = ranking["comparisons"]
    assert sorted(ranking["order"]) == [0, 1] and ranking["method"] == "comparisons"
    winner = comparison["a"] if comparison["p_a_better"] > 0.5 else comparison["b"]
    assert ranking["order"][0] == winner

    first = json.loads(pairs.read_text().splitlines()[0])
    _serve(panel_file, {k: first[k] for k in ("id", "conversation_A", "conversation_B")})


def _serve(panel_file, example):
    from fastapi.testclient import TestClient

    from icrm_sgl.judging.settings import Settings
    from icrm_sgl.panel import load_panel
    from icrm_sgl.serve.app import create_app
    from icrm_sgl.serve.config import ServeConfig
    from icrm_sgl.serve.judges import Judges

    settings = Settings.from_flat({"num_shots": 0})
    config = ServeConfig(gen={"max_tokens": 12})
    with TestClient(
        create_app(config, lambda: Judges.open_panel(load_panel(panel_file), settings))
    ) as client:
        health = client.get("/health").json()
        judged = client.post("/v1/judge", json=example)
        body = {"query": ["Hi? Hello!"], "prompts": ["Hi? "], "labels": ["Go away."]}
        rewarded = client.post("/get_reward", json=body)
    assert [m["judge"] for m in health["members"]] == ["pairwise", "multiturn_pairwise"]
    assert judged.status_code == 200, judged.text
    record = judged.json()
    _check_members(record["meta"])
    assert record["reward"] == record["meta"]["reward"]
    assert rewarded.status_code == 200, rewarded.text
    (reward,) = rewarded.json()["rewards"]
    assert 0.0 <= reward <= 1.0


def test_a_failing_member_is_named_and_require_all_makes_it_an_error(tmp_path):
    from icrm_sgl.integrations.reward import ICRMReward

    prompts, completions = ["What is 2 + 2?"], ["4"]
    with StandinServer([chat_reply('{"rationale": "x", "overall": 9}')]) as server:
        path = tmp_path / "panel.toml"
        path.write_text(
            '[[members]]\njudge = "individual"\n'
            f'[[members]]\njudge = "{HELPFUL}"\nengine = "openai"\nmodel = "standin"\n'
            f'base_url = "{server.url}/v1"\noptions = {{ api_key = "sk-test", max_retries = 0 }}\n'
        )
        with ICRMReward(panel=path, gen={"max_tokens": 8}, num_shots=0, seed=7) as reward:
            (value,) = reward(prompts, completions)
            record = next(reward._judging.panel.judge_batch([_example()], max_tokens=8))
            models = reward._judging.panel.models
            assert [m.settings.engine.seed for m in models] == [7, 7]  # --seed reaches each
        with ICRMReward(panel=path, gen={"max_tokens": 8}, num_shots=0, require_all=True) as strict:
            assert strict(prompts, completions) == [None]
    meta = record.meta
    assert meta["members_failed"] == [2]
    failed = meta["members"][1]
    assert failed["judge"] == "helpful_harmless" and "error" in failed and "reward" not in failed
    kept = meta["members"][0]
    assert meta["reward"] == pytest.approx((kept["reward"] - 1) / 9, abs=1e-5)  # score 1-10
    assert value == pytest.approx(meta["reward"], abs=1e-5)


def _example():
    return {
        "conversation": [
            {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": "4"},
        ]
    }


def test_examples_sharing_an_id_each_get_their_own_members_verdicts(run_cli, tmp_path):
    """Members' verdicts meet by position: two examples with one id used to both get the
    second one's (the panel matched them by id)."""
    lines = (EXAMPLES / "pairs.jsonl").read_text("utf-8").splitlines()[:2]
    src = tmp_path / "same_id.jsonl"
    src.write_text("".join(json.dumps({**json.loads(line), "id": "x"}) + "\n" for line in lines))
    out = tmp_path / "out.jsonl"
    panel = EXAMPLES / "panel.toml"
    result = run_cli(
        "score", src, "--panel", panel, "--num-shots", "0", "--max-tokens", "8", "-o", out
    )
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in out.read_text("utf-8").splitlines())
    assert first["id"] == second["id"] == "x"
    prompts = [[m["meta"]["prompt_tokens"] for m in r["meta"]["members"]] for r in (first, second)]
    assert prompts[0] != prompts[1], prompts  # the two pairs' texts differ in length


def test_a_panel_result_comes_once_every_member_has_judged_it_not_at_the_batchs_end(
    monkeypatch,
):
    """A caller writes each example as it is judged (eval's results, score's lines), so an
    interrupted run keeps what was done: the panel used to wait for every member's whole
    batch. The second member is held after its first verdict; the first result arrives."""
    import threading

    from icrm_sgl import Panel

    examples = [json.loads(line) for line in (EXAMPLES / "pairs.jsonl").read_text().splitlines()]
    gate = threading.Event()
    with Panel(EXAMPLES / "panel.toml", num_shots=0) as panel:
        real = panel.models[1].judge_batch

        def held(calls, **kwargs):
            for n, result in enumerate(real(calls, **kwargs)):
                if n == 1:
                    assert gate.wait(300)
                yield result

        monkeypatch.setattr(panel.models[1], "judge_batch", held)
        results = panel.judge_batch(examples[:2], max_tokens=8)
        first: list = []
        reader = threading.Thread(target=lambda: first.append(next(results)))
        reader.start()
        reader.join(timeout=120)
        arrived = bool(first)
        gate.set()
        reader.join()
        assert arrived, "the first example waited for the held member's whole batch"
        second = next(results)
        assert [first[0].id, second.id] == [examples[0]["id"], examples[1]["id"]]
        assert first[0].ok and second.ok, (first[0].error, second.error)
