"""Benchmark of the local llama.cpp engine on a 3-shot pairwise prompt.

Run from the repository root::

    python bench/bench_local.py [--examples N] [--max-tokens M] [--out bench/results/local.json]

One run measures, on the same process and model:

1. the first verdict on a fresh backend (cold: nothing in the KV cache, nothing saved in
   memory or on disk: the run uses an empty ``$ICRM_CACHE_DIR`` of its own);
2. the mean verdict time on N further examples with prefix reuse ON (warm backend);
3. the mean verdict time on the same N examples with prefix reuse OFF;
4. the share of prompt tokens reused (sum cached_tokens / sum prompt_tokens) for 2 and 3;
5. decode tokens/s with and without the llguidance constraint mask (``FIELD_REGEX``).

``--batching`` runs the batching section instead: the same 16 pairwise examples judged
on a fresh engine with 1, 2, 4 and 8 KV sequences (``n_seq``) and as many examples in
flight, one width after the other in one run; examples/s, the ratio to one in flight,
decode tokens/s, the mean decode batch width, the share of prompt tokens reused and
whether every verdict equals the one-in-flight verdict. It also times raw
``llama_decode`` steps of 1 to 8 consecutive sequences at the examples' context length,
and compares each width's decode steps with the raw cost of steps of the same widths
(and, as an upper bound for the decoding loop, the steps plus every moment llama.cpp sat
idle).
Its figures go to the ``batching`` key of ``--out`` (the other keys are kept).

ON and OFF verdicts are interleaved example by example (ON first, then OFF on the same
example), so that load from other processes on a shared machine hits both alike. The
masked / unmasked decode runs are interleaved too, with their order flipped every
repetition. A table goes to stdout, every figure plus machine info to ``--out`` (JSON).

This is a benchmark, not a test: it is slow (minutes) and its figures are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# Synthetic further examples: (user question, candidate A, candidate B). Distinct topics
# so that the example-specific tail of each prompt differs; the few-shot head is shared.
FURTHER = [
    (
        "How long should I boil an egg to get a runny yolk?",
        "About six minutes in water that is already boiling, then straight into cold "
        "water so it stops cooking. The white sets and the yolk stays soft.",
        "Eggs are a great source of protein and can be cooked in many ways.",
    ),
    (
        "What does the Python expression `[x * 2 for x in range(3)]` evaluate to?",
        "It evaluates to [0, 2, 4]: range(3) yields 0, 1 and 2, and each is doubled.",
        "It evaluates to [2, 4, 6] because every number from 1 to 3 is doubled.",
    ),
    (
        "Can you suggest a name for a small bakery that sells sourdough bread?",
        "How about 'Rise & Crumb'? Other ideas: 'The Slow Loaf', 'Wild Yeast Corner' "
        "or 'Starter Culture'.",
        "Bakery.",
    ),
    (
        "Why is the sky blue during the day?",
        "Sunlight is scattered by air molecules, and shorter (blue) wavelengths scatter "
        "much more than red ones (Rayleigh scattering), so blue light reaches us from "
        "every part of the sky.",
        "Because the sky reflects the colour of the ocean.",
    ),
    (
        "Translate 'good morning, how are you?' into Spanish.",
        "Buenos días, ¿cómo estás?",
        "Bonjour, comment allez-vous ?",
    ),
    (
        "I have a job interview tomorrow. Any quick tips?",
        "Research the company, prepare two or three stories that show your skills, have "
        "questions ready for them, and get a good night's sleep.",
        "Just be yourself and don't worry about it, interviews are not important.",
    ),
    (
        "What is 15% of 80?",
        "15% of 80 is 12.",
        "15% of 80 is 8, because you take 10% and add half of it.",
    ),
    (
        "Write a haiku about autumn leaves.",
        "Red leaves drift and fall\nwhispering on the cold wind\nthe branches let go",
        "Autumn is a season that comes after summer and before winter in most places.",
    ),
]


def pairwise_example(question: str, a: str, b: str) -> dict[str, Any]:
    user = {"role": "user", "content": question}
    return {
        "conversation_A": [user, {"role": "assistant", "content": a}],
        "conversation_B": [user, {"role": "assistant", "content": b}],
    }


def first_example() -> dict[str, Any]:
    path = REPO / "examples" / "test_pairwise.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return pairwise_example(
        "I want to book a flight",
        "Sure, where do you want to go?",
        "I need your departure city, destination, dates and number of passengers.",
    )


# -- switching prefix reuse off -----------------------------------------------------------
#
# The runner reuses computed KV in two ways: (a) the live context keeps the longest common
# token prefix with the next prompt, and (b) ``prefix_cache`` keeps saved KV states that
# it restores when they match more. "Reuse OFF" must defeat both, for the OFF verdicts
# only, on the SAME runner (same model, threads and memory as the ON verdicts):
#   * (b) ``no_saved_states`` swaps in an empty zero-byte ``PrefixCache`` for the duration
#     (``put`` is a no-op at max_bytes 0, ``best_match`` finds nothing), then puts the
#     real one back, untouched, so the ON verdicts keep their saved states;
#   * (a) ``runner.reset()`` drops the whole live KV sequence before each OFF verdict
#     without saving it.
# Inside one verdict the five field calls and the final ``select`` still continue the
# live context (each call extends the previous one's text): that is how any engine runs
# an sglang program, not cross-example reuse. ``cached_tokens`` in the meta counts the
# first field call, i.e. exactly the reuse from before the verdict started.


@contextlib.contextmanager
def no_saved_states(runner) -> Iterator[None]:
    from icrm_sgl.engines.local.prefix_cache import PrefixCache

    saved = runner.prefix_cache
    runner.prefix_cache = PrefixCache(0)
    try:
        yield
    finally:
        runner.prefix_cache = saved


# -- measurements ---------------------------------------------------------------------------


class CallMeter:
    """Counts the calls of one instance's method and the seconds they take (diagnostic).

    On the runner's ``_save_state``: the KV-state serialisations, made before the runner
    drops a long enough suffix that no saved state covers (their time is part of the
    verdict times). On its context's ``decode``: the time spent inside llama.cpp.
    """

    def __init__(self, owner, name: str) -> None:
        self.calls, self.seconds = 0, 0.0
        original = getattr(owner, name)

        def metered(*args):
            start = time.perf_counter()
            try:
                return original(*args)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - start

        setattr(owner, name, metered)

    def since(self, mark: tuple[int, float]) -> dict[str, Any]:
        return {"kv_saves": self.calls - mark[0], "kv_save_seconds": self.seconds - mark[1]}

    def mark(self) -> tuple[int, float]:
        return self.calls, self.seconds


def timed_verdict(
    model, example: dict[str, Any], max_tokens: int, meter: CallMeter
) -> dict[str, Any]:
    mark = meter.mark()
    start = time.perf_counter()
    (result,) = list(model.judge_batch([example], num_threads=1, max_tokens=max_tokens))
    seconds = time.perf_counter() - start
    meta = result.meta
    return {
        "seconds": seconds,
        "ok": result.ok,
        "error": result.error,
        "choice": (result.verdict or {}).get("choice"),
        "prompt_tokens": meta.get("prompt_tokens") or 0,
        "cached_tokens": meta.get("cached_tokens") or 0,
        "completion_tokens": meta.get("completion_tokens") or 0,
        **meter.since(mark),
    }


def reuse_share(runs: list[dict[str, Any]]) -> float:
    prompt = sum(r["prompt_tokens"] for r in runs)
    return sum(r["cached_tokens"] for r in runs) / prompt if prompt else float("nan")


def decode_bench(model, example, new_tokens: int, reps: int, meter: CallMeter) -> dict[str, Any]:
    """Decode tokens/s with and without the FIELD_REGEX mask, prefill excluded.

    The prompt (rendered example + the verdict's first key) is evaluated once first, so
    every timed call finds it and its logits in the live context. Each call still builds a
    matcher and cuts back the previous call's output; to remove that fixed cost, every
    timed call of ``new_tokens`` is paired with a 1-token call of the same condition (no
    decode step), and the rate is (tokens_long - tokens_short) / (t_long - t_short),
    summed over repetitions. Warm-up calls of both conditions come first, compiling the
    grammar and paying first-call effects.
    """
    from icrm_sgl.engines.local.sampling import Sampling
    from icrm_sgl.programs.judge import FIELD_REGEX

    runner = model.backend.runner
    options = model.backend.options
    prompt = model.render_prompt(example) + '{"analysis of A": "'
    conditions = {"masked": FIELD_REGEX, "unmasked": None}

    def call(regex, n):
        start = time.perf_counter()
        out = runner.generate(
            prompt,
            max_new_tokens=n,
            sampling=Sampling(),
            regex=regex,
            seed=options.seed,
            ignore_eos=True,  # no effect under a mask; keeps unmasked runs at full length
            no_repeat_ngram=options.no_repeat_ngram,  # as in real verdicts
        )
        return time.perf_counter() - start, out

    samples: dict[str, list[dict[str, float]]] = {k: [] for k in conditions}
    texts: dict[str, str] = {}
    _, warm = call(None, 1)  # prefill (mostly reused from the verdicts already run)
    for n in (new_tokens, 1):  # grammar compile, KV states saved, first-call effects
        for regex in conditions.values():
            call(regex, n)
    for rep in range(reps):
        order = list(conditions) if rep % 2 == 0 else list(reversed(conditions))
        for name in order:
            mark = meter.mark()
            t_long, long = call(conditions[name], new_tokens)
            t_short, short = call(conditions[name], 1)
            saves = meter.since(mark)
            texts[name] = long.text
            samples[name].append(
                {
                    "t_long": t_long,
                    "t_short": t_short,
                    "tokens_long": long.completion_tokens,
                    "tokens_short": short.completion_tokens,
                    "kv_saves": saves["kv_saves"],
                }
            )
    result: dict[str, Any] = {
        "prompt_tokens": warm.prompt_tokens,
        "max_new_tokens": new_tokens,
        "repetitions": reps,
    }
    for name, rows in samples.items():
        tokens = sum(r["tokens_long"] - r["tokens_short"] for r in rows)
        seconds = sum(r["t_long"] - r["t_short"] for r in rows)
        result[name] = {
            "tokens_per_s": tokens / seconds if tokens > 0 and seconds > 0 else None,
            "tokens_per_s_each": [
                (r["tokens_long"] - r["tokens_short"]) / (r["t_long"] - r["t_short"])
                if r["t_long"] > r["t_short"] and r["tokens_long"] > r["tokens_short"]
                else None
                for r in rows
            ],
            "samples": rows,
            "text": texts.get(name),
        }
    m, u = result["masked"]["tokens_per_s"], result["unmasked"]["tokens_per_s"]
    result["masked_over_unmasked"] = m / u if m and u else None
    return result


def prefill_rate(model, example: dict[str, Any]) -> dict[str, Any]:
    """Prompt tokens/s for one unseen example after the saved shot prefix: the live KV is
    emptied, the prefix restored, the example's tokens evaluated, one token chosen."""
    from icrm_sgl.engines.local.sampling import Sampling

    runner = model.backend.runner
    runner.reset()
    start = time.perf_counter()
    out = runner.generate(model.render_prompt(example), max_new_tokens=1, sampling=Sampling())
    seconds = time.perf_counter() - start
    new = out.prompt_tokens - out.cached_tokens
    return {"new_tokens": new, "seconds": seconds, "tokens_per_s": new / seconds}


def floor_seconds(run: dict[str, Any], prefill: float, decode: float) -> float:
    """A verdict's floor: its evaluated prompt tokens at the prefill rate plus its
    generated tokens at the masked decode rate."""
    return (run["prompt_tokens"] - run["cached_tokens"]) / prefill + run[
        "completion_tokens"
    ] / decode


# -- reporting ------------------------------------------------------------------------------


def machine_info(model) -> dict[str, Any]:
    import llama_cpp

    runner = model.backend.runner
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "llama_cpp": getattr(llama_cpp, "__version__", None),
        "model": model.model_name,
        "model_path": runner.model_path,
        "n_ctx": runner.n_ctx,
        "n_threads": runner.n_threads,
        "cache_mib": model.backend.options.cache_mib,
        "no_repeat_ngram": model.backend.options.no_repeat_ngram,
    }


def fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def print_table(r: dict[str, Any]) -> None:
    v, d, f = r["verdicts"], r["decode"], r["warm_floor"]
    rows = [
        (
            "first verdict (cold)",
            f"{fmt(v['cold']['seconds'], '.2f')} s",
            f"reused {v['cold']['cached_tokens']}/{v['cold']['prompt_tokens']} tokens",
        ),
        (
            "mean verdict, reuse ON",
            f"{fmt(v['on_mean_s'], '.2f')} s",
            f"reused {fmt(100 * v['on_reuse_share'], '.1f')}% of prompt tokens",
        ),
        (
            "mean verdict, reuse OFF",
            f"{fmt(v['off_mean_s'], '.2f')} s",
            f"reused {fmt(100 * v['off_reuse_share'], '.1f')}% of prompt tokens",
        ),
        (
            "speedup ON vs OFF",
            f"{fmt(v['speedup_on_vs_off'], '.2f')}x",
            f"mean OFF / mean ON, {v['n_further']} examples, interleaved",
        ),
        (
            "  by medians",
            f"{fmt(v['off_median_s'] / v['on_median_s'], '.2f')}x",
            f"median ON {v['on_median_s']:.2f} s, OFF {v['off_median_s']:.2f} s",
        ),
        ("decode, masked", f"{fmt(d['masked']['tokens_per_s'], '.1f')} tok/s", "regex=FIELD_REGEX"),
        ("decode, unmasked", f"{fmt(d['unmasked']['tokens_per_s'], '.1f')} tok/s", "regex=None"),
        (
            "decode masked/unmasked",
            f"{fmt(d['masked_over_unmasked'], '.2f')}x",
            f"{d['repetitions']} reps each, interleaved",
        ),
        (
            "prefill after the shots",
            f"{fmt(r['prefill']['tokens_per_s'], '.1f')} tok/s",
            f"{r['prefill']['new_tokens']} new tokens of an unseen example",
        ),
        (
            "warm verdict floor",
            f"{fmt(f['floor_mean_s'], '.2f')} s",
            f"mean {f['new_prompt_tokens_mean']:.0f} evaluated prompt tokens / prefill + "
            f"{f['completion_tokens_mean']:.0f} generated / masked decode",
        ),
        (
            "warm verdict / floor",
            f"{fmt(f['ratio'], '.2f')}x",
            f"mean verdict, reuse ON, {v['on_mean_s']:.2f} s",
        ),
    ]
    w0 = max(len(a) for a, _, _ in rows)
    w1 = max(len(b) for _, b, _ in rows)
    m = r["machine"]
    print(
        f"\nicrm-sgl local engine, pairwise {r['settings']['num_shots']}-shot, "
        f"{m['model']}, {m['n_threads']} thread(s), prompt ~{r['prompt_tokens']} tokens, "
        f"max_tokens {r['settings']['max_tokens']}"
    )
    print("-" * (w0 + w1 + 40))
    for a, b, c in rows:
        print(f"{a:<{w0}}  {b:>{w1}}  {c}")
    print("-" * (w0 + w1 + 40))
    on = ", ".join(f"{x['seconds']:.1f}" for x in v["on"])
    off = ", ".join(f"{x['seconds']:.1f}" for x in v["off"])
    print(f"per example ON  (s): {on}\nper example OFF (s): {off}")
    print(f"same choice ON vs OFF: {v['same_choice_on_off']}")
    k = v["kv_save_seconds_per_verdict"]
    print(
        f"KV-state save time per verdict (s): cold {k['cold']:.2f}, "
        f"ON {k['on']:.2f}, OFF {k['off']:.2f}"
    )
    print(f"total run time: {r['total_seconds']:.1f} s (model load {r['load_seconds']:.2f} s)")


