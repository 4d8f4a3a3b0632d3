"""Shared fixtures: one real SmolLM2 backend per test session (loading takes ~0.3 s, but
the few-shot prefix it caches is what makes later tests fast)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# Three xdist workers share two cores: one llama.cpp thread per engine, or their spinning
# threads slow each other down by orders of magnitude (subprocesses inherit it).
os.environ.setdefault("ICRM_THREADS", "1")
# The same for torch (TRL and verl tests) and anything else built with OpenMP.
os.environ.setdefault("OMP_NUM_THREADS", "1")

#: Set in the first process of a run (the xdist controller) to the run's own cache folder;
#: the workers it starts inherit it and keep it.
_SESSION_CACHE = "ICRM_TEST_SESSION_CACHE"
#: The folder this process made, and the ``ICRM_CACHE_DIR`` it replaced.
_MADE = pytest.StashKey[tuple[str, str | None]]()


def pytest_configure(config: pytest.Config) -> None:
    """Point everything the project caches (converted checkpoints, verdict cache, prefix
    state) at a fresh empty folder, so each run meets what a new machine meets."""
    if os.environ.get(_SESSION_CACHE):
        return
    folder = tempfile.mkdtemp(prefix="icrm-test-cache-")
    config.stash[_MADE] = (folder, os.environ.get("ICRM_CACHE_DIR"))
    os.environ[_SESSION_CACHE] = os.environ["ICRM_CACHE_DIR"] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's cache folder and restore the environment (only the process that
    made the folder does)."""
    if _MADE not in config.stash:
        return
    folder, before = config.stash[_MADE]
    shutil.rmtree(folder, ignore_errors=True)
    del os.environ[_SESSION_CACHE]
    if before is None:
        os.environ.pop("ICRM_CACHE_DIR", None)
    else:
        os.environ["ICRM_CACHE_DIR"] = before


#: Small token budgets keep the real model fast in tests; verdict validity is the point.
FAST = {"max_tokens": 40}


#: Session fixtures that start a server process (or make real eval runs: the report tests';
#: or load the training tests' policy model), and the xdist group of the tests that use one.
#: Under ``-n`` (pytest-xdist, ``--dist loadgroup``, the default run) a group runs on one
#: worker, so each fixture runs once.
SERVER_GROUPS = {
    "llama_server": "llama_server",
    "server": "icrm_serve",
    "eval_folders": "report",
    "policy": "policy",
}
#: Tests marked ``sglang_server`` share one group: the CPU sglang servers (the session one
#: and the router tier's) never run at the same time.
SGLANG_GROUP = "sglang_server"


#: Tests that start first: the longest that run alone (not in a server's group). Last in
#: collection order, mypy (~25 s of one core) ran by itself at the end of the run.
FIRST = ("tests/test_types.py::",)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put each test that needs a real server into that server's xdist group, and the
    ``FIRST`` tests first (xdist hands out work in this order, groups before lone tests)."""
    items.sort(key=lambda item: not item.nodeid.startswith(FIRST))
    for item in items:
        names = getattr(item, "fixturenames", ())
        groups = {SERVER_GROUPS[name] for name in names if name in SERVER_GROUPS}
        if item.get_closest_marker("sglang_server"):
            groups.add(SGLANG_GROUP)
        for group in sorted(groups):
            item.add_marker(pytest.mark.xdist_group(group))


@dataclass
class CliRun:
    """What a command-line run gave, with the fields of ``subprocess.CompletedProcess``."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capfd, monkeypatch):
    """Run ``icrm-sgl ARGS`` in this process through the real entry point (``main``), with
    the real model: each subprocess would spend most of its time importing sglang. Output
    is captured at the file-descriptor level, so llama.cpp's C-level logging counts too.
    Tests about the process itself (signals, interpreter exit, the eval lock) keep real
    subprocesses."""

    def run(*args, main=None):
        if main is None:
            from icrm_sgl.cli import main
        monkeypatch.setattr(sys, "argv", ["icrm-sgl", *map(str, args)])
        sigterm = signal.getsignal(signal.SIGTERM)
        capfd.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            if isinstance(exc.code, str):  # as the interpreter would print it
                print(exc.code, file=sys.stderr)
        finally:
            signal.signal(signal.SIGTERM, sigterm)
        out, err = capfd.readouterr()
        return CliRun(code, out, err)

    return run


@pytest.fixture(scope="session")
def local_backend():
    from icrm_sgl.engines.local.engine import LocalBackend, LocalOptions

    backend = LocalBackend(LocalOptions(n_ctx=4096))
    yield backend
    backend.shutdown()


@pytest.fixture(scope="session")
def pairwise_model(local_backend):
    from icrm_sgl import ICRM

    return ICRM(rm_type="pairwise", num_shots=1, backend=local_backend)


@pytest.fixture(scope="session")
def individual_model(local_backend):
    from icrm_sgl import ICRM

    return ICRM(rm_type="individual", num_shots=1, backend=local_backend)


@pytest.fixture
def pairwise_example():
    return json.loads((EXAMPLES / "test_pairwise.json").read_text())


@pytest.fixture
def individual_example():
    return json.loads((EXAMPLES / "test_individual.json").read_text())


@pytest.fixture(scope="session")
def llama_server():
    """The loopback llama.cpp server's base URL (``http://127.0.0.1:PORT/v1``), one thread."""
    from devtools.llama_server import llama_server

    with llama_server(threads=1, timeout=60) as url:
        yield url


@dataclass(frozen=True)
class ConversionRace:
    """Two ``python -m devtools.sglang_cpu.convert`` started at once on one cache folder."""

    folder: Path
    #: The checkpoint was not there yet when they started (else nothing raced).
    raced: bool
    #: Each process's (stdout, stderr, exit code).
    results: list[tuple[str, str, int]]


def race_conversions(folder: Path) -> ConversionRace:
    """Convert the bundled model into ``folder`` from two processes at once."""
    import subprocess

    from devtools.sglang_cpu.convert import CHECKPOINT

    raced = not (folder / CHECKPOINT / "config.json").is_file()
    env = {**os.environ, "ICRM_CACHE_DIR": str(folder)}
    command = [sys.executable, "-m", "devtools.sglang_cpu.convert"]
    runs = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [(*run.communicate(timeout=900), run.returncode) for run in runs]
    return ConversionRace(folder, raced, results)


@pytest.fixture(scope="session")
def converted_checkpoint() -> ConversionRace | None:
    """The run's one conversion of the bundled model (for the CPU sglang server and the
    training tests), made as two processes racing on the run's empty cache folder: the
    race the conversion test checks, at no extra cost when it is the first to ask.
    None where another worker had converted it already."""
    from devtools.sglang_cpu.convert import CHECKPOINT

    folder = Path(os.environ["ICRM_CACHE_DIR"])
    if (folder / CHECKPOINT / "config.json").is_file():
        return None
    return race_conversions(folder)
