"""The sglang engine through sglang's router, with two real sglang servers on the CPU.

The engine launches both workers and the router itself (``num_workers=2``), the same
path a GPU user takes. Slow: two CPU servers start together (~2 min on two cores).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.routes import per_worker, recorded_routes, workers_per_key
from devtools.sglang_cpu import cpu_engine_options
from devtools.tricky import tricky_pairwise
from icrm_sgl import ICRM
from icrm_sgl.engines import create_engine
from icrm_sgl.schemas import CHOICES, validate_verdict
from tests.conftest import ROOT

pytestmark = [pytest.mark.sglang_server, pytest.mark.slow]


@pytest.fixture(scope="module")
def routed_backend():
    """Two workers and the router, launched after the CLI test's own are gone."""
    backend = create_engine("sglang", **cpu_engine_options(num_workers=2))
    yield backend
    backend.shutdown()


def test_cli_eval_launches_two_workers_and_leaves_nothing_behind(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({**ex, "label": "A"}) + "\n" for ex in tricky_pairwise(3)))
    opts = cpu_engine_options(num_workers=2)
    engine_args = [
        "--model", opts["model_name"], "-E", "num_workers=2", "-E", "device=cpu",
        "-E", "server_args=" + " ".join(opts["server_args"]),
        "-E", "server_env=" + ",".join(f"{k}={v}" for k, v in opts["server_env"].items()),
    ]  # fmt: skip
    log = tmp_path / "fleet.log"
    done = subprocess.run(
        [sys.executable, "-m", "icrm_sgl.cli", "eval", str(data), "--engine", "sglang",
         *engine_args, "-E", f"log_path={log}", "--num-shots", "1", "--max-tokens", "20",
         "--output-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["overall"]["n"] == 3
    logs = [log, Path(f"{log}.worker0"), Path(f"{log}.worker1")]
    assert all(p.stat().st_size > 0 for p in logs)
    assert writers_of(logs) == [], "a worker or the router outlived the run"


def test_launch_starts_two_workers_behind_the_router(routed_backend):
    group = routed_backend.server
    assert len(group.members) == 3 and all(m.proc.poll() is None for m in group.members)
    assert sorted(routed_backend.workers) == sorted(m.url for m in group.members[1:])
    assert routed_backend.dp_size == 1  # the router has no /server_info


def test_batch_through_router_is_valid_and_each_verdict_stays_on_one_worker(routed_backend):
    model = ICRM(rm_type="pairwise", engine="sglang", backend=routed_backend, num_shots=1)
    with recorded_routes() as routes:
        results = list(model.judge_batch(tricky_pairwise(8), max_tokens=20, num_threads=4))
    assert [r.error for r in results if not r.ok] == []
    for r in results:
        validate_verdict("pairwise", r.verdict)
        assert set(r.meta["probabilities"]) == set(CHOICES)
    spread = workers_per_key(routes)
    assert len(spread) == 8 and all("" not in w for w in spread.values())
    assert all(len(w) == 1 for w in spread.values()), spread
    workers = per_worker(routes)
    print("per worker:", json.dumps(workers))
    assert set(workers) <= set(routed_backend.workers)
    assert all(w["cached_share"] > 0.8 for w in workers.values()), workers


def writers_of(paths: list[Path]) -> list[int]:
    """Processes that still hold one of ``paths`` open (a launched server's log)."""
    targets = {str(p.resolve()) for p in paths}
    pids = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(str(fd.resolve()) in targets for fd in fd_dir.iterdir()):
                pids.append(int(fd_dir.parent.name))
        except OSError:
            continue  # the process ended while we looked
    return pids