#: Context length of the raw steps: about where the bench's verdicts decode.
RAW_CONTEXT = 1600


def batching_examples() -> list[dict[str, Any]]:
    """16 pairwise examples: each of ``FURTHER`` in both candidate orders."""
    return [pairwise_example(q, a, b) for q, a, b in FURTHER] + [
        pairwise_example(q, b, a) for q, a, b in FURTHER
    ]


def batching_width(width: int, max_tokens: int, threads: int | None) -> dict[str, Any]:
    """Judge the 16 examples on a fresh engine with ``width`` sequences in flight."""
    from icrm_sgl.judging.icrm import ICRM

    examples = batching_examples()
    options: dict[str, Any] = {"n_seq": width}
    if threads is not None:
        options["n_threads"] = threads
    model = ICRM(rm_type="pairwise", num_shots=3, **options)
    try:
        batcher = model.backend.runner.scheduler
        busy = CallMeter(model.backend.runner._seqs, "decode")
        start = time.perf_counter()
        results = list(model.judge_batch(examples, num_threads=width, max_tokens=max_tokens))
        seconds = time.perf_counter() - start
        steps, stepped = batcher.steps, batcher.tokens
        step_seconds, widths = batcher.seconds, dict(batcher.widths)
        partial = batcher.partial_steps
        idle = seconds - busy.seconds
    finally:
        model.close()
    metas = [r.meta for r in results]
    completion = sum(m.get("completion_tokens") or 0 for m in metas)
    prompt = sum(m.get("prompt_tokens") or 0 for m in metas)
    return {
        "width": width,
        "seconds": seconds,
        "examples_per_s": len(examples) / seconds,
        "completion_tokens": completion,
        "decoded_tokens_per_s": completion / seconds,
        "mean_step_width": stepped / steps if steps else 1.0,
        "step_seconds": step_seconds,
        "llama_idle_seconds": idle,
        "stepped_tokens": stepped,
        "step_widths": widths,
        "partial_steps": partial,
        "reuse_share": sum(m.get("cached_tokens") or 0 for m in metas) / prompt if prompt else None,
        "all_ok": all(r.ok for r in results),
        "verdicts": [json.dumps(r.verdict, sort_keys=True) for r in results],
        "load_average_end": os.getloadavg(),
    }


