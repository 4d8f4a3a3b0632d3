"""The package type-checks: ``mypy icrm_sgl`` (settings in pyproject.toml) finds no error.

Part of the default run so CI enforces it; about 2 s with mypy's cache (``.mypy_cache``),
about 13 s without one (a clean clone).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_error_in_the_package():
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "icrm_sgl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, f"mypy icrm_sgl failed:\n{run.stdout}{run.stderr}"
