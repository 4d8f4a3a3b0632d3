"""Benchmark of the sglang engine's two verdict layouts on a real sglang server.

Run from the repository root::

    python bench/bench_sglang.py [--endpoint URL] [--examples 40] [--max-tokens 25]

Without ``--endpoint`` it launches the CPU test server (bundled SmolLM2 converted to a
Hugging Face checkpoint; see ``devtools/sglang_cpu``). One run measures, on one server:

1. verdicts/s, round trips per verdict and the share of prompt tokens the server reports
   cached, for the ``per_field`` and ``one_request`` layouts, at concurrency 1 and 8, on
   the same tricky pairwise examples (cache flushed and the shot prefix warmed before each
   cell; cells interleaved so load from other processes hits both layouts alike);
2. decode tokens/s on the server under the field regex (``*``), under the bounded form it
   replaced (``{0,2000}``) and unconstrained, as ratios of the unconstrained rate;
3. the per-token mask time of xgrammar and llguidance for both regex forms, offline, with
   SmolLM2's tokenizer;
4. routed: two CPU servers launched by the engine behind sglang's router, and the same
   examples judged at concurrency 8 by one server alone, through the engine's router
   (routing key hashed to a worker), and through routers with cache-aware routing with
   and without sticky keys and with round-robin: verdicts/s, cached share, verdicts and
   cached share per worker, and how many verdicts had requests on two workers; then one
   server with ``--dp-size 2`` (the engine's ``routing=dp``).

``--sections`` picks what runs; each run updates its sections in ``--out``.

A table goes to stdout, every figure to ``--out`` (JSON). A benchmark, not a test: minutes
long and noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.routes import per_worker, recorded_routes, workers_per_key  # noqa: E402
from devtools.sglang_cpu import converted_model, cpu_engine_options  # noqa: E402
from devtools.tricky import tricky_pairwise  # noqa: E402
from icrm_sgl import ICRM  # noqa: E402
from icrm_sgl.engines import create_engine  # noqa: E402
from icrm_sgl.errors import EngineError  # noqa: E402
from icrm_sgl.programs.judge import FIELD_REGEX, JSON_CHAR  # noqa: E402

BOUNDED_FIELD_REGEX = JSON_CHAR + '{0,2000}"'
LAYOUTS = ("per_field", "one_request")
SECTIONS = ("layouts", "decode", "masks", "routed")


def flush(backend) -> None:
    """Empty every prefix cache behind ``backend`` (each worker behind a router)."""
    for url in backend.workers or [backend.base_url]:
        backend._post({}, path="/flush_cache", base_url=url)


def judge_cell(backend, examples: list, concurrency: int, max_tokens: int, num_shots: int) -> dict:
    """Judge every example on flushed servers with the shot prefix warmed."""
    flush(backend)
    model = ICRM(rm_type="pairwise", engine="sglang", backend=backend, num_shots=num_shots)
    prefix = model.definition.prompt(model.default_shots).segments[0]
    backend.cache_prefix(prefix)
    started = time.perf_counter()
    results = list(model.judge_batch(examples, num_threads=concurrency, max_tokens=max_tokens))
    elapsed = time.perf_counter() - started
    ok = [r for r in results if r.ok]
    prompt = sum(r.meta["prompt_tokens"] or 0 for r in ok)
    cached = sum(r.meta["cached_tokens"] or 0 for r in ok)
    return {
        "num_shots": num_shots,
        "max_tokens": max_tokens,
        "concurrency": concurrency,
        "verdicts": len(results),
        "valid": len(ok),
        "seconds": round(elapsed, 2),
        "verdicts_per_s": round(len(ok) / elapsed, 3),
        "round_trips_mean": round(statistics.mean(r.meta["round_trips"] for r in ok), 2),
        "completion_tokens_mean": round(
            statistics.mean(r.meta["completion_tokens"] for r in ok), 1
        ),
        "truncated_share": round(sum(bool(r.meta["truncated"]) for r in ok) / len(ok), 3),
        "cached_share": round(cached / prompt, 4) if prompt else None,
    }


def layout_cell(backend, layout: str, examples: list, concurrency: int, args) -> dict:
    """One layout at one concurrency."""
    backend.options.layout = layout
    cell = judge_cell(backend, examples, concurrency, args.max_tokens, args.num_shots)
    return {"layout": layout, **cell}


def routed_cell(backend, name: str, examples: list, args) -> dict:
    """One routing setup at concurrency 8, with where each verdict's requests went."""
    with recorded_routes() as routes:
        cell = judge_cell(backend, examples, 8, args.max_tokens, args.num_shots)
    split = sum(len(w) > 1 for w in workers_per_key(routes).values())
    return {"setup": name, **cell, "workers": per_worker(routes), "split_verdicts": split}