def raw_steps(threads: int | None, context: int, reps: int = 9) -> dict[int, float]:
    """Median seconds of one raw ``llama_decode`` step of 1 to 8 consecutive sequences,
    each holding ``context`` tokens: the ceiling the engine's steps compare with."""
    import numpy as np

    from icrm_sgl.engines.local.llama_adapter import GgufModel, SequenceContext
    from icrm_sgl.engines.local.requantize import default_weights
    from icrm_sgl.engines.local.threads import default_threads

    model = GgufModel(str(default_weights()))
    ctx = SequenceContext(
        model, n_ctx=2048, n_batch=512, n_seq_max=8, n_threads=threads or default_threads()
    )
    rng = np.random.default_rng(0)
    prompt = rng.integers(100, 40000, context).astype(np.int32)
    try:
        for seq in range(8):
            for start in range(0, context, 512):
                chunk = prompt[start : start + 512]
                outputs = np.zeros(len(chunk), dtype=bool)
                outputs[-1] = True
                positions = np.arange(start, start + len(chunk), dtype=np.int32)
                ctx.decode(chunk, positions, np.full(len(chunk), seq, np.int32), outputs)
        costs = {}
        for width in range(1, 9):
            seqs = np.arange(width, dtype=np.int32)
            times = []
            for _ in range(reps):
                tokens = rng.integers(100, 40000, width).astype(np.int32)
                begin = time.perf_counter()
                ctx.decode(tokens, np.full(width, context, np.int32), seqs, np.ones(width, bool))
                times.append(time.perf_counter() - begin)
                for seq in range(width):
                    ctx.seq_rm(seq, context)
            costs[width] = statistics.median(times)
        return costs
    finally:
        ctx.close()
        model.close()


