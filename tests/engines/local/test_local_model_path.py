"""A ``--model`` path the local engine cannot load says why, in one line naming it (exit 2),
before llama.cpp is asked (it would only say that loading failed)."""

import pytest

from tests.conftest import EXAMPLES

EXAMPLE = EXAMPLES / "test_individual.json"


def _not_gguf(tmp_path):
    path = tmp_path / "notes.gguf"
    path.write_text("not a model")
    return path


@pytest.mark.parametrize(
    "model,problem",
    [
        (lambda tmp: tmp / "missing.gguf", "no such file"),
        (lambda tmp: tmp, "is a directory"),
        (lambda tmp: "/proc/self/mem", "cannot read (Input/output error)"),  # reading fails
        (lambda tmp: "/dev/null", "not a regular file"),
        (_not_gguf, "not a GGUF file (no GGUF header)"),
    ],
    ids=["missing", "directory", "unreadable", "device", "not-gguf"],
)
def test_a_bad_model_path_is_one_line_naming_it(run_cli, tmp_path, model, problem):
    path = str(model(tmp_path))
    proc = run_cli("score", EXAMPLE, "--model", path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"error: local engine: model {path!r}: {problem}; pass a path to a GGUF file "
        "or leave the model unset for SmolLM2-135M-Instruct"
    )
    assert "Traceback" not in proc.stderr
