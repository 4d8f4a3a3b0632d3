"""A real sglang server on this machine's CPU, for tests and benchmarks.

The bundled SmolLM2 is converted to a Hugging Face checkpoint (cached), and the server is
launched through the sglang engine's own launch path with CPU settings: torch-native
attention, float32, a small KV pool, and a pure-torch stand-in for the two ``sgl_kernel``
CPU ops (``shim/``) first on the server's PYTHONPATH.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from devtools.sglang_cpu.convert import converted_model

SHIM = Path(__file__).resolve().parent / "shim"

#: launch_server flags that make sglang 0.5.23 serve a small model on the CPU.
CPU_SERVER_ARGS = [
    "--attention-backend",
    "torch_native",
    # This CPU has AVX2 and no native bf16: a bf16 server spent 1.5x the CPU of a float32
    # one on the same verdicts (a 900-token prefill 45 s against 23 s).
    "--dtype",
    "float32",
    "--disable-cuda-graph",
    # On the CPU this is a share of free system memory when the server profiles it; the
    # KV pool itself is capped by --max-total-tokens. 0.1 fails when other servers are
    # loading at the same moment (free memory drops between the two readings).
    "--mem-fraction-static",
    "0.3",
    "--max-total-tokens",
    "16384",
    "--sleep-on-idle",
    "--skip-server-warmup",
]

#: One OpenMP thread: the server's decode slows ~10x when its threads compete for cores.
CPU_SERVER_ENV = {
    "PYTHONPATH": str(SHIM),
    "SGLANG_USE_CPU_ENGINE": "1",
    "OMP_NUM_THREADS": "1",
}


def cpu_engine_options(grammar_backend: str = "xgrammar", **extra: Any) -> dict[str, Any]:
    """Options for ``create_engine("sglang", ...)`` that launch the CPU test server."""
    env = dict(CPU_SERVER_ENV)
    ranks = extra.get("num_workers", 1) if extra.get("routing") == "dp" else 1
    if ranks > 1:  # sglang's CPU path wants one core set per data-parallel rank
        cores = os.cpu_count() or 1
        env["SGLANG_CPU_OMP_THREADS_BIND"] = "|".join(str(i % cores) for i in range(ranks))
    return {
        "model_name": str(converted_model()),
        "device": "cpu",
        "server_args": [*CPU_SERVER_ARGS, "--grammar-backend", grammar_backend],
        "server_env": env,
        "launch_timeout": 600,
        **extra,
    }
