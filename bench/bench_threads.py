"""A cold verdict's time per llama.cpp thread setting, with the cores idle and busy.

Run from the repository root::

    python bench/bench_threads.py [--max-tokens 40] [--repeats 1] [--out bench/results/threads.json]

Each setting runs in a fresh process (libgomp reads its environment once, when llama.cpp
is loaded), with an empty ``$ICRM_CACHE_DIR`` so nothing is loaded from disk: it loads the
engine and judges the quick-start pairwise example (``examples/test_pairwise.json``, 3
shots) once. "busy" starts one ``while True: pass`` loop per core beside it (each ends by
itself after ``--busy-limit`` seconds and is killed when the run ends), as another
process on shared cores would. Settings run interleaved, so slow drift in the machine's
other load hits them alike. A table goes to stdout, every figure and the load averages
to ``--out`` (JSON).

``today`` is the engine's former default (every core, libgomp's default spin of 300,000
before a waiting thread sleeps); ``default`` is whatever the engine does now without any
setting. The brief: ``default`` busy within 1.3x of the better of ``today`` and ``1``,
idle within 1.1x of ``today``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "test_pairwise.json"
#: Variables that steer llama.cpp's threads; a worker sees only the ones its setting sets.
THREAD_VARS = ("ICRM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def settings() -> dict[str, dict[str, str]]:
    """Setting name → the environment variables it sets."""
    n = str(cores())
    return {
        "today": {"ICRM_THREADS": n, "GOMP_SPINCOUNT": "300000"},
        "1": {"ICRM_THREADS": "1"},
        "passive": {"ICRM_THREADS": n, "OMP_WAIT_POLICY": "PASSIVE"},
        "spin 10k": {"ICRM_THREADS": n, "GOMP_SPINCOUNT": "10000"},
        "default": {},
    }


def worker(max_tokens: int) -> dict[str, Any]:
    """One cold verdict in this process: load seconds, verdict seconds, the verdict."""
    start = time.perf_counter()
    from icrm_sgl.judging.icrm import ICRM

    model = ICRM(rm_type="pairwise", num_shots=3)
    loaded = time.perf_counter()
    try:
        example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
        (result,) = model.judge_batch([example], num_threads=1, max_tokens=max_tokens)
        done = time.perf_counter()
        threads = model.backend.runner.n_threads
    finally:
        model.close()
    return {
        "load_s": loaded - start,
        "verdict_s": done - loaded,
        "threads": threads,
        "ok": result.ok,
        "choice": (result.verdict or {}).get("choice"),
    }


def run_worker(env_vars: dict[str, str], max_tokens: int, timeout: float) -> dict[str, Any]:
    """``worker`` in a fresh process with exactly ``env_vars`` among ``THREAD_VARS``."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    with tempfile.TemporaryDirectory(prefix="icrm-bench-threads-") as cache:
        env.update(env_vars, ICRM_CACHE_DIR=cache)
        command = [sys.executable, __file__, "--worker", "--max-tokens", str(max_tokens)]
        load = os.getloadavg()
        try:
            proc = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return {"timed_out": True, "timeout_s": timeout, "load_average_start": load}
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**row, "load_average_start": load, "load_average_end": os.getloadavg()}


def start_busy_loops(limit_s: float) -> list[subprocess.Popen]:
    """One spinning process per core, each ending by itself after ``limit_s`` seconds."""
    loop = f"import time\nend = time.monotonic() + {limit_s}\nwhile time.monotonic() < end: pass"
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(cores())]


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
        proc.wait()


def measure(args: argparse.Namespace, names: list[str]) -> dict[str, dict[str, list]]:
    """Every setting's runs, idle then busy, interleaved setting by setting."""
    table = settings()
    runs: dict[str, dict[str, list]] = {name: {"idle": [], "busy": []} for name in names}
    for condition in ("idle", "busy"):
        for rep in range(args.repeats):
            for name in names:
                print(f"{condition} {rep + 1}/{args.repeats}: {name} ...", file=sys.stderr)
                busy = start_busy_loops(args.busy_limit) if condition == "busy" else []
                try:
                    row = run_worker(table[name], args.max_tokens, args.timeout)
                finally:
                    stop(busy)
                runs[name][condition].append(row)
    return runs


def median_seconds(rows: list[dict[str, Any]]) -> float | None:
    """Median verdict seconds; a timed-out run counts as its timeout (a lower bound)."""
    values = [r.get("verdict_s", r.get("timeout_s")) for r in rows]
    return statistics.median(values) if values else None


def summarise(runs: dict[str, dict[str, list]]) -> dict[str, dict[str, Any]]:
    medians = {n: {c: median_seconds(r[c]) for c in r} for n, r in runs.items()}
    best_busy = min(
        (medians[n]["busy"] for n in ("today", "1") if n in medians and medians[n]["busy"]),
        default=None,
    )
    today_idle = medians.get("today", {}).get("idle")
    out = {}
    for name, m in medians.items():
        out[name] = {
            "idle_s": m["idle"],
            "busy_s": m["busy"],
            "busy_over_best": m["busy"] / best_busy if m["busy"] and best_busy else None,
            "idle_over_today": m["idle"] / today_idle if m["idle"] and today_idle else None,
            "threads": next((r["threads"] for r in runs[name]["idle"] if "threads" in r), None),
            "timed_out": sum(r.get("timed_out", False) for c in runs[name].values() for r in c),
        }
    return out


def fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def print_table(result: dict[str, Any]) -> None:
    s = result["settings"]
    print(
        f"\ncold pairwise verdict, 3 shots, max_tokens {s['max_tokens']}, {s['cores']} cores, "
        f"median of {s['repeats']}; busy = one spinning process per core"
    )
    heads = ("threads", 7), ("idle s", 8), ("busy s", 8), ("busy/best", 9), ("idle/today", 10)
    print(f"{'setting':<10} " + " ".join(f"{h:>{w}}" for h, w in heads))
    for name, row in result["summary"].items():
        print(
            f"{name:<10} {fmt(row['threads'], 'd'):>7} {fmt(row['idle_s'], '.2f'):>8} "
            f"{fmt(row['busy_s'], '.2f'):>8} {fmt(row['busy_over_best'], '.2f'):>9} "
            f"{fmt(row['idle_over_today'], '.2f'):>10}"
            + (f"  ({row['timed_out']} timed out)" if row["timed_out"] else "")
        )
    print(f"load average at start {result['load_average_start']}, end {result['load_average_end']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=40, help="verdict token budget")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--settings", nargs="+", default=list(settings()), choices=list(settings()))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--busy-limit", type=float, default=600.0, help="a busy loop's life, s")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "threads.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.max_tokens)))
        return 0
    start = os.getloadavg()
    runs = measure(args, args.settings)
    result = {
        "settings": {
            "max_tokens": args.max_tokens,
            "repeats": args.repeats,
            "cores": cores(),
            "environments": {n: settings()[n] for n in args.settings},
        },
        "summary": summarise(runs),
        "runs": runs,
        "load_average_start": start,
        "load_average_end": os.getloadavg(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_table(result)
    print(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
