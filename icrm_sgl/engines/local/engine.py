"""The embedded default engine: sglang programs run in-process on llama.cpp (CPU)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from pydantic import ConfigDict, Field
from sglang.lang.backend.base_backend import BaseBackend
from sglang.lang.chat_template import get_chat_template
from sglang.lang.choices import ChoicesDecision, ChoicesSamplingMethod, token_length_normalized
from sglang.lang.interpreter import StreamExecutor
from sglang.lang.ir import SglSamplingParams

from icrm_sgl.engines.capabilities import PROGRAM_ENGINE, Capabilities
from icrm_sgl.engines.chat_templates import template_name_in
from icrm_sgl.engines.local.gguf import DEFAULT_RUN_NAME, resolve_model_path  # model files: gguf.py
from icrm_sgl.engines.local.gguf import default_model_path as default_model_path
from icrm_sgl.engines.local.gguf import is_default as _is_default
from icrm_sgl.engines.local.gguf import token_counter as token_counter
from icrm_sgl.engines.local.llama_adapter import state_identity
from icrm_sgl.engines.local.llama_runner import LlamaRunner
from icrm_sgl.engines.local.requantize import default_weights
from icrm_sgl.engines.local.sampling import Sampling
from icrm_sgl.engines.local.state_store import StateStore
from icrm_sgl.engines.protocol import EngineOptions
from icrm_sgl.engines.sglang.frontend import program_text
from icrm_sgl.errors import EngineError
from icrm_sgl.plumbing.defaults import SEED
from icrm_sgl.plumbing.files import default_cache_dir

#: Environment variable with the disk bound (MiB) of kept prefix states; 0 turns them off.
DISK_CACHE_ENV = "ICRM_DISK_CACHE_MIB"
_DISK_CACHE_MIB = 1024
#: The folder of kept prefix states, inside the project's cache folder.
STATES_FOLDER = "prefix-states"


class LocalOptions(EngineOptions):
    """Settings of the local engine."""

    model_config = ConfigDict(extra="forbid")
    run_only: ClassVar[frozenset[str]] = frozenset(
        {"n_threads", "cache_mib", "n_seq", "disk_cache_mib"}
    )

    model_name: str | None = Field(None, description="GGUF path, or None for SmolLM2")
    n_ctx: int = Field(8192, ge=256)
    n_threads: int | None = Field(
        None,
        ge=1,
        description="llama.cpp threads; None: $ICRM_THREADS, else the cores other "
        "processes leave free when the engine starts",
    )
    n_seq: int = Field(
        1,
        ge=1,
        le=64,
        description="examples decoded together in one llama.cpp batch; KV memory is "
        "n_ctx x n_seq tokens",
    )
    cache_mib: int = Field(512, ge=0, description="memory bound of saved KV prefixes")
    disk_cache_mib: int | None = Field(
        None,
        ge=0,
        description="disk bound of the KV prefixes kept between runs (in "
        "$ICRM_CACHE_DIR/prefix-states); 0: off; None: $ICRM_DISK_CACHE_MIB, else 1024",
    )
    chat_template: str | None = Field(None, description="sglang template name override")
    seed: int | None = SEED
    no_repeat_ngram: int = Field(
        4, ge=0, description="forbid repeating any n-gram within one generated field (0: off)"
    )


def disk_cache_bytes(mib: int | None) -> int:
    """The disk bound of kept prefix states: ``mib``, else ``$ICRM_DISK_CACHE_MIB``, else
    1024 MiB."""
    if mib is None:
        value = os.environ.get(DISK_CACHE_ENV, "").strip()
        if value and not value.isdigit():
            raise EngineError(
                f"{DISK_CACHE_ENV} must be a whole number of MiB (0: off), not {value!r}"
            )
        mib = int(value) if value else _DISK_CACHE_MIB
    return mib * 2**20


def state_store(model_path: Path, mib: int | None) -> StateStore | None:
    """Where the model's prefix states are kept between runs; None when turned off."""
    max_bytes = disk_cache_bytes(mib)
    if max_bytes == 0:
        return None
    root = default_cache_dir().expanduser() / STATES_FOLDER
    return StateStore(root, state_identity(str(model_path)), max_bytes)


