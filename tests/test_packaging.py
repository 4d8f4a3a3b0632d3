"""The wheel holds everything the package reads at run time; installed from the wheel
into a fresh virtual environment, the command line scores the example."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pytest

from icrm_sgl.judges import default_judge
from tests.conftest import EXAMPLES, ROOT

PACKAGE = ROOT / "icrm_sgl"
PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the tracked sources (the work tree stays clean)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in source_files():
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    out = tmp / "dist"
    subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob("icrm_sgl-*.whl")
    return path


#: What an unpacked sdist or a copied tree may hold besides the sources.
NOT_SOURCES = (
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    ".venv",
    ".git",
    "eval-results",
    "runs",
)


def source_files() -> list[str]:
    """The tracked (and new, not ignored) files of a git checkout; outside one (an unpacked
    sdist), every file but build output and caches."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = None
    if listed:
        return listed
    files = (path.relative_to(ROOT) for path in ROOT.rglob("*") if path.is_file())
    return [str(rel) for rel in files if not _built(rel)]


def _built(rel: Path) -> bool:
    """Build output, caches or version control: not part of the sources."""
    return any(fnmatch(part, pattern) for part in rel.parts for pattern in NOT_SOURCES)


def data_files_opened() -> set[str]:
    """Package files (not modules) opened while building both judging modes' prompts."""
    from icrm_sgl.judges import builtin_judge

    opened: set[str] = set()
    root = str(PACKAGE)

    def hook(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], str) and args[0].startswith(root):
            opened.add(os.path.relpath(args[0], ROOT))

    sys.addaudithook(hook)  # hooks cannot be removed; this one only records package paths
    for rm_type in ("individual", "pairwise"):
        judge = builtin_judge(rm_type)
        judge.prompt(list(judge.shots_pool)[:2])
    return {p for p in opened if not p.endswith((".py", ".pyc"))}


def test_wheel_holds_every_data_file_the_package_opens(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    opened = data_files_opened()
    assert {
        "icrm_sgl/shots_pool/pairwise.json",
        "icrm_sgl/judges/templates/pairwise.template",
    } <= opened
    assert opened <= names, f"missing from the wheel: {sorted(opened - names)}"
    shipped = {
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }
    assert shipped <= names, f"package files missing from the wheel: {sorted(shipped - names)}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert (
        "icrm-sgl = icrm_sgl.cli:main" in scripts and "icrm = icrm_sgl.cli.original:main" in scripts
    )


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_scores_the_example(wheel, tmp_path):
    """The venv sees the system's packages (``--system-site-packages``) so that sglang and
    llama-cpp-python are not rebuilt; icrm-sgl itself comes from the wheel only."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    bin_dir = venv / "bin"
    subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel],
        check=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [bin_dir / "python", "-c", "import icrm_sgl; print(icrm_sgl.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where
    example = shutil.copy(EXAMPLES / "test_pairwise.json", tmp_path / "example.json")
    proc = subprocess.run(
        [bin_dir / "icrm-sgl", "score", example, "--num-shots", "1", "--max-tokens", "60"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    default_judge("pairwise").validate(json.loads(proc.stdout))


def test_the_sources_are_found_outside_a_git_checkout(monkeypatch):
    """An unpacked sdist has no git: the wheel is then built from the files on disk."""
    monkeypatch.setenv("PATH", "")  # no git to run
    names = source_files()
    assert "pyproject.toml" in names and "icrm_sgl/__init__.py" in names
    assert not any(_built(Path(n)) for n in names)
    assert not any(n.startswith(".git/") or "__pycache__" in n for n in names)
