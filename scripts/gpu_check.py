"""Verify the sglang engine on a GPU machine (the same checks the CPU test tier makes).

Launches an sglang server through icrm-sgl's engine (or uses ``--endpoint``), judges the
two example files greedily (probabilities required) in completion and chat mode, one
sampled verdict, then a batch of generated pairwise examples, and prints verdict
validity, examples per second, round trips per verdict and the prefix-reuse ratio
(cached / prompt tokens). Exit code 0 when every verdict is valid and every greedy one
has probabilities, 1 otherwise, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from icrm_sgl import ICRM
from icrm_sgl.engines import create_engine
from icrm_sgl.errors import IcrmError
from icrm_sgl.plumbing.judgement import Judgement

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LANGUAGES = {"French": "merci", "Spanish": "gracias", "German": "danke", "Italian": "grazie"}
PLANTS = ("basil", "fern", "orchid", "cactus", "tomato seedlings")


def _minutes(i: int) -> tuple[str, str, str]:
    n = i % 9 + 2
    return (
        f"How many minutes are there in {n} hours?",
        f"There are {n * 60} minutes in {n} hours, because every hour has 60 minutes.",
        f"Roughly {n * 50} minutes.",
    )


def _sum(i: int) -> tuple[str, str, str]:
    a, b = 17 + 3 * i, 29 + 7 * i
    return (f"What is {a} + {b}?", f"{a} + {b} = {a + b}.", f"{a} + {b} = {a + b + 10}.")


def _translate(i: int) -> tuple[str, str, str]:
    lang, word = list(LANGUAGES.items())[i % len(LANGUAGES)]
    return (
        f"How do I say 'thank you' in {lang}?",
        f"In {lang} you say '{word}'.",
        "You say 'thank you'; most people understand English anyway.",
    )


def _reminder(i: int) -> tuple[str, str, str]:
    plant = PLANTS[i % len(PLANTS)]
    return (
        f"Write a one-sentence reminder to water the {plant} on Sunday morning.",
        f"Reminder: water the {plant} on Sunday morning before noon.",
        "Plants are living things that need care.",
    )


def _parity(i: int) -> tuple[str, str, str]:
    n = 1000 + 37 * i
    even = n % 2 == 0
    return (
        f"Is {n} an even number?",
        f"{'Yes' if even else 'No'}: {n} ends in {n % 10}, so it is {'even' if even else 'odd'}.",
        f"{'No' if even else 'Yes'}, {n} is {'odd' if even else 'even'}.",
    )


TEMPLATES = (_minutes, _sum, _translate, _reminder, _parity)


def pairwise_examples(n: int) -> list[dict[str, Any]]:
    """``n`` distinct pairwise examples; the better answer alternates between A and B."""
    out = []
    for i in range(n):
        question, good, bad = TEMPLATES[i % len(TEMPLATES)](i)
        first, second = (good, bad) if i % 2 == 0 else (bad, good)
        out.append(
            {
                "id": f"gen-{i}",
                "better": "A" if i % 2 == 0 else "B",
                "conversation_A": _turns(question, first),
                "conversation_B": _turns(question, second),
            }
        )
    return out


def _turns(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpu_check", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("model", nargs="?", help="HF model name or local path to serve")
    parser.add_argument("--endpoint", help="use a running sglang server or router at this URL")
    parser.add_argument("--num-workers", type=int, default=1, help="data-parallel replicas")
    parser.add_argument("--num-gpu-per-worker", type=int, default=1, help="tensor-parallel size")
    parser.add_argument("--server-args", default="", help="extra launch_server flags, one string")
    parser.add_argument("--launch-timeout", type=float, default=900.0)
    parser.add_argument("--log-path", help="server log (default: a temp file)")
    parser.add_argument("--n", type=int, default=50, help="pairwise batch size (default 50)")
    parser.add_argument("--num-shots", type=int, default=3)
    parser.add_argument("--chat", action="store_true", help="batch in chat mode, not completion")
    parser.add_argument("--layout", choices=("one_request", "per_field"), default="one_request")
    parser.add_argument("--json", dest="json_path", help="also write the summary here")
    args = parser.parse_args(argv)
    if not args.model and not args.endpoint:
        parser.error("give a MODEL to launch, or --endpoint URL")
    return args


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """Engine options from the command line: connect, or launch with the given layout."""
    if args.endpoint:
        return {"endpoint": args.endpoint, "layout": args.layout}
    return {
        "layout": args.layout,
        "num_workers": args.num_workers,
        "num_gpu_per_worker": args.num_gpu_per_worker,
        "server_args": args.server_args,
        "launch_timeout": args.launch_timeout,
        "log_path": args.log_path,
    }


def judge_file(
    backend: Any, rm_type: str, path: Path, args: argparse.Namespace, chat: bool, **gen: Any
) -> bool:
    """Judge one example file and print its verdict; True when it is valid (and, when
    greedy, carries the score / choice probabilities)."""
    model = ICRM(
        rm_type=rm_type, engine="sglang", backend=backend, num_shots=args.num_shots,
        completion=not chat,
    )  # fmt: skip
    (result,) = model.judge_batch([json.loads(path.read_text())], **gen)
    greedy = not gen.get("temperature")
    ok = result.ok and (not greedy or "probabilities" in result.meta)
    shown = json.dumps(result.verdict if result.ok else result.error, ensure_ascii=False)
    mode = f"{'chat' if chat else 'completion'}, {'greedy' if greedy else 'sampled'}"
    print(f"{path.name} ({mode}): {'valid' if ok else 'FAILED'} {shown}")
    return ok


def reuse_ratio(results: Iterable[Judgement]) -> float | None:
    """Sum of cached over sum of prompt tokens, over results that report both."""
    pairs = [
        (r.meta["cached_tokens"], r.meta["prompt_tokens"])
        for r in results
        if r.meta.get("cached_tokens") is not None and r.meta.get("prompt_tokens")
    ]
    return sum(c for c, _ in pairs) / sum(p for _, p in pairs) if pairs else None


def batch_check(backend: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Judge the generated pairwise batch; validity, throughput, reuse and agreement."""
    model = ICRM(
        rm_type="pairwise",
        engine="sglang",
        backend=backend,
        num_shots=args.num_shots,
        completion=not args.chat,
    )
    examples = pairwise_examples(args.n)
    started = time.perf_counter()
    results = list(model.judge_batch(examples))
    seconds = time.perf_counter() - started
    valid = [r for r in results if r.ok]
    for r in results:
        if not r.ok:
            print(f"  {r.id}: {r.error}")
    better = {e["id"]: e["better"] for e in examples}
    agree = sum(r.verdict["choice"].startswith(better[r.id]) for r in valid)
    ratio = reuse_ratio(results)
    return {
        "valid": len(valid),
        "with_probabilities": sum("probabilities" in r.meta for r in valid),
        "round_trips_mean": round(
            sum(r.meta["round_trips"] for r in valid) / max(len(valid), 1), 2
        ),
        "total": len(results),
        "seconds": round(seconds, 2),
        "examples_per_s": round(len(results) / seconds, 2),
        "prefix_reuse": None if ratio is None else round(ratio, 3),
        "agrees_with_intended": agree,
    }


