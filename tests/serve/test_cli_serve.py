"""``icrm-sgl serve`` refuses bad settings with one line, before it listens."""

import subprocess
import sys

CLI = [sys.executable, "-m", "icrm_sgl.cli", "serve"]


def test_bad_generation_settings_are_one_line_and_exit_2():
    proc = subprocess.run(
        [*CLI, "--max-tokens", "2", "--num-shots", "0"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: max_tokens must be at least 4, got 2"]
