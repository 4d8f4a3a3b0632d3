"""Where a batch's time goes on the local engine, at several widths (diagnostic).

Run from the repository root::

    python bench/profile_local.py [--widths 1 8] [--examples 8] [--max-tokens 100]

Judges the bench's pairwise 3-shot examples on a fresh engine per width, with the
runner's and the scheduler's steps wrapped in timers: time inside llama.cpp (shared decode
steps, prompt evaluation, state restore / save), time threads wait for a step or for
their prompt work, per-token Python work (mask, penalties, n-gram guard, choice,
detokenize) and the rest (sglang interpreter, tokenizer). Thread-seconds add over
threads; llama.cpp seconds are serial (one context), so they compare with the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_local import batching_examples


class Timers:
    """Seconds and calls per label, summed over threads."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    @contextmanager
    def time(self, label: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[label] += time.perf_counter() - start
                self.calls[label] += 1

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            with self.time(label):
                return original(*args, **kwargs)

        setattr(owner, name, timed)


def instrument(runner, timers: Timers) -> None:
    """Wrap the runner's llama.cpp calls and per-token Python steps in timers."""
    import icrm_sgl.engines.local.llama_runner as lr

    seqs = runner._seqs
    original_decode = seqs.decode

    def decode(tokens, positions, seqs_, outputs):
        label = (
            "llama: decode step"
            if outputs.all()
            and len(set(seqs_.tolist())) == len(tokens)
            and len(tokens) <= runner.n_seq
            else "llama: prompt chunk"
        )
        with timers.time(label):
            return original_decode(tokens, positions, seqs_, outputs)

    seqs.decode = decode
    timers.wrap(seqs, "restore", "llama: state restore")
    timers.wrap(seqs, "state", "llama: state save")
    timers.wrap(seqs, "seq_rm", "llama: seq_rm")
    for name in ("allowed_tokens", "apply_penalties", "ban_repeated_ngrams", "choose_token"):
        original = getattr(lr, name)

        def timed(*args, _f=original, _n=name, **kwargs):
            with timers.time(f"python: {_n}"):
                return _f(*args, **kwargs)

        setattr(lr, name, timed)
    timers.wrap(runner.model, "detokenize", "python: detokenize")
    timers.wrap(runner.model, "tokenize", "python: tokenize")
    timers.wrap(runner, "_step", "thread: _step (decode wait + step)")
    timers.wrap(runner.kv, "sync", "thread: kv.sync (prompt to KV)")
    timers.wrap(runner, "generate", "thread: generate")
    timers.wrap(runner, "choice_logprobs", "thread: choice_logprobs (select)")


def profile_width(width: int, n: int, max_tokens: int, threads: int | None) -> dict:
    from icrm_sgl.judging.icrm import ICRM

    options: dict = {"n_seq": width}
    if threads:
        options["n_threads"] = threads
    model = ICRM(rm_type="pairwise", num_shots=3, **options)
    timers = Timers()
    try:
        runner = model.backend.runner
        instrument(runner, timers)
        examples = batching_examples()[:n]
        load0 = os.getloadavg()[0]
        start = time.perf_counter()
        results = list(model.judge_batch(examples, num_threads=width, max_tokens=max_tokens))
        wall = time.perf_counter() - start
        batcher = runner.scheduler
        width_mean = batcher.tokens / batcher.steps if batcher.steps else 1.0
    finally:
        model.close()
    tokens = sum(r.meta.get("completion_tokens") or 0 for r in results)
    return {
        "width": width,
        "examples": n,
        "wall_s": wall,
        "examples_per_s": n / wall,
        "completion_tokens": tokens,
        "mean_step_width": width_mean,
        "all_ok": all(r.ok for r in results),
        "load_start": load0,
        "load_end": os.getloadavg()[0],
        "seconds": dict(sorted(timers.seconds.items())),
        "calls": dict(sorted(timers.calls.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = [profile_width(w, args.examples, args.max_tokens, args.threads) for w in args.widths]
    for row in rows:
        print(
            f"\nwidth {row['width']}: {row['examples']} examples in {row['wall_s']:.1f} s "
            f"({row['examples_per_s']:.3f}/s), {row['completion_tokens']} tokens decoded, "
            f"mean step width {row['mean_step_width']:.2f}, load {row['load_start']:.1f}"
            f" -> {row['load_end']:.1f}"
        )
        for label, seconds in row["seconds"].items():
            print(f"  {label:<42} {seconds:8.2f} s  {row['calls'][label]:>6} calls")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