def run(args: argparse.Namespace) -> int:
    """Build the backend once, run every check on it, always stop a launched server."""
    print(f"sglang engine: {'connecting to ' + args.endpoint if args.endpoint else 'launching'}")
    started = time.perf_counter()
    backend = create_engine("sglang", model_name=args.model, seed=42, **engine_options(args))
    try:
        print(f"server ready in {time.perf_counter() - started:.0f} s: {backend.get_model_name()}")
        individual, pairwise = EXAMPLES / "test_individual.json", EXAMPLES / "test_pairwise.json"
        files_ok = [
            judge_file(backend, "individual", individual, args, chat=False),
            judge_file(backend, "pairwise", pairwise, args, chat=False),
            judge_file(backend, "individual", individual, args, chat=True),
            judge_file(backend, "pairwise", pairwise, args, chat=True),
            judge_file(backend, "pairwise", pairwise, args, chat=False, temperature=0.8),
        ]
        summary = batch_check(backend, args)
    finally:
        backend.shutdown()
    summary["example_files_valid"] = sum(files_ok)
    print(
        f"pairwise batch: {summary['valid']}/{summary['total']} valid, "
        f"{summary['examples_per_s']} examples/s, prefix reuse {summary['prefix_reuse']}, "
        f"{summary['round_trips_mean']} round trips per verdict, "
        f"{summary['agrees_with_intended']} agree with the intended better answer"
    )
    print(json.dumps(summary))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(summary, indent=2) + "\n")
    complete = summary["valid"] == summary["with_probabilities"] == summary["total"]
    return 0 if all(files_ok) and complete else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except IcrmError as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
