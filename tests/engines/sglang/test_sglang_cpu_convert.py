"""The CPU sglang server's checkpoint conversion, as pytest-xdist workers meet it: several
processes asking for the checkpoint at once on an empty cache folder."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_two_conversions_at_once_on_an_empty_cache_both_succeed(tmp_path):
    """The second process waits for the first and finds its checkpoint (before the lock,
    the loser's rename raised 'Directory not empty')."""
    env = {**os.environ, "ICRM_CACHE_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "devtools.sglang_cpu.convert"]
    runs = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [(*run.communicate(timeout=600), run.returncode) for run in runs]
    for _, err, code in results:
        assert code == 0, err[-2000:]
    paths = {out.strip().splitlines()[-1] for out, _, _ in results}
    assert len(paths) == 1
    checkpoint = tmp_path / "smollm2-135m-hf-v1"
    assert paths == {str(checkpoint)}
    assert (checkpoint / "config.json").is_file()
    # Nothing half-written is left behind: only the checkpoint and its lock file.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".smollm2-135m-hf-v1.lock",
        "smollm2-135m-hf-v1",
    ]
