"""``icrm-sgl eval`` end to end on the real local engine, including a SIGKILLed run."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from icrm_sgl import ICRM
from icrm_sgl.evaluation.loaders import load_pairs
from icrm_sgl.evaluation.runner import Evaluator
from icrm_sgl.evaluation.store import ResultStore

QUESTIONS = [
    ("What is 3 + 4?", "7", "8"),
    ("Capital of France?", "Paris", "Lyon"),
    ("Plural of mouse?", "mice", "mouses"),
    ("Boiling point of water at sea level in C?", "100", "90"),
    ("Opposite of 'early'?", "late", "soon"),
    ("How many days in a leap year?", "366", "365"),
]


def write_pairs(path, n=None):
    records = []
    for i, (q, good, bad) in enumerate(QUESTIONS[:n]):
        user = {"role": "user", "content": q}
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        records.append(
            {
                "id": f"p{i}",
                "subset": "easy" if i < 3 else "hard",
                "conversation_A": [user, {"role": "assistant", "content": a}],
                "conversation_B": [user, {"role": "assistant", "content": b}],
                "label": "A" if i % 2 == 0 else "B",
            }
        )
    path.write_text(json.dumps(records))
    return path


FAST = ["--num-shots", "0", "--max-tokens", "15"]


def eval_cli(*args):
    return [sys.executable, "-m", "icrm_sgl.cli", "eval", *args, *FAST]


def test_eval_writes_results_metrics_and_chart(tmp_path, run_cli):
    src = write_pairs(tmp_path / "pairs.json", 3)
    out = tmp_path / "out"
    proc = run_cli("eval", src, "--output-dir", out, *FAST)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["p0", "p1", "p2"]
    for r in records:
        assert [j["order"] for j in r["judgements"]] == ["chosen_first", "rejected_first"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"]["n"] == 3
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "easy" in proc.stdout


def test_sigkill_then_resume_judges_every_pair_exactly_once(tmp_path):
    src = write_pairs(tmp_path / "pairs.json")
    out = tmp_path / "out"
    results = out / "results.jsonl"
    proc = subprocess.Popen(
        eval_cli(str(src), "--output-dir", str(out), "--orders", "ab"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        if results.exists() and len(results.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = [json.loads(line)["id"] for line in results.read_text().splitlines() if line]
    assert 2 <= len(before) < len(QUESTIONS)
    again = subprocess.run(
        eval_cli(str(src), "--output-dir", str(out), "--orders", "ab", "--resume"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert f"resuming: {len(before)} pairs already judged" in again.stderr
    ids = [json.loads(line)["id"] for line in results.read_text().splitlines()]
    assert Counter(ids) == Counter(f"p{i}" for i in range(len(QUESTIONS)))


def test_cache_reuses_verdicts_and_keys_on_order(local_backend, tmp_path):
    pairs = load_pairs(str(write_pairs(tmp_path / "pairs.json", 2)))
    model = ICRM(
        rm_type="pairwise",
        num_shots=0,
        backend=local_backend,
        use_cache=True,
        cache_dir=str(tmp_path / "cache"),
    )
    first = ResultStore(tmp_path / "run1")
    first.open({}, resume=False, overwrite=False)
    Evaluator(model, max_tokens=15).run(pairs, first, progress=False)
    second = ResultStore(tmp_path / "run2")
    second.open({}, resume=False, overwrite=False)
    Evaluator(model, max_tokens=15).run(pairs, second, progress=False)
    a, b = first.records(), second.records()

    def choices(records):
        return [[(j["order"], j["choice"]) for j in r["judgements"]] for r in records]

    assert choices(a) == choices(b)
    # a hit keeps its meta: the probabilities come back with the verdict
    assert all("probabilities" in j for r in a for j in r["judgements"])
    assert [r["judgements"] for r in a] == [r["judgements"] for r in b]
    assert all(r["meta"]["cache_hits"] == 0 for r in a)
    assert all(r["meta"]["cache_hits"] == 2 for r in b)
    assert all(r["meta"]["prompt_tokens"] == 0 for r in b)  # nothing spent again
    ab_only = ResultStore(tmp_path / "run3")
    ab_only.open({}, resume=False, overwrite=False)
    Evaluator(model, orders="alternate", max_tokens=15).run(pairs, ab_only, progress=False)
    assert [len(r["judgements"]) for r in ab_only.records()] == [1, 1]
    assert [r["judgements"][0]["order"] for r in ab_only.records()] == [
        "chosen_first",
        "rejected_first",
    ]


def test_ctrl_c_during_eval_prints_no_traceback_from_the_program_threads(tmp_path):
    """The batch's program threads stop at their next token (their verdicts would not be
    saved) and fail quietly; the process ends well before the pairs in flight could have
    been judged (it used to wait for them: 11.8 s after Ctrl-C here, idle)."""
    src = write_pairs(tmp_path / "pairs.json")
    out = tmp_path / "out"
    results = out / "results.jsonl"
    cmd = eval_cli(str(src), "--output-dir", str(out), "--concurrency", "2", "--orders", "ab")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (results.exists() and results.read_text().strip()):
        time.sleep(0.1)
    first_pair_s = time.monotonic() - started
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    stop_s = time.monotonic() - started - first_pair_s
    print(f"first pair saved after {first_pair_s:.1f} s; stopped {stop_s:.1f} s after Ctrl-C")
    assert stop_s < first_pair_s / 2, (first_pair_s, stop_s)
    assert proc.returncode == 130, stderr
    assert "Error in stream_executor" not in stderr and "Traceback" not in stderr, stderr
    assert stderr.rstrip().splitlines()[-1] == "interrupted"
    assert (out / "report.html").stat().st_size > 0  # the page of what was saved