#: Routers started in front of the same two workers: (row name, policy, sticky keys).
EXTRA_ROUTERS = (
    ("router cache_aware, sticky keys", "cache_aware", True),
    ("router cache_aware", "cache_aware", False),
    ("router round_robin", "round_robin", False),
)


def routed_rows(examples: list, args) -> list[dict]:
    """One server alone, then two behind the router the engine launches, then the same
    two behind routers with other policies."""
    from icrm_sgl.engines.server_process import ServerGroup
    from icrm_sgl.engines.sglang.router import spawn_router, wait_for_workers

    fleet = create_engine("sglang", **cpu_engine_options(num_workers=2))
    rows = []

    def run(backend, name: str) -> None:
        rows.append(routed_cell(backend, name, examples, args))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    try:
        workers = fleet.workers
        run(create_engine("sglang", endpoint=workers[0]), "one server")
        run(fleet, f"router {fleet.options.router_policy} (engine default)")
        for name, policy, sticky in EXTRA_ROUTERS:
            log = f"{fleet.server.log_path}.{policy}.{int(sticky)}"
            router = spawn_router(sys.executable, workers, policy, sticky, None, [], log)
            try:
                router.wait_ready(60, "/health", {}, "sglang router")
                wait_for_workers(router, 2, {}, 60)
                run(create_engine("sglang", endpoint=router.url), name)
            finally:
                ServerGroup([router]).stop()
    finally:
        fleet.shutdown()
    try:
        dp = create_engine("sglang", **cpu_engine_options(num_workers=2, routing="dp"))
    except EngineError as exc:
        rows.append({"setup": "one server, --dp-size 2", "error": str(exc).splitlines()[0]})
        return rows
    try:
        run(dp, "one server, --dp-size 2")
    finally:
        dp.shutdown()
    return rows


def decode_rate(backend, prompt: str, regex: str | None, tokens: int) -> dict:
    """Tokens/s of one greedy generation on a warm prompt (prefill is cached)."""
    params: dict[str, Any] = {"max_new_tokens": tokens, "temperature": 0, "ignore_eos": True}
    if regex is not None:
        params["regex"] = regex
    backend._post({"text": prompt, "sampling_params": {"max_new_tokens": 0}})
    started = time.perf_counter()
    meta = backend._post({"text": prompt, "sampling_params": params})["meta_info"]
    elapsed = time.perf_counter() - started
    return {"tokens": meta["completion_tokens"], "seconds": round(elapsed, 3)}


def decode_rates(backend, repeats: int, tokens: int) -> dict:
    """Constrained vs unconstrained decode, interleaved; ratios of the unconstrained rate."""
    prompt = 'Describe a good answer to a travel question.\n{"analysis": "'
    forms = {"field *": FIELD_REGEX, "field {0,2000}": BOUNDED_FIELD_REGEX, "none": None}
    runs: dict[str, list[dict]] = {name: [] for name in forms}
    for _ in range(repeats):
        for name, regex in forms.items():
            runs[name].append(decode_rate(backend, prompt, regex, tokens))
    rates = {
        name: sum(r["tokens"] for r in rs) / sum(r["seconds"] for r in rs)
        for name, rs in runs.items()
    }
    return {
        "tokens_per_s": {k: round(v, 2) for k, v in rates.items()},
        "ratio_to_unconstrained": {k: round(v / rates["none"], 3) for k, v in rates.items()},
        "runs": runs,
    }


