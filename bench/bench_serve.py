"""Load test of ``icrm-sgl serve`` on loopback, against ``judge_batch`` in one process.

Run from the repository root::

    python bench/bench_serve.py [--requests 200] [--clients 16] [--max-tokens 16]
                                [--time-limit 900] [--out bench/results/serve.json]

1. Starts the server (local engine, packaged SmolLM2, 1 shot, individual mode) on a free
   127.0.0.1 port, in its own process group.
2. ``--clients`` threads send ``--requests`` one-example requests between them (each
   request is sent once; none is sent after ``--time-limit`` seconds). Every reply is
   checked: a 200 must carry a valid verdict; any other status must be a JSON error (a
   counted error). A few extra clients send a request and hang up at once.
3. Checks that the server is still healthy, that its /metrics count every request, and
   stops it with SIGTERM (exit code and time recorded).
4. Judges the same examples with ``ICRM.judge_batch`` in this process (same model,
   settings and batch size), after the server is gone so the two never share the CPU.

Prints a table and writes every figure to ``--out``. This is a benchmark, not a test: it
takes minutes, and on a shared machine its timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_local import FURTHER  # noqa: E402
from icrm_sgl.engines.server_process import free_port, serve  # noqa: E402
from icrm_sgl.judges import default_judge  # noqa: E402

DISCONNECTING_CLIENTS = 3


def examples() -> list[dict[str, Any]]:
    """Two individual examples (a good and a poor reply) per question of bench_local."""
    out = []
    for question, good, poor in FURTHER:
        for reply in (good, poor):
            turns = [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
            out.append({"conversation": turns})
    return out


def quantile(values: list[float], q: float) -> float:
    """The q-quantile of sorted ``values`` by the nearest-rank method."""
    index = min(len(values) - 1, max(0, round(q * len(values) + 0.5) - 1))
    return values[index]


def latency_summary(seconds: list[float]) -> dict[str, float | None]:
    ordered = sorted(seconds)
    if not ordered:
        return {"p50": None, "p95": None, "max": None}
    return {
        "p50": round(quantile(ordered, 0.5), 3),
        "p95": round(quantile(ordered, 0.95), 3),
        "max": round(ordered[-1], 3),
    }


def one_request(url: str, example: dict[str, Any], index: int) -> dict[str, Any]:
    """Send one request; the outcome says whether it was answered correctly, once."""
    started = time.perf_counter()
    try:
        reply = requests.post(f"{url}/v1/judge", json={"id": str(index), **example}, timeout=600)
    except requests.RequestException as exc:
        return {"index": index, "status": None, "error": str(exc), "seconds": None}
    seconds = time.perf_counter() - started
    outcome: dict[str, Any] = {"index": index, "status": reply.status_code, "seconds": seconds}
    try:
        body = reply.json()
    except ValueError:
        return {**outcome, "error": "reply is not JSON"}
    if reply.status_code != 200:
        return {**outcome, "error": body.get("error", "no error message")}
    if body.get("id") != str(index):
        return {**outcome, "error": f"answer for {body.get('id')!r}"}
    if "verdict" not in body:
        return {**outcome, "error": f"judge error: {body.get('error')}"}
    try:
        default_judge("individual").validate(body["verdict"])
    except ValueError as exc:
        return {**outcome, "error": f"INVALID VERDICT: {exc}"}
    return outcome


def hang_up(url: str, example: dict[str, Any]) -> None:
    """Send a whole request, then close the connection before the answer."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(example).encode()
    head = (
        f"POST /v1/judge HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + body)
        time.sleep(0.5)


def load(url: str, pool: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Send ``args.requests`` requests from ``args.clients`` threads, within the time limit."""
    stop_at = time.monotonic() + args.time_limit
    outcomes: list[dict[str, Any]] = []
    lock = threading.Lock()
    counter = iter(range(args.requests))

    def client() -> None:
        for index in counter:  # a shared iterator: each request index is sent once
            if time.monotonic() > stop_at:
                return
            result = one_request(url, pool[index % len(pool)], index)
            with lock:
                outcomes.append(result)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.clients + DISCONNECTING_CLIENTS) as workers:
        clients = [workers.submit(client) for _ in range(args.clients)]
        time.sleep(2.0)
        hangups = [workers.submit(hang_up, url, pool[i]) for i in range(DISCONNECTING_CLIENTS)]
        for future in [*clients, *hangups]:
            future.result()
    wall = time.perf_counter() - started
    return {"outcomes": outcomes, "wall_seconds": wall}


def scrape(url: str) -> dict[str, float]:
    text = requests.get(f"{url}/metrics", timeout=30).text
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in pairs}


def serve_run(pool: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, "-m", "icrm_sgl.cli", "serve", "--port", str(port)]
    cmd += ["--rm-type", "individual", "--num-shots", str(args.num_shots)]
    cmd += ["--max-tokens", str(args.max_tokens)]
    cmd += ["--max-batch", str(args.max_batch), "--max-queue", "256", "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if k != "ICRM_API_KEY"}
    server = serve(cmd, port, timeout=300, name="icrm-sgl serve", env=env)
    try:
        run = load(server.url, pool, args)
        time.sleep(1.0)  # the hung-up requests finish in the engine
        health = requests.get(f"{server.url}/health", timeout=30)
        metrics = scrape(server.url)
        os.kill(server.proc.pid, signal.SIGTERM)
        signalled = time.monotonic()
        code = server.proc.wait(timeout=120)
        exit_seconds = time.monotonic() - signalled
    finally:
        server.stop(grace=10)
    return {
        **run,
        "health": {"status_code": health.status_code, **health.json()},
        "metrics": metrics,
        "exit_code": code,
        "exit_seconds": round(exit_seconds, 2),
        "log_path": server.log_path,
    }


def baseline_run(pool: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The same examples, ``max_batch`` at a time, through ``judge_batch`` in-process."""
    from icrm_sgl.judging.icrm import ICRM

    todo = [{"id": str(i), **pool[i % len(pool)]} for i in range(args.served)]
    seconds, failed = [], 0
    with ICRM(rm_type="individual", num_shots=args.num_shots) as model:
        started = time.perf_counter()
        for first in range(0, len(todo), args.max_batch):
            batch_started = time.perf_counter()
            for result in model.judge_batch(
                todo[first : first + args.max_batch], max_tokens=args.max_tokens
            ):
                seconds.append(time.perf_counter() - batch_started)
                failed += not result.ok
        wall = time.perf_counter() - started
    return {
        "examples": len(todo),
        "failed": failed,
        "wall_seconds": round(wall, 2),
        "examples_per_second": round(len(todo) / wall, 3),
        "latency_in_batch": latency_summary(seconds),
    }


def summarise(run: dict[str, Any]) -> dict[str, Any]:
    outcomes = run["outcomes"]
    indices = [o["index"] for o in outcomes]
    ok = [o for o in outcomes if o.get("error") is None]
    errors: dict[str, int] = {}
    for o in outcomes:
        if o.get("error") is not None:
            key = f"{o['status']}: {o['error'][:60]}"
            errors[key] = errors.get(key, 0) + 1
    metrics = run["metrics"]
    counted = sum(
        v
        for k, v in metrics.items()
        if k.startswith("icrm_http_requests_total{") and 'endpoint="/v1/judge"' in k
    )
    return {
        "requests_sent": len(outcomes),
        "answered_once": len(indices) == len(set(indices)) and all(o["status"] for o in outcomes),
        "verdicts": len(ok),
        "errors": errors,
        "invalid_verdicts": sum("INVALID" in (o.get("error") or "") for o in outcomes),
        "server_counted_requests": counted,
        "disconnecting_clients": DISCONNECTING_CLIENTS,
        "requests_per_second": round(len(outcomes) / run["wall_seconds"], 3),
        "wall_seconds": round(run["wall_seconds"], 2),
        "latency": latency_summary([o["seconds"] for o in ok]),
        "healthy_after": run["health"]["status_code"] == 200 and run["health"]["status"] == "ok",
        "cached_token_share": round(metrics.get("icrm_cached_token_share", 0.0), 4),
        "sigterm_exit_code": run["exit_code"],
        "sigterm_exit_seconds": run["exit_seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=16, help="verdict token budget")
    parser.add_argument("--num-shots", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=900.0, help="stop sending after")
    parser.add_argument(
        "--baseline-examples", type=int, default=None, help="default: as many as were sent"
    )
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "serve.json"))
    args = parser.parse_args(argv)
    pool = examples()

    print(f"server: {args.requests} requests from {args.clients} clients ...", file=sys.stderr)
    served = summarise(serve_run(pool, args))
    args.served = args.baseline_examples or served["requests_sent"]
    print(f"baseline: {args.served} examples through judge_batch ...", file=sys.stderr)
    baseline = baseline_run(pool, args)
    report = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "load_average_after": os.getloadavg(),
        "server": served,
        "judge_batch": baseline,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    ok = served["answered_once"] and not served["invalid_verdicts"] and served["healthy_after"]
    # 143 (128 + SIGTERM) is what every icrm-sgl command exits with on SIGTERM; uvicorn
    # may re-raise the signal after draining (-15).
    return 0 if ok and served["sigterm_exit_code"] in (0, 143, -signal.SIGTERM) else 1


if __name__ == "__main__":
    sys.exit(main())
