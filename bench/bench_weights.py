"""The packaged model's Q4_1 weights against the Q8_0 copy the local engine runs.

Run from the repository root::

    python bench/bench_weights.py [--rounds 2] [--out bench/results/weights.json]

Per round and weights, one after the other in one process (one llama.cpp thread, the run's
own empty cache folder, no kept prefix states): raw prompt evaluation and decode speed
(1,024 tokens, then 64 one-token steps at that context), then a fresh local engine's first
pairwise verdict on ``examples/test_pairwise.json`` (3 shots, 100 tokens: the prompt is
evaluated whole) and the same verdict again (its prompt cached: decode only). CPU seconds
of this process; the order of the two weights flips every round. A table goes to stdout,
every figure to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def raw_speed(path: Path) -> tuple[float, float]:
    """Prompt and decode tokens per CPU-second of one llama.cpp thread."""
    import llama_cpp

    from icrm_sgl.engines.local.llama_adapter import llama_without_amx

    llama_without_amx()  # weights loaded as the local engine loads them
    llm = llama_cpp.Llama(str(path), n_ctx=2048, n_threads=1, n_threads_batch=1, verbose=False)
    tokens = llm.tokenize(b"The quick brown fox jumps over the lazy dog. " * 120)[:1024]
    started = time.process_time()
    llm.eval(tokens)
    prompt = len(tokens) / (time.process_time() - started)
    started = time.process_time()
    for token in tokens[:64]:
        llm.eval([token])
    decode = 64 / (time.process_time() - started)
    llm.close()
    return prompt, decode


def verdicts(path: Path, example: dict) -> tuple[float, float, str]:
    """CPU seconds of a fresh engine's first verdict and of the same verdict again."""
    from icrm_sgl import ICRM
    from icrm_sgl.engines.local.engine import LocalBackend, LocalOptions

    backend = LocalBackend(LocalOptions(model_name=str(path), n_threads=1))
    try:
        model = ICRM(rm_type="pairwise", backend=backend, num_shots=3)
        started = time.process_time()
        first = model.judge(example, max_tokens=100)
        cold = time.process_time() - started
        started = time.process_time()
        model.judge(example, max_tokens=100)
        warm = time.process_time() - started
    finally:
        backend.shutdown()
    return cold, warm, first.verdict["choice"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "weights.json"))
    args = parser.parse_args()
    os.environ["ICRM_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-weights-")
    os.environ["ICRM_DISK_CACHE_MIB"] = "0"
    from icrm_sgl.engines.local.gguf import default_model_path
    from icrm_sgl.engines.local.requantize import default_weights

    started = time.perf_counter()
    weights = {"Q4_1 (packaged)": default_model_path(), "Q8_0 (run)": default_weights()}
    made_s = time.perf_counter() - started
    example = json.loads((REPO / "examples" / "test_pairwise.json").read_text("utf-8"))
    runs: dict[str, dict[str, list]] = {name: {} for name in weights}
    for round_ in range(args.rounds):
        order = list(weights) if round_ % 2 == 0 else list(reversed(weights))
        for name in order:
            prompt, decode = raw_speed(weights[name])
            cold, warm, choice = verdicts(weights[name], example)
            figures = {"prompt_tok_per_s": prompt, "decode_tok_per_s": decode,
                       "first_verdict_cpu_s": cold, "same_verdict_cpu_s": warm}  # fmt: skip
            for key, value in figures.items():
                runs[name].setdefault(key, []).append(round(value, 2))
            runs[name].setdefault("choice", []).append(choice)
    medians = {
        name: {k: statistics.median(v) for k, v in got.items() if k != "choice"}
        for name, got in runs.items()
    }
    result = {"rounds": args.rounds, "copy_made_s": round(made_s, 2), "runs": runs}
    result["median"] = medians
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    keys = list(next(iter(medians.values())))
    print(f"{'weights':18s}" + "".join(f"{k:>22s}" for k in keys))
    for name, row in medians.items():
        print(f"{name:18s}" + "".join(f"{row[k]:22.2f}" for k in keys))
    print(f"making the Q8_0 copy: {made_s:.2f} s")


if __name__ == "__main__":
    main()
