"""What the examples and the CLI write by default, run from the repository root, is
ignored by git: a run never leaves untracked output for a commit to sweep up."""

import re
import shutil
import subprocess

import pytest

from icrm_sgl.cli.eval import default_output_dir
from tests.conftest import ROOT


def _grpo_default() -> str:
    """The GRPO example's ``--output-dir`` default, read from its source."""
    source = (ROOT / "examples" / "grpo_with_icrm.py").read_text()
    (default,) = re.findall(r'"--output-dir", default="([^"]+)"', source)
    return default


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout"
)
@pytest.mark.parametrize(
    "written",
    [
        lambda: f"{_grpo_default()}/in_process/completions/completions_00001.parquet",
        lambda: f"{_grpo_default()}/serve/config.json",
        lambda: str(default_output_dir("my_pairs.jsonl") / "results.jsonl"),
        lambda: str(default_output_dir("data/set/dataset.json") / "chart.png"),
    ],
    ids=["grpo-in-process", "grpo-serve", "eval", "eval-dataset-folder"],
)
def test_default_outputs_are_ignored_by_git(written):
    path = written()
    check = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT, capture_output=True
    )
    assert check.returncode == 0, f"{path} is not ignored: add its folder to .gitignore"
