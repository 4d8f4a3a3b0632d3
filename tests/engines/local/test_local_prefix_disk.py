"""The prefix state kept on disk: a new process starts warm and gets the same numbers; a
bad, foreign or unrelated file is never used."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from icrm_sgl.engines.local.engine import LocalBackend, LocalOptions
from icrm_sgl.engines.local.llama_adapter import state_identity
from icrm_sgl.engines.local.llama_runner import LlamaRunner
from icrm_sgl.engines.local.requantize import default_weights
from icrm_sgl.engines.local.sampling import Sampling
from icrm_sgl.engines.local.state_store import SUFFIX, StateStore
from icrm_sgl.errors import EngineError
from tests.conftest import EXAMPLES

PROMPT = "You judge replies. Read the question and the reply, then rate the reply. " * 6
CHOICES = [" good", " bad"]

#: One verdict in this process: what the test compares, as one JSON line on stdout.
VERDICT_SCRIPT = """
import json, sys
from icrm_sgl import ICRM
example = json.loads(open(sys.argv[1], encoding="utf-8").read())
with ICRM(rm_type="pairwise", num_shots=1, n_ctx=2048) as model:
    result = model.judge(example, max_tokens=20)
    store = model.backend.runner.prefix_cache.store
    logprobs = model.backend.runner.choice_logprobs(model.render_prompt(example), [" A", " B"])
    print(json.dumps({
        "verdict": result.verdict,
        "probabilities": result.meta.get("probabilities"),
        "prompt_tokens": result.meta["prompt_tokens"],
        "cached_tokens": result.meta["cached_tokens"],
        "logprobs": logprobs[0],
        "loaded": store.loaded,
        "written": store.written,
    }))
"""


def _verdict_in_new_process() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", VERDICT_SCRIPT, str(EXAMPLES / "test_pairwise.json")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _files(root: Path) -> list[Path]:
    return sorted(root.glob(f"*/*{SUFFIX}"))


def test_a_new_process_starts_from_the_kept_prefix_with_identical_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("ICRM_CACHE_DIR", str(tmp_path))
    first = _verdict_in_new_process()
    assert first["loaded"] == 0 and first["written"] == 1 and first["cached_tokens"] == 0
    assert len(_files(tmp_path / "prefix-states")) == 1
    second = _verdict_in_new_process()
    assert second["loaded"] == 1 and second["written"] == 0
    assert second["cached_tokens"] >= second["prompt_tokens"] - 2  # only the last chunk
    for key in ("verdict", "probabilities", "logprobs"):
        assert second[key] == first[key], key


def _runner(model: Path, store_root: Path | None, max_bytes: int = 2**30) -> LlamaRunner:
    store = None
    if store_root is not None:
        store = StateStore(store_root, state_identity(str(model)), max_bytes)
    return LlamaRunner(str(model), n_ctx=512, store=store)


def _numbers(runner: LlamaRunner, prompt: str = PROMPT) -> tuple[str, list]:
    """A greedy continuation and the choices' log-probabilities after ``prompt``."""
    text = runner.generate(prompt, max_new_tokens=4, sampling=Sampling()).text
    return text, runner.choice_logprobs(prompt, CHOICES)[0]


def _numbers_of_a_fresh_runner(model: Path, store_root: Path | None) -> tuple[tuple, StateStore]:
    runner = _runner(model, store_root)
    try:
        return _numbers(runner), runner.prefix_cache.store
    finally:
        runner.close()


@pytest.fixture(scope="module")
def model() -> Path:
    return default_weights()  # the file the default engine runs


@pytest.fixture(scope="module")
def reference(model) -> tuple:
    """The numbers computed with no state kept anywhere."""
    return _numbers_of_a_fresh_runner(model, None)[0]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_state_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1000] ^= 0x01
    path.write_bytes(bytes(data))


def _flip_a_late_token(path: Path) -> None:
    """A token past the first 64: the file still matches the prompt that far."""
    data = bytearray(path.read_bytes())
    (header,) = struct.unpack("<I", data[8:12])
    data[12 + header + 4 * 80] ^= 0x01
    path.write_bytes(bytes(data))


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a state at all")


