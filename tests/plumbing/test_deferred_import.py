"""icrm_sgl imports sglang's frontend language without the package's ``__init__`` (torch
and transformers, ~8 s of CPU here), from the command line and from Python alike; a name
read from the package runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from icrm_sgl.judges import default_judge
from icrm_sgl.plumbing.deferred_import import defer_init
from tests.conftest import EXAMPLES


def test_a_deferred_package_runs_its_init_once_at_the_first_name_read(tmp_path, monkeypatch):
    package = tmp_path / "deferred_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import os\nos.environ['DEFERRED_RUNS'] += 'x'\nVALUE = 7\n"
    )
    (package / "part.py").write_text("PART = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DEFERRED_RUNS", "")
    try:
        defer_init("deferred_pkg")
        import deferred_pkg.part  # as sglang.lang.* is imported (not `from deferred_pkg import`)

        part = sys.modules["deferred_pkg.part"]
        assert part.PART == 3
        assert os.environ["DEFERRED_RUNS"] == ""  # the submodule imported, the init not run
        import deferred_pkg

        assert deferred_pkg.VALUE == 7 and os.environ["DEFERRED_RUNS"] == "x"
        assert deferred_pkg.part is part and deferred_pkg.VALUE == 7
        assert os.environ["DEFERRED_RUNS"] == "x"  # once
        defer_init("deferred_pkg")  # imported already: left alone
        assert sys.modules["deferred_pkg"] is deferred_pkg
    finally:
        for name in ("deferred_pkg", "deferred_pkg.part"):
            sys.modules.pop(name, None)


#: A verdict in a fresh interpreter, then what the test appends; ``{call}`` is the way in.
_VERDICT_SCRIPT = """
import sys
{call}
print("heavy:", sorted({{"torch", "transformers"}} & set(sys.modules)))
"""

_THROUGH_CLI = """
from icrm_sgl.cli import main

sys.argv = ["icrm-sgl", "score", sys.argv[1], "--num-shots", "0", "--max-tokens", "8"]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
"""

_THROUGH_PYTHON = """
import json
from icrm_sgl import ICRM

with ICRM(rm_type="pairwise", num_shots=0) as model:
    example = json.loads(open(sys.argv[1], encoding="utf-8").read())
    print(json.dumps(model.judge(example, max_tokens=8).verdict))
"""


def _verdict_then(call: str, after: str = "") -> list[str]:
    """A verdict through ``call`` in a fresh interpreter, then ``after``; its output lines,
    the verdict's first."""
    script = _VERDICT_SCRIPT.format(call=call) + textwrap.dedent(after)
    done = subprocess.run(
        [sys.executable, "-c", script, str(EXAMPLES / "test_pairwise.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("call", [_THROUGH_CLI, _THROUGH_PYTHON], ids=["cli", "python"])
def test_a_verdict_never_imports_torch(call):
    lines = _verdict_then(call)
    assert lines[-1] == "heavy: []", lines
    default_judge("pairwise").validate(json.loads("\n".join(lines[:-1])))


@pytest.mark.slow  # imports all of sglang (torch); the deferral itself is tested above
def test_after_a_verdict_sglang_stays_whole():
    lines = _verdict_then(
        _THROUGH_PYTHON,
        """
        import sglang
        print("whole:", sglang.function is sglang.lang.api.function, "torch" in sys.modules)
        """,
    )
    assert lines[-2:] == ["heavy: []", "whole: True True"], lines
