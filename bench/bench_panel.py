"""Benchmark of a panel's concurrency: the wall time of a two-member panel on two engines
against each member alone, in one run.

Run from the repository root::

    python bench/bench_panel.py [--limit 4] [--max-tokens 32] [--num-shots 0]
        [--out bench/results/panel.json]

Member 1 is the built-in pairwise judge on the local engine (llama.cpp in this process);
member 2 the multi-turn pairwise rubric (``examples/judges/multiturn_pairwise.toml``) on
``--engine openai`` against llama-cpp-python's server with the bundled SmolLM2, which this
script starts on a free loopback port (``devtools.llama_server``). Each runs alone
as a one-member panel, then both as one panel (a thread per member), over the first
``--limit`` pairs of ``examples/pairs.jsonl`` (repeated when there are fewer), greedy.
A panel whose members run concurrently takes about its slowest member's time, not the
sum. A table goes to stdout, every figure to ``--out``. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from devtools.llama_server import llama_server  # noqa: E402  (the server the tests use too)

RUBRIC = REPO / "examples" / "judges" / "multiturn_pairwise.toml"
PAIRS = REPO / "examples" / "pairs.jsonl"


def examples(limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` pairs, with fresh ids (the file's, repeated as needed)."""
    rows = [json.loads(line) for line in PAIRS.read_text("utf-8").splitlines() if line.strip()]
    return [{**rows[i % len(rows)], "id": f"p{i}"} for i in range(limit)]


def members(url: str) -> dict[str, str]:
    """Each member's ``[[members]]`` table."""
    return {
        "local": '[[members]]\njudge = "pairwise"\n',
        "llama-server": f'[[members]]\njudge = "{RUBRIC}"\nengine = "openai"\n'
        f'base_url = "{url}"\nmodel = "smollm2"\n',
    }


def timed(tables: list[str], folder: Path, batch: list[dict[str, Any]], args: Any) -> dict:
    """One panel's wall time over the batch (engines opened first, not timed)."""
    from icrm_sgl import Panel

    path = folder / f"panel-{len(list(folder.iterdir()))}.toml"
    path.write_text('combine = "mean"\n' + "".join(tables))
    with Panel(path, num_shots=args.num_shots) as panel:
        started = time.perf_counter()
        results = list(panel.judge_batch(batch, max_tokens=args.max_tokens))
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "verdicts": sum(r.ok for r in results),
        "members_failed": sum("members_failed" in r.meta for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--num-shots", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="the server's llama.cpp threads")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "panel.json")
    args = parser.parse_args()
    batch = examples(args.limit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, llama_server(args.threads) as url:
        folder = Path(tmp)
        tables = members(url)
        rows = {name: timed([table], folder, batch, args) for name, table in tables.items()}
        rows["panel (both)"] = timed(list(tables.values()), folder, batch, args)
    alone = [rows[name]["seconds"] for name in tables]
    summary = {
        "sum_alone": round(sum(alone), 3),
        "slowest_alone": max(alone),
        "panel_over_slowest": round(rows["panel (both)"]["seconds"] / max(alone), 3),
        "panel_over_sum": round(rows["panel (both)"]["seconds"] / sum(alone), 3),
    }
    print(f"{'run':<16}{'seconds':>10}{'verdicts':>10}")
    for name, row in rows.items():
        print(f"{name:<16}{row['seconds']:>10.2f}{row['verdicts']:>10}")
    print(
        f"panel / slowest member {summary['panel_over_slowest']:.2f}, "
        f"panel / sum of members {summary['panel_over_sum']:.2f}"
    )
    machine = {"platform": platform.platform(), "cpus": os.cpu_count()}
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    report = {"settings": settings, "machine": machine, "runs": rows, "summary": summary}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
