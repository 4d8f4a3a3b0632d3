"""The first verdict of a process: cold, warm from the prefix state kept on disk, and warm
in-process, on the quick-start pairwise example (3 shots).

Run from the repository root::

    python bench/bench_first_verdict.py [--max-tokens 100] [--out bench/results/first_verdict.json]

Three processes share one empty ``$ICRM_CACHE_DIR``, one after the other:

A. judges X (``examples/test_pairwise.json``) cold, writing its prefix state to disk;
   then Y (another pairwise example) and X again, warm in-process;
B. a new process judges X, starting from A's state on disk (a second ``icrm-sgl score``);
C. a new process judges Y, sharing the shots prefix of A's state.

B and C are compared with A's in-process warm verdicts of the same examples (the target:
within 1.3x) and must give the same verdicts and probabilities. Every process's verdict
seconds (model load excluded), prompt tokens evaluated, time spent writing / loading the
state, the state file's size and the load averages go to ``--out`` (JSON); a table to
stdout. ``--threads`` sets ``ICRM_THREADS`` for all three (default: the engine's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_local import FURTHER, first_example, pairwise_example

REPO = Path(__file__).resolve().parents[1]


class Meter:
    """Calls and seconds of one instance's method."""

    def __init__(self, owner: Any, name: str) -> None:
        self.calls, self.seconds = 0, 0.0
        original = getattr(owner, name)

        def metered(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - start

        setattr(owner, name, metered)


def examples() -> dict[str, dict[str, Any]]:
    return {"X": first_example(), "Y": pairwise_example(*FURTHER[0])}


def worker(names: list[str], max_tokens: int) -> dict[str, Any]:
    """Judge ``names`` in order in this process; one row per verdict."""
    start = time.perf_counter()
    from icrm_sgl.judging.icrm import ICRM

    model = ICRM(rm_type="pairwise", num_shots=3)
    load_s = time.perf_counter() - start
    store = model.backend.runner.prefix_cache.store
    writes, loads = Meter(store, "put"), Meter(store, "load")
    rows = []
    try:
        for name in names:
            w, r = writes.seconds, loads.seconds
            begin = time.perf_counter()
            (result,) = model.judge_batch([examples()[name]], num_threads=1, max_tokens=max_tokens)
            meta = result.meta
            rows.append(
                {
                    "example": name,
                    "seconds": time.perf_counter() - begin,
                    "ok": result.ok,
                    "verdict": result.verdict,
                    "probabilities": meta.get("probabilities"),
                    "prompt_tokens": meta.get("prompt_tokens"),
                    "evaluated_tokens": (meta.get("prompt_tokens") or 0)
                    - (meta.get("cached_tokens") or 0),
                    "state_write_s": writes.seconds - w,
                    "state_load_s": loads.seconds - r,
                }
            )
        threads = model.backend.runner.n_threads
    finally:
        model.close()
    return {"load_s": load_s, "threads": threads, "rows": rows}


def run_worker(names: list[str], args: argparse.Namespace, cache: str) -> dict[str, Any]:
    env = {**os.environ, "ICRM_CACHE_DIR": cache}
    env.pop("ICRM_DISK_CACHE_MIB", None)
    if args.threads is not None:
        env["ICRM_THREADS"] = str(args.threads)
    command = [sys.executable, __file__, "--worker", *names, "--max-tokens", str(args.max_tokens)]
    load = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        **out,
        "process_s": time.perf_counter() - start,
        "load_average_start": load,
        "load_average_end": os.getloadavg(),
    }


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["verdict"] == b["verdict"] and a["probabilities"] == b["probabilities"]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="icrm-bench-first-") as cache:
        print("A: X cold, Y and X warm in-process ...", file=sys.stderr, flush=True)
        a = run_worker(["X", "Y", "X"], args, cache)
        print("B: X warm from disk ...", file=sys.stderr, flush=True)
        b = run_worker(["X"], args, cache)
        print("C: Y warm from disk ...", file=sys.stderr, flush=True)
        c = run_worker(["Y"], args, cache)
        files = list(Path(cache).glob("prefix-states/*/*.kvstate"))
        state_bytes = sum(p.stat().st_size for p in files)
    cold, warm_y, warm_x = a["rows"]
    (disk_x,), (disk_y,) = b["rows"], c["rows"]
    return {
        "processes": {"A": a, "B": b, "C": c},
        "state_files": len(files),
        "state_bytes": state_bytes,
        "summary": {
            "cold_x_s": cold["seconds"],
            "warm_x_s": warm_x["seconds"],
            "disk_x_s": disk_x["seconds"],
            "disk_over_warm_x": disk_x["seconds"] / warm_x["seconds"],
            "warm_y_s": warm_y["seconds"],
            "disk_y_s": disk_y["seconds"],
            "disk_over_warm_y": disk_y["seconds"] / warm_y["seconds"],
            "same_verdict_x": same(disk_x, cold) and same(warm_x, cold),
            "same_verdict_y": same(disk_y, warm_y),
        },
    }


def print_table(result: dict[str, Any]) -> None:
    p = result["processes"]
    rows = [
        ("A", p["A"]["rows"][0], "cold (nothing on disk)"),
        ("A", p["A"]["rows"][2], "warm in-process (same example again)"),
        ("B", p["B"]["rows"][0], "new process, state from disk"),
        ("A", p["A"]["rows"][1], "warm in-process (shots prefix)"),
        ("C", p["C"]["rows"][0], "new process, state from disk (shots prefix)"),
    ]
    s = result["settings"]
    print(
        f"\nfirst verdict, pairwise 3 shots, max_tokens {s['max_tokens']}, "
        f"{p['A']['threads']} thread(s)"
    )
    heads = f"{'verdict s':>9} {'evaluated':>9} {'write s':>7} {'load s':>6}"
    print(f"{'proc':<4} {'ex':<2} {heads}  what")
    for proc, r, what in rows:
        print(
            f"{proc:<4} {r['example']:<2} {r['seconds']:>9.2f} {r['evaluated_tokens']:>9} "
            f"{r['state_write_s']:>7.2f} {r['state_load_s']:>6.2f}  {what}"
        )
    m = result["summary"]
    print(
        f"disk / in-process warm: X {m['disk_over_warm_x']:.2f}x, Y {m['disk_over_warm_y']:.2f}x; "
        f"same verdicts and probabilities: X {m['same_verdict_x']}, Y {m['same_verdict_y']}"
    )
    print(
        f"state on disk: {result['state_files']} file(s), {result['state_bytes'] / 2**20:.1f} MiB; "
        f"process seconds A {p['A']['process_s']:.1f}, B {p['B']['process_s']:.1f}, "
        f"C {p['C']['process_s']:.1f}"
    )
    print(f"load average at start {result['load_average_start']}, end {result['load_average_end']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=100, help="verdict token budget")
    parser.add_argument("--threads", type=int, default=None, help="ICRM_THREADS for all three")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "first_verdict.json"))
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.max_tokens)))
        return 0
    start = os.getloadavg()
    result = {"settings": {"max_tokens": args.max_tokens, "threads": args.threads}}
    result.update(measure(args))
    result["load_average_start"], result["load_average_end"] = start, os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print_table(result)
    print(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
