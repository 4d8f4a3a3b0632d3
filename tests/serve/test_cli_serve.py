"""``icrm-sgl serve`` refuses bad settings with one line, before it listens."""

import pytest


@pytest.mark.timeout(300)  # in-process: a regression would start listening for good
def test_bad_generation_settings_are_one_line_and_exit_2(run_cli):
    proc = run_cli("serve", "--max-tokens", "2", "--num-shots", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: max_tokens must be at least 4, got 2"]
