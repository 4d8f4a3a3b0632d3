"""One eval run per output folder, and metrics that count each pair id once."""

import json
import subprocess
import time

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.metrics import compute_metrics
from icrm_sgl.evaluation.store import ResultStore
from tests.evaluation.test_eval_run import eval_cli, write_pairs


def test_a_second_eval_on_the_same_folder_is_refused(tmp_path):
    # The first run locks the folder before it imports sglang (seconds) and loads the
    # model: that alone outlasts the refused runs, which stop at the lock.
    src = write_pairs(tmp_path / "pairs.json", 2)
    out = tmp_path / "out"
    first = subprocess.Popen(
        eval_cli(str(src), "--output-dir", str(out)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = out / ".lock"
    deadline = time.time() + 120
    while time.time() < deadline and not (lock.exists() and lock.read_text().strip()):
        time.sleep(0.1)
    assert lock.read_text().strip() == str(first.pid)
    others = [
        subprocess.Popen(
            eval_cli(str(src), "--output-dir", str(out), *extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for extra in ([], ["--resume"], ["--overwrite"])
    ]
    for second in others:
        _, stderr = second.communicate(timeout=300)
        assert second.returncode == 2, stderr
        assert stderr.splitlines() == [
            f"error: output folder {out} is in use by another eval run (pid {first.pid}); "
            "wait for it to finish or pick another --output-dir"
        ]
    assert first.poll() is None, "the first run ended too soon for this test to mean anything"
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    ids = [json.loads(x)["id"] for x in (out / "results.jsonl").read_text().splitlines()]
    assert ids == ["p0", "p1"]
    assert json.loads((out / "metrics.json").read_text())["overall"]["n"] == 2


def test_the_lock_is_held_until_close(tmp_path):
    first = ResultStore(tmp_path)
    first.open({}, resume=False, overwrite=False)
    with pytest.raises(InputError, match="in use by another eval run"):
        ResultStore(tmp_path).lock()
    first.close()
    again = ResultStore(tmp_path)
    again.lock()
    again.close()


def test_metrics_count_each_pair_id_once():
    record = {
        "id": "p0",
        "subset": "s",
        "mode": "pairwise",
        "judgements": [{"order": "chosen_first", "choice": "A+", "error": None}],
        "margin": 1.0,
        "failed": False,
    }
    other = {**record, "id": "p1"}
    metrics = compute_metrics([record, other, record, dict(record)])
    assert metrics["n"] == 2
    assert metrics["overall"]["n"] == 2
    assert metrics["per_subset"]["s"]["n"] == 2