class LocalBackend(BaseBackend):
    """An sglang frontend backend that runs a GGUF model with llama-cpp-python."""

    #: ``run_batch`` threads: one per KV sequence (``n_seq``), each program run keeping its
    #: example's context live from field to field; their decode steps are batched together.
    batch_threads = 1
    capabilities = Capabilities(
        modes=("completion", "chat"), constraint="llguidance token masks", **PROGRAM_ENGINE
    )
    #: sglang's template for the model, or ``chat_template=``; ChatML when unknown.
    chat_template_known = True
    program_layout = "per_field"

    def __init__(self, options: LocalOptions | None = None) -> None:
        super().__init__()
        self.options = options or LocalOptions()
        default = _is_default(self.options.model_name)
        path = default_weights() if default else resolve_model_path(self.options.model_name)
        self.runner = LlamaRunner(
            str(path),
            n_ctx=self.options.n_ctx,
            n_threads=self.options.n_threads,
            cache_bytes=self.options.cache_mib * 2**20,
            n_seq=self.options.n_seq,
            store=state_store(path, self.options.disk_cache_mib),
        )
        self.batch_threads = self.options.n_seq
        self.model_name = DEFAULT_RUN_NAME if default else str(path)
        self.chat_template = get_chat_template(self._template_name())

    def _template_name(self) -> str:
        if self.options.chat_template:
            return self.options.chat_template
        jinja = self.runner.metadata.get("tokenizer.chat_template", "")
        return template_name_in(jinja) or "chatml"

    def get_model_name(self) -> str:
        return self.model_name

    def cache_prefix(self, prefix_str: str) -> None:
        self.runner.cache_prefix(prefix_str)

    def generate(self, s: StreamExecutor, sampling_params: SglSamplingParams):
        p = sampling_params
        stop = (p.stop,) if isinstance(p.stop, str) else tuple(p.stop or ())
        out = self.runner.generate(
            program_text(s),
            max_new_tokens=p.max_new_tokens,
            sampling=Sampling(
                temperature=p.temperature,
                top_p=p.top_p,
                top_k=p.top_k,
                min_p=p.min_p,
                frequency_penalty=p.frequency_penalty,
                presence_penalty=p.presence_penalty,
            ),
            stop=stop,
            regex=p.regex,
            json_schema=p.json_schema,
            seed=self.options.seed,
            ignore_eos=p.ignore_eos,
            no_repeat_ngram=self.options.no_repeat_ngram,
            run=s,
        )
        meta = {
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.completion_tokens,
            "cached_tokens": out.cached_tokens,
            "finish_reason": out.finish_reason,
        }
        return out.text, meta

    def generate_stream(self, s: StreamExecutor, sampling_params: SglSamplingParams):
        yield self.generate(s, sampling_params)

    def select(
        self,
        s: StreamExecutor,
        choices: list[str],
        temperature: float,
        choices_method: ChoicesSamplingMethod | None = None,
    ) -> ChoicesDecision:
        method = choices_method or token_length_normalized
        if method.requires_unconditional_logprobs:
            raise EngineError("the local engine does not compute unconditional logprobs")
        logprobs, prompt_tokens, cached = self.runner.choice_logprobs(
            program_text(s), choices, run=s
        )
        decision = method(
            choices=choices,
            normalized_prompt_logprobs=[sum(t[0] for t in lp) / len(lp) for lp in logprobs],
            input_token_logprobs=logprobs,
            output_token_logprobs=[[] for _ in choices],
        )
        decision.meta_info = {
            **(decision.meta_info or {}),
            "prompt_tokens": prompt_tokens,
            "cached_tokens": cached,
            "completion_tokens": 0,
        }
        return decision

    def set_progress_hook(self, hook: Callable[[int, int], None] | None) -> None:
        """Call ``hook(tokens, fields)`` as decoding advances, with what was just done (a
        field is one generation or selection call); None stops it."""
        self.runner.on_progress = hook

    def shutdown(self) -> None:
        self.runner.close()


def create(model_name: str | None = None, **options) -> LocalBackend:
    """Registry factory: ``model_name`` is a GGUF path or None for the packaged SmolLM2."""
    return LocalBackend(LocalOptions(model_name=model_name, **options))
