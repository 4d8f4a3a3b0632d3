"""What a new Python process pays to import icrm-sgl's judge class, with sglang's package
``__init__`` deferred (as icrm_sgl does) and with it run first (as before: torch and
transformers come with it).

Run from the repository root::

    python bench/bench_import.py [--rounds 3] [--out bench/results/import.json]

Each round runs both variants, alternating which goes first, each in a fresh interpreter;
wall and CPU (user + sys) seconds go to ``--out`` (JSON) and a table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

VARIANTS = {
    "deferred (from icrm_sgl import ICRM)": "from icrm_sgl import ICRM",
    "sglang first (import sglang; from icrm_sgl import ICRM)": (
        "import sglang; sglang.function; from icrm_sgl import ICRM"
    ),
}


def timed(code: str) -> tuple[float, float]:
    """Wall and CPU seconds of ``python -c code`` in a fresh interpreter."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "import.json"))
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for round_ in range(args.rounds):
        order = list(VARIANTS) if round_ % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            runs[name].append(timed(VARIANTS[name]))
    rows = {
        name: {
            "wall_s": [round(w, 2) for w, _ in got],
            "cpu_s": [round(c, 2) for _, c in got],
            "median_wall_s": round(statistics.median(w for w, _ in got), 2),
            "median_cpu_s": round(statistics.median(c for _, c in got), 2),
        }
        for name, got in runs.items()
    }
    print(f"{'variant':58} {'wall s':>7} {'CPU s':>7}")
    for name, row in rows.items():
        print(f"{name:58} {row['median_wall_s']:7.2f} {row['median_cpu_s']:7.2f}")
    Path(args.out).write_text(
        json.dumps(
            {"rounds": args.rounds, "load_average": os.getloadavg(), "variants": rows}, indent=2
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
