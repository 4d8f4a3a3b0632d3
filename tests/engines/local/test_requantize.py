"""The packaged Q4_1 model runs as a Q8_0 copy made once in the cache folder: made on first
use, found afterwards, made once when processes ask at once, remade when it is not a GGUF,
and a cache folder it cannot be written in is one clear error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from icrm_sgl.engines.local.gguf import default_model_path
from icrm_sgl.engines.local.llama_adapter import GgufModel
from icrm_sgl.engines.local.requantize import MODELS_FOLDER, default_weights
from icrm_sgl.errors import EngineError
from tests.conftest import ROOT

#: llama.cpp's ``general.file_type`` of a mostly-Q8_0 and a mostly-Q4_1 file.
Q8_0, Q4_1 = "7", "3"


def file_type(path) -> str:
    return GgufModel(str(path), vocab_only=True).metadata["general.file_type"]


def test_the_copy_is_q8_0_made_once_and_found_afterwards(tmp_path, monkeypatch):
    monkeypatch.setenv("ICRM_CACHE_DIR", str(tmp_path))
    path = default_weights()
    assert path.parent == tmp_path / MODELS_FOLDER
    assert (file_type(default_model_path()), file_type(path)) == (Q4_1, Q8_0)
    made = path.stat().st_mtime_ns
    assert default_weights() == path and path.stat().st_mtime_ns == made
    assert sorted(p.name for p in path.parent.iterdir()) == [".requantize.lock", path.name]


def test_a_copy_that_is_not_a_gguf_and_an_earlier_sources_copy_are_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("ICRM_CACHE_DIR", str(tmp_path))
    folder = tmp_path / MODELS_FOLDER
    folder.mkdir()
    stale = folder / "SmolLM2-135M-Instruct.Q8_0-000000000000.gguf"
    stale.write_bytes(b"GGUF")
    path = default_weights()
    path.write_bytes(b"half a file")
    assert default_weights() == path and file_type(path) == Q8_0
    assert not stale.exists()


def test_two_processes_on_an_empty_cache_get_the_same_copy(tmp_path):
    env = {**os.environ, "ICRM_CACHE_DIR": str(tmp_path)}
    code = "from icrm_sgl.engines.local.requantize import default_weights as w; print(w())"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]  # fmt: skip
    results = [(*p.communicate(timeout=300), p.returncode) for p in procs]
    assert [code for _, _, code in results] == [0, 0], results
    paths = {out.strip() for out, _, _ in results}
    assert len(paths) == 1
    assert sorted(p.name for p in (tmp_path / MODELS_FOLDER).iterdir()) == [
        ".requantize.lock",
        os.path.basename(paths.pop()),
    ]


def test_a_cache_folder_that_cannot_hold_the_copy_is_one_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ICRM_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(EngineError) as err:
        default_weights()
    message = str(err.value)
    assert message.startswith("cannot write the Q8_0 copy of the default model in ")
    assert message.endswith(": set ICRM_CACHE_DIR to a writable folder")
    assert "\n" not in message
