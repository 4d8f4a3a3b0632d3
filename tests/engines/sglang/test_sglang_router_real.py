"""The sglang engine through sglang's router (smg), with real sglang servers on the CPU.

The slow tests launch two workers and the router through the engine (``num_workers=2``),
the same path a GPU user takes: two CPU servers start together (~2 min on two cores). The
busy-worker test puts the session's one server behind a router it starts itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devtools.routes import per_worker, recorded_routes, served, workers_per_key
from devtools.sglang_cpu import cpu_engine_options
from devtools.tricky import tricky_pairwise
from icrm_sgl import ICRM
from icrm_sgl.engines import create_engine
from icrm_sgl.engines.retry import poll_until
from icrm_sgl.engines.server_process import ServerProcess
from icrm_sgl.engines.sglang.router import router_workers, spawn_router, wait_for_workers
from icrm_sgl.judges import default_judge
from icrm_sgl.judges.verdicts import CHOICES
from tests.conftest import ROOT

pytestmark = pytest.mark.sglang_server

#: smg health checks that notice a stopped worker within seconds and readmit it after one
#: good check. sglang's /health generates a token: a check takes a second or more, and
#: several on a loaded CPU, when a shorter timeout evicts a worker that is only busy.
FAST_HEALTH = ["--health-check-interval-secs", "1", "--health-check-timeout-secs", "10",
               "--health-failure-threshold", "1", "--health-success-threshold", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def routed_backend():
    """Two workers and the router, launched after the CLI test's own are gone."""
    backend = create_engine("sglang", **cpu_engine_options(num_workers=2))
    yield backend
    backend.shutdown()


@pytest.mark.slow
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


@pytest.mark.slow
def test_launch_starts_two_workers_behind_the_router(routed_backend):
    group = routed_backend.server
    assert len(group.members) == 3 and all(m.proc.poll() is None for m in group.members)
    assert sorted(routed_backend.workers) == sorted(m.url for m in group.members[1:])
    assert routed_backend.dp_size == 1  # the router has no /server_info


@pytest.mark.slow
def test_batch_through_router_is_valid_and_each_verdict_stays_on_one_worker(routed_backend):
    model = ICRM(rm_type="pairwise", engine="sglang", backend=routed_backend, num_shots=1)
    with recorded_routes() as routes:
        results = list(model.judge_batch(tricky_pairwise(8), max_tokens=20, num_threads=4))
    assert [r.error for r in results if not r.ok] == []
    for r in results:
        default_judge("pairwise").validate(r.verdict)
        assert set(r.meta["probabilities"]) == set(CHOICES)
    spread = workers_per_key(routes)
    assert len(spread) == 8 and all("" not in w for w in spread.values())
    assert all(len(w) == 1 for w in spread.values()), spread
    workers = per_worker(routes)
    print("per worker:", json.dumps(workers))
    assert set(workers) <= set(routed_backend.workers)
    assert all(w["cached_share"] > 0.8 for w in workers.values()), workers


def test_a_batch_meeting_a_stopped_worker_behind_a_real_router_is_retried_and_valid(
    sglang_backend, tmp_path
):
    """The session's sglang server behind a real smg router. The worker is stopped (SIGSTOP
    on its process group) until the router marks it unhealthy; a batch starts, the router
    refuses its requests (503 no_available_workers), the worker resumes, and the engine's
    retries bring every verdict back valid."""
    router = spawn_router(sys.executable, [sglang_backend.base_url], "consistent_hashing",
                          True, None, FAST_HEALTH, str(tmp_path / "router.log"))  # fmt: skip
    try:
        router.wait_ready(60, "/health", {}, "router")
        wait_for_workers(router, 1, {}, 120)
        model = ICRM(rm_type="pairwise", engine="sglang", endpoint=router.url, num_shots=1)
        with recorded_routes() as routes, ThreadPoolExecutor(1) as pool:
            with stopped(sglang_backend.server) as resume:
                poll_until(lambda _: healthy_workers(router), lambda n: n == 0, 60, still_healthy)
                batch = pool.submit(
                    lambda: list(model.judge_batch(tricky_pairwise(2), max_tokens=20))
                )
                poll_until(lambda _: refused(routes), bool, 120, never_refused)
                resume()
            resumed = time.monotonic()
            results = batch.result(timeout=600)
            print(f"batch done {time.monotonic() - resumed:.1f} s after the worker resumed")
        model.close()
    finally:
        router.stop()
    assert [r.error for r in results if not r.ok] == []
    for r in results:
        default_judge("pairwise").validate(r.verdict)
    assert sglang_backend.server.proc.poll() is None
    busy = refused(routes)
    assert busy and all(r.status == 503 for r in busy)
    assert {r.key for r in busy} <= {r.key for r in served(routes)}, "a refused verdict retried"
    per_key = {k: sum(r.key == k for r in busy) for k in {r.key for r in busy}}
    print(f"{len(busy)} requests refused while the worker was stopped, all retried: {per_key}")


@contextlib.contextmanager
def stopped(server: ServerProcess) -> Iterator:
    """The server's process group stopped until ``resume()`` or the block's end."""
    os.killpg(server.proc.pid, signal.SIGSTOP)

    def resume() -> None:
        os.killpg(server.proc.pid, signal.SIGCONT)

    try:
        yield resume
    finally:
        resume()


def healthy_workers(router: ServerProcess) -> int:
    """How many workers the router lists as healthy."""
    return sum(w.get("is_healthy", True) for w in router_workers(router.url, {}, 10) or [])


def still_healthy(count: int) -> AssertionError:
    return AssertionError(f"the router still lists {count} healthy worker(s)")


def never_refused(_: list) -> AssertionError:
    return AssertionError("the router refused no request while its worker was stopped")


def refused(routes) -> list:
    """The ``/generate`` answers that were not a 200."""
    return [r for r in routes if r.status != 200]


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