def mask_costs(steps: int = 64, bounded_steps: int = 4) -> dict:
    """Per-token mask time (ms) of xgrammar and llguidance for both regex forms (the
    bounded form over fewer tokens: xgrammar takes seconds per token on it)."""
    import llguidance
    import llguidance.hf
    import numpy as np
    import xgrammar as xgr
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(converted_model()))
    all_ids = tok.encode(" a plain sentence with words" * 20)
    out: dict[str, dict[str, float]] = {}
    info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=len(tok))
    compiler = xgr.GrammarCompiler(info)
    ll_tok = llguidance.hf.from_tokenizer(tok)
    forms = (
        ("field *", FIELD_REGEX, steps),
        ("field {0,2000}", BOUNDED_FIELD_REGEX, bounded_steps),
    )
    for name, regex, n in forms:
        text_ids = all_ids[:n]
        started = time.perf_counter()
        matcher = xgr.GrammarMatcher(compiler.compile_regex(regex))
        compile_s = time.perf_counter() - started
        bitmask = xgr.allocate_token_bitmask(1, info.vocab_size)
        started = time.perf_counter()
        for tid in text_ids:
            matcher.fill_next_token_bitmask(bitmask)
            matcher.accept_token(tid)
        xgr_ms = (time.perf_counter() - started) / len(text_ids) * 1000
        ll = llguidance.LLMatcher(ll_tok, llguidance.LLMatcher.grammar_from_regex(regex))
        words = np.empty((ll_tok.vocab_size + 31) // 32, dtype=np.int32)
        started = time.perf_counter()
        for tid in text_ids:
            ll.unsafe_compute_mask_ptr(words.ctypes.data, words.nbytes)
            ll.consume_token(tid)
        ll_ms = (time.perf_counter() - started) / len(text_ids) * 1000
        out[name] = {
            "xgrammar_compile_s": round(compile_s, 3),
            "xgrammar_ms_per_token": round(xgr_ms, 3),
            "llguidance_ms_per_token": round(ll_ms, 4),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", help="an sglang server or router (default: launch one)")
    parser.add_argument("--examples", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=25)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--decode-tokens", type=int, default=48)
    parser.add_argument("--num-shots", type=int, default=3)
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "sglang.json"))
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if sections - set(SECTIONS):
        parser.error(f"unknown sections {sorted(sections - set(SECTIONS))}; pick from {SECTIONS}")

    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {}
    report.update(
        machine={"platform": platform.platform(), "python": platform.python_version()},
        examples=args.examples,
        max_tokens=args.max_tokens,
        num_shots=args.num_shots,
    )
    examples = tricky_pairwise(args.examples)
    if sections & {"layouts", "decode"}:
        options = {"endpoint": args.endpoint} if args.endpoint else cpu_engine_options()
        report["server"] = args.endpoint or "launched CPU server (SmolLM2-135M, float32, xgrammar)"
        backend = create_engine("sglang", **options)
        try:
            if "layouts" in sections:
                report["layouts"] = []
                for conc in (int(c) for c in args.concurrency.split(",")):
                    for layout in LAYOUTS:
                        cell = layout_cell(backend, layout, examples, conc, args)
                        report["layouts"].append(cell)
                        print(json.dumps(cell), file=sys.stderr, flush=True)
            if "decode" in sections:
                report["decode"] = decode_rates(backend, repeats=2, tokens=args.decode_tokens)
        finally:
            backend.shutdown()
    if "routed" in sections:
        report["routed"] = routed_rows(examples, args)
    if "masks" in sections:
        report["mask_costs"] = mask_costs()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)


def print_table(report: dict) -> None:
    if report.get("layouts"):
        print(f"{'layout':<12} {'conc':>4} {'valid':>7} {'verdicts/s':>10} "
              f"{'round trips':>11} {'cached':>7} {'truncated':>9}")  # fmt: skip
        for c in report["layouts"]:
            print(
                f"{c['layout']:<12} {c['concurrency']:>4} {c['valid']:>3}/{c['verdicts']:<3} "
                f"{c['verdicts_per_s']:>10.3f} {c['round_trips_mean']:>11.2f} "
                f"{c['cached_share']:>7.1%} {c['truncated_share']:>9.0%}"
            )
    if report.get("decode"):
        print("\ndecode on the server (tokens/s, ratio to unconstrained)")
        for name, rate in report["decode"]["tokens_per_s"].items():
            ratio = report["decode"]["ratio_to_unconstrained"][name]
            print(f"  {name:<16} {rate:>8.2f}  {ratio:.3f}")
    if report.get("mask_costs"):
        print("\nmask per token (ms)      xgrammar   llguidance   xgrammar compile (s)")
        for name, m in report["mask_costs"].items():
            print(
                f"  {name:<20} {m['xgrammar_ms_per_token']:>10.3f} "
                f"{m['llguidance_ms_per_token']:>12.4f} {m['xgrammar_compile_s']:>10.3f}"
            )
    if report.get("routed"):
        print(f"\n{'routing (conc 8)':<28} {'valid':>7} {'verdicts/s':>10} {'cached':>7} "
              f"{'split':>5}  verdicts per worker")  # fmt: skip
        for r in report["routed"]:
            if "error" in r:
                print(f"{r['setup']:<28} failed: {r['error']}")
                continue
            print(
                f"{r['setup']:<28} {r['valid']:>3}/{r['verdicts']:<3} "
                f"{r['verdicts_per_s']:>10.3f} {r['cached_share']:>7.1%} "
                f"{r['split_verdicts']:>5}  {sorted(w['verdicts'] for w in r['workers'].values())}"
            )


if __name__ == "__main__":
    main()
