"""Benchmark of the hosted path against a loopback llama.cpp server: requests and
completion tokens per verdict.

Run from the repository root::

    python bench/bench_hosted.py /path/to/llmbar [--limit 20] [--max-tokens 256 128]
        [--out bench/results/hosted.json]

It starts llama-cpp-python's OpenAI-compatible server on 127.0.0.1 with the bundled
SmolLM2 (or uses ``--base-url`` of a running server) and judges the first ``--limit``
LLMBar Natural examples through ``--engine openai``, one shot, greedy, one request at a
time, with each judge: the built-in individual judge (on ``output_1``), the built-in
pairwise judge (``output_1`` as A) and the Prometheus-style rubric
(``examples/judges/prometheus_absolute.toml``, on ``output_1``). For every judge and
``--max-tokens`` it reports valid verdicts, re-asks, requests per verdict (mean and most),
requests the server refused, and completion tokens per verdict against the budget (mean
and most). A table goes to stdout, every figure and every record's meta to ``--out``.

The LLMBar data is not part of the repository: pass its folder (with
``Natural/dataset.json``) or the dataset file itself. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from devtools.llama_server import llama_server  # noqa: E402  (the server the tests use too)

PROMETHEUS = REPO / "examples" / "judges" / "prometheus_absolute.toml"
JUDGES = {"individual": "individual", "pairwise": "pairwise", "prometheus": str(PROMETHEUS)}


def load_llmbar(path: Path, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` LLMBar records (``{"input", "output_1", "output_2", "label"}``)."""
    if path.is_dir():
        path = path / "Natural" / "dataset.json"
    return json.loads(path.read_text("utf-8"))[:limit]


def conversation(record: dict[str, Any], output: str) -> list[dict[str, str]]:
    """The record's instruction and one of its outputs as a conversation."""
    return [
        {"role": "user", "content": record["input"]},
        {"role": "assistant", "content": record[output]},
    ]


def examples_for(judge: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One example per record: ``output_1`` alone, or ``output_1`` (A) against ``output_2``."""
    if judge == "pairwise":
        return [
            {
                "id": f"n{i}",
                "conversation_A": conversation(r, "output_1"),
                "conversation_B": conversation(r, "output_2"),
            }
            for i, r in enumerate(records)
        ]
    return [
        {"id": f"n{i}", "conversation": conversation(r, "output_1")} for i, r in enumerate(records)
    ]


def run_judge(url: str, judge: str, examples: list[dict[str, Any]], args: Any, budget: int):
    """Every example's record (``Judgement.record()``) for one judge and budget."""
    from icrm_sgl import ICRM

    settings = {"num_shots": args.num_shots, "concurrency": 1}
    with ICRM(engine="openai", base_url=url, model_name="smollm2", judge=judge, **settings) as m:
        results = m.judge_batch(examples, max_tokens=budget, temperature=0.0, progress=False)
        return [r.record() for r in results]


def summarise(records: list[dict[str, Any]], budget: int) -> dict[str, Any]:
    """Valid verdicts, re-asks, requests and completion tokens of one judge's records."""
    ok = [r for r in records if "verdict" in r]
    metas = [r["meta"] for r in ok]
    requests = [m.get("requests", 0) for m in metas]
    tokens = [m.get("completion_tokens") or 0 for m in metas]
    return {
        "verdicts": len(records),
        "valid": len(ok),
        "re_asks": sum(r["meta"].get("retries", 0) for r in records),
        "requests_mean": round(sum(requests) / max(1, len(ok)), 3),
        "requests_max": max(requests, default=0),
        "refused_requests": sum(m.get("requests", 0) - m.get("attempts", 0) for m in metas),
        "completion_tokens_mean": round(sum(tokens) / max(1, len(ok)), 1),
        "completion_tokens_max": max(tokens, default=0),
        "max_over_budget": round(max(tokens, default=0) / budget, 3),
        "seconds": round(sum(r["meta"].get("seconds", 0) for r in records), 1),
        "errors": [r["error"] for r in records if "error" in r],
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "judge        budget  valid  re-asks  req/verdict  req max  refused"
        "  tok mean  tok max  max/budget"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        s = row["summary"]
        lines.append(
            f"{row['judge']:<12} {row['max_tokens']:>6}  {s['valid']:>2}/{s['verdicts']:<2}"
            f"  {s['re_asks']:>7}  {s['requests_mean']:>11.2f}  {s['requests_max']:>7}"
            f"  {s['refused_requests']:>7}  {s['completion_tokens_mean']:>8.1f}"
            f"  {s['completion_tokens_max']:>7}  {s['max_over_budget']:>10.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="LLMBar folder or a dataset.json")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--num-shots", type=int, default=1)
    parser.add_argument("--judges", nargs="+", default=list(JUDGES), choices=list(JUDGES))
    parser.add_argument("--base-url", help="a running server instead of a launched one")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("ICRM_THREADS", 1)))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "hosted.json")
    args = parser.parse_args()
    records = load_llmbar(args.data, args.limit)
    rows = []
    with llama_server(args.threads) if args.base_url is None else _given(args.base_url) as url:
        for budget in args.max_tokens:
            for name in args.judges:
                got = run_judge(url, JUDGES[name], examples_for(name, records), args, budget)
                rows.append(
                    {
                        "judge": name,
                        "max_tokens": budget,
                        "summary": summarise(got, budget),
                        "meta": [r["meta"] for r in got],
                    }
                )
                print(table(rows[-1:]).splitlines()[-1], flush=True)
                write_report(args, rows)  # after each row: a long run stopped keeps its rows
    print(table(rows))


def write_report(args: Any, rows: list[dict[str, Any]]) -> None:
    """Every figure, the settings and the machine's load average to ``args.out``."""
    report = {
        "machine": {"platform": platform.platform(), "load": os.getloadavg()},
        "settings": {k: str(v) for k, v in vars(args).items()},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", "utf-8")


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    main()
