"""Record the built-in judges' greedy local-engine outputs, as test data.

Run at a commit whose outputs are the reference, with that commit's package on
PYTHONPATH (see ``tests/judges/test_builtin_unchanged.py`` for the history)::

    PYTHONPATH=<checkout> python devtools/record_builtin_outputs.py tests/data/builtin_outputs.json

The numbers belong to a llama.cpp build and CPU, so the file keeps one recording per build
(``build_identity``): this machine's replaces its own, the others stay. The cases (the two
example files and ten pool examples per mode) and the settings come from ``builtin_cases``,
which ``tests/judges/test_builtin_unchanged.py`` uses too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Small budgets keep the recording and its test fast; greedy, one shot.
SETTINGS = {"num_shots": 1, "max_tokens": 40}


def builtin_cases() -> dict[str, list[dict]]:
    """Per mode: the example file's example, then pool entries 1-10 (entry 0 is the shot)."""
    cases = {}
    for mode in ("individual", "pairwise"):
        example = json.loads((ROOT / "examples" / f"test_{mode}.json").read_text("utf-8"))
        pool = json.loads((ROOT / "icrm_sgl" / "shots_pool" / f"{mode}.json").read_text("utf-8"))
        batch = [{k: v for k, v in e.items() if k != "feedback"} for e in pool[1:11]]
        cases[mode] = [{"id": "example", **example}, *batch]
    return cases


def record(backend, per_mode: int | None = None) -> dict[str, list[dict]]:
    """Verdicts and probabilities of every case (or the first ``per_mode`` of each mode),
    judged as one batch per mode."""
    from icrm_sgl import ICRM

    out = {}
    for mode, cases in builtin_cases().items():
        examples = cases[:per_mode]
        model = ICRM(rm_type=mode, num_shots=SETTINGS["num_shots"], backend=backend)
        results = model.judge_batch(examples, max_tokens=SETTINGS["max_tokens"])
        out[mode] = [
            {"id": r.id, "verdict": r.verdict, "probabilities": r.meta.get("probabilities")}
            for r in results
        ]
    return out


def recordings(path: Path) -> list[dict]:
    """The recordings in ``path``: ``{"build": ..., "individual": [...], "pairwise": [...]}``."""
    return json.loads(path.read_text("utf-8"))["recordings"] if path.exists() else []


def main() -> None:
    from icrm_sgl.engines.local.engine import LocalBackend, LocalOptions
    from icrm_sgl.engines.local.llama_adapter import build_identity

    backend = LocalBackend(LocalOptions(n_ctx=4096))
    try:
        data = {"build": build_identity(), **record(backend)}
    finally:
        backend.shutdown()
    path = Path(sys.argv[1])
    kept = [r for r in recordings(path) if r["build"] != data["build"]]
    text = json.dumps({"recordings": [*kept, data]}, indent=1, ensure_ascii=False)
    path.write_text(text + "\n", "utf-8")


if __name__ == "__main__":
    main()
