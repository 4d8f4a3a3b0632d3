"""Which sglang chat template a model uses, told from the model's own template text.

sglang's frontend picks a template by matching the model path and falls back to a generic
``USER:`` / ``ASSISTANT:`` one for names it does not know; a model's tokenizer files (or a
GGUF's metadata) hold the real template, whose role markers name the format.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Role markers found in chat templates, mapped to sglang template names.
TEMPLATE_MARKERS = (
    ("<|im_start|>", "chatml"),
    ("<|start_header_id|>", "llama-3-instruct"),
    ("<start_of_turn>", "gemma-it"),
    ("[INST]", "llama-2-chat"),
)


def template_name_in(template_text: str) -> str | None:
    """The sglang template name whose role markers appear in a chat template, if any."""
    return next((name for marker, name in TEMPLATE_MARKERS if marker in template_text), None)


def local_chat_template(model_path: str) -> str:
    """The chat template stored in a local Hugging Face checkpoint directory ('' if none)."""
    folder = Path(model_path).expanduser()
    if not folder.is_dir():
        return ""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8", errors="replace")
    config = folder / "tokenizer_config.json"
    try:
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
    except (OSError, ValueError):
        return ""
    return template if isinstance(template, str) else ""