@pytest.mark.parametrize("damage", [_truncate, _flip_a_state_byte, _flip_a_late_token, _garbage])
def test_a_damaged_state_file_is_recomputed_and_rewritten(tmp_path, model, reference, damage):
    _, store = _numbers_of_a_fresh_runner(model, tmp_path)
    (path,) = _files(tmp_path)
    damage(path)
    numbers, store = _numbers_of_a_fresh_runner(model, tmp_path)
    assert numbers == reference
    assert store.loaded == 0 and store.written == 1
    numbers, store = _numbers_of_a_fresh_runner(model, tmp_path)  # the rewritten file serves
    assert numbers == reference and store.loaded == 1


def test_a_state_of_another_prompt_is_not_used(tmp_path, model, reference):
    other = "Translate the sentence into French and explain each word you chose. " * 6
    runner = _runner(model, tmp_path)
    try:
        _numbers(runner, other)
    finally:
        runner.close()
    numbers, store = _numbers_of_a_fresh_runner(model, tmp_path)
    assert numbers == reference and store.loaded == 0


def test_a_state_of_another_model_file_is_not_used(tmp_path, reference):
    """A model file replaced in place (same path, new modification time), and the old
    model's state file copied over the new one's: neither is loaded."""
    copy = tmp_path / "model.gguf"
    shutil.copyfile(default_weights(), copy)
    states = tmp_path / "states"
    numbers, before = _numbers_of_a_fresh_runner(copy, states)
    assert numbers == reference and before.written == 1
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    numbers, after = _numbers_of_a_fresh_runner(copy, states)
    assert numbers == reference and after.loaded == 0 and after.written == 1
    (old,) = before.folder.glob(f"*{SUFFIX}")
    shutil.copy(old, after.folder / old.name)  # same tokens, so the same name
    numbers, again = _numbers_of_a_fresh_runner(copy, states)
    assert numbers == reference and again.loaded == 0


def test_the_kept_states_stay_within_their_bound(tmp_path, model):
    runner = _runner(model, None)
    try:
        states = []
        for topic in ("apples", "rivers", "clocks"):
            runner.generate(f"Facts about {topic}. " * 20, max_new_tokens=1, sampling=Sampling())
            with runner._slot() as slot:
                runner.kv.cut(slot, slot.chunked_len())
                states.append(runner.kv.save_state(slot))
    finally:
        runner.close()
    size = max(len(s.data) + 4 * len(s.tokens) for s in states)
    store = StateStore(tmp_path, {"model": "bound test"}, max_bytes=2 * size + size // 2)
    for age, state in enumerate(states):
        store.put(state)
        os.utime(store.path_for(state.tokens), (1000 + age, 1000 + age))
    kept = _files(tmp_path)
    assert kept == sorted(store.path_for(s.tokens) for s in states[1:])  # the oldest went
    assert sum(p.stat().st_size for p in kept) <= store.max_bytes


def test_two_writers_of_one_state_leave_one_whole_file(tmp_path, model):
    runner = _runner(model, None)
    try:
        runner.generate(PROMPT, max_new_tokens=1, sampling=Sampling())
        with runner._slot() as slot:
            runner.kv.cut(slot, slot.chunked_len())
            state = runner.kv.save_state(slot)
    finally:
        runner.close()
    identity = {"model": "writers test"}
    writers = [StateStore(tmp_path, identity, 2**30) for _ in range(4)]
    threads = [threading.Thread(target=w.put, args=(state,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (path,) = _files(tmp_path)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left
    loaded = StateStore(tmp_path, identity, 2**30).load(path)
    assert loaded is not None and loaded.data == state.data
    assert np.array_equal(loaded.tokens, state.tokens)


def test_the_disk_tier_turns_off_by_option_or_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ICRM_CACHE_DIR", str(tmp_path))
    backend = LocalBackend(LocalOptions(n_ctx=512, disk_cache_mib=0))
    try:
        assert backend.runner.prefix_cache.store is None
    finally:
        backend.shutdown()
    monkeypatch.setenv("ICRM_DISK_CACHE_MIB", "0")
    backend = LocalBackend(LocalOptions(n_ctx=512))
    try:
        assert backend.runner.prefix_cache.store is None
    finally:
        backend.shutdown()
    monkeypatch.setenv("ICRM_DISK_CACHE_MIB", "lots")
    with pytest.raises(EngineError, match="ICRM_DISK_CACHE_MIB must be a whole number"):
        LocalBackend(LocalOptions(n_ctx=512))