def raw_steps_fresh(threads: int | None) -> dict[int, float]:
    """``raw_steps`` in a new process: OpenMP thread teams left by this process's
    engines would make its barriers sleep instead of spin (see ``SequenceContext``)."""
    command = [sys.executable, __file__, "--raw-steps"]
    if threads is not None:
        command += ["--threads", str(threads)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return {int(width): seconds for width, seconds in json.loads(out).items()}


def batching_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Examples/s at 1, 2, 4 and 8 in flight, one run (see the module docstring)."""
    rows = []
    for width in args.widths:
        print(f"batching: {width} in flight ...", file=sys.stderr, flush=True)
        rows.append(batching_width(width, args.max_tokens, args.threads))
    print("batching: raw decode steps ...", file=sys.stderr, flush=True)
    raw = raw_steps_fresh(args.threads)
    base, first = rows[0], rows[0]["verdicts"]
    for row in rows:
        row["ratio_to_first"] = row["examples_per_s"] / base["examples_per_s"]
        row["same_verdicts_as_first"] = sum(
            a == b for a, b in zip(row.pop("verdicts"), first, strict=True)
        )
        raw_seconds = sum(raw[w] * n for w, n in row["step_widths"].items())
        row["step_ms_per_token"] = 1000 * row["step_seconds"] / row["stepped_tokens"]
        row["raw_ms_per_token_same_widths"] = 1000 * raw_seconds / row["stepped_tokens"]
        row["steps_over_raw"] = row["step_seconds"] / raw_seconds
        # An upper bound for the decoding loop: every moment llama.cpp sat idle is
        # counted against the steps (Python's per-token work, the interpreter, waits).
        row["loop_over_raw"] = (row["step_seconds"] + row["llama_idle_seconds"]) / raw_seconds
    return {
        "settings": {"max_tokens": args.max_tokens, "examples": 16, "num_shots": 3},
        "raw_step_seconds": {"context": RAW_CONTEXT, **raw},
        "rows": rows,
    }


def print_batching(section: dict[str, Any]) -> None:
    print(
        f"\nbatching: pairwise 3-shot, 16 examples, max_tokens {section['settings']['max_tokens']}"
    )
    print(
        "in flight  examples/s  ratio  decode tok/s  step width  step ms/tok  raw ms/tok"
        "  vs raw  loop vs raw  reused  same verdicts  load"
    )
    for r in section["rows"]:
        print(
            f"{r['width']:>9}  {r['examples_per_s']:>10.3f}  {r['ratio_to_first']:>5.2f}  "
            f"{r['decoded_tokens_per_s']:>12.1f}  {r['mean_step_width']:>10.2f}  "
            f"{r['step_ms_per_token']:>11.2f}  {r['raw_ms_per_token_same_widths']:>10.2f}  "
            f"{r['steps_over_raw']:>6.2f}  {r['loop_over_raw']:>11.2f}  "
            f"{100 * (r['reuse_share'] or 0):>5.1f}%  "
            f"{r['same_verdicts_as_first']:>10}/16  {r['load_average_end'][0]:.2f}"
        )
    raw = section["raw_step_seconds"]
    print(
        f"raw llama_decode step at {raw['context']} tokens of context, ms per token at width "
        + ", ".join(f"{w}: {1000 * raw[w] / w:.2f}" for w in range(1, 9))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples", type=int, default=4, help=f"further examples (max {len(FURTHER)})"
    )
    parser.add_argument("--max-tokens", type=int, default=100, help="verdict token budget")
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--decode-reps", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="llama.cpp threads (default: the engine's, $ICRM_THREADS or the free cores)",
    )
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "local.json"))
    parser.add_argument("--batching", action="store_true", help="run the batching section")
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--raw-steps", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_steps:  # the batching section's raw steps, in a process of their own
        print(json.dumps(raw_steps(args.threads, RAW_CONTEXT)))
        return 0
    if args.batching:
        out = Path(args.out)
        previous = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
        load_start = os.getloadavg()
        section = batching_bench(args)
        section["load_average_start"] = load_start
        previous["batching"] = section
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(previous, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print_batching(section)
        return 0
    if not 1 <= args.examples <= len(FURTHER):
        parser.error(f"--examples must be between 1 and {len(FURTHER)}")

    from icrm_sgl.judging.icrm import ICRM

    t0 = time.perf_counter()
    load_avg_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    options = {} if args.threads is None else {"n_threads": args.threads}
    cache = os.environ["ICRM_CACHE_DIR"] = tempfile.mkdtemp(prefix="icrm-bench-local-")
    model = ICRM(rm_type="pairwise", num_shots=3, **options)
    load_seconds = time.perf_counter() - t0
    try:
        runner = model.backend.runner
        meter = CallMeter(runner, "_save_state")
        further = [pairwise_example(*f) for f in FURTHER[: args.examples]]

        print("cold verdict ...", file=sys.stderr, flush=True)
        cold = timed_verdict(model, first_example(), args.max_tokens, meter)

        on_runs, off_runs = [], []
        for i, example in enumerate(further):
            print(
                f"example {i + 1}/{len(further)}: reuse ON, then OFF ...",
                file=sys.stderr,
                flush=True,
            )
            on_runs.append(timed_verdict(model, example, args.max_tokens, meter))
            with no_saved_states(runner):
                runner.reset()
                off_runs.append(timed_verdict(model, example, args.max_tokens, meter))

        print("decode tokens/s ...", file=sys.stderr, flush=True)
        decode = decode_bench(model, further[0], args.decode_tokens, args.decode_reps, meter)
        print("prefill tokens/s ...", file=sys.stderr, flush=True)
        question, a, b = FURTHER[0]
        prefill = prefill_rate(model, pairwise_example(question, b, a))  # not judged yet
        floors = [
            floor_seconds(r, prefill["tokens_per_s"], decode["masked"]["tokens_per_s"])
            for r in on_runs
        ]

        on_mean = statistics.mean(r["seconds"] for r in on_runs)
        off_mean = statistics.mean(r["seconds"] for r in off_runs)
        result = {
            "settings": {
                "rm_type": "pairwise",
                "num_shots": 3,
                "max_tokens": args.max_tokens,
                "further_examples": args.examples,
                "decode_tokens": args.decode_tokens,
                "decode_reps": args.decode_reps,
            },
            "machine": machine_info(model),
            "prompt_tokens": cold["prompt_tokens"],
            "load_seconds": load_seconds,
            "verdicts": {
                "cold": cold,
                "on": on_runs,
                "off": off_runs,
                "n_further": len(further),
                "on_mean_s": on_mean,
                "off_mean_s": off_mean,
                "on_median_s": statistics.median(r["seconds"] for r in on_runs),
                "off_median_s": statistics.median(r["seconds"] for r in off_runs),
                "speedup_on_vs_off": off_mean / on_mean if on_mean > 0 else None,
                "on_reuse_share": reuse_share(on_runs),
                "off_reuse_share": reuse_share(off_runs),
                "same_choice_on_off": [
                    a["choice"] == b["choice"] for a, b in zip(on_runs, off_runs, strict=True)
                ],
                "all_ok": all(r["ok"] for r in [cold, *on_runs, *off_runs]),
                "kv_save_seconds_per_verdict": {
                    "cold": cold["kv_save_seconds"],
                    "on": statistics.mean(r["kv_save_seconds"] for r in on_runs),
                    "off": statistics.mean(r["kv_save_seconds"] for r in off_runs),
                },
            },
            "decode": decode,
            "prefill": prefill,
            "warm_floor": {
                "floor_mean_s": statistics.mean(floors),
                "verdict_mean_s": on_mean,
                "ratio": on_mean / statistics.mean(floors),
                "new_prompt_tokens_mean": statistics.mean(
                    r["prompt_tokens"] - r["cached_tokens"] for r in on_runs
                ),
                "completion_tokens_mean": statistics.mean(r["completion_tokens"] for r in on_runs),
            },
            "load_average_start": load_avg_start,
            "load_average_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        }
    finally:
        model.close()
        shutil.rmtree(cache, ignore_errors=True)
    result["total_seconds"] = time.perf_counter() - t0

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print_table(result)
    print(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
