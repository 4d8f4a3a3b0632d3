"""The vLLM engine: connect to a vLLM server (OpenAI-compatible API), or launch one.

With an endpoint, or with no model, it connects (default ``http://127.0.0.1:8000/v1``).
With a model and no endpoint it starts ``vllm serve MODEL`` on a free local port with
``num_workers`` data-parallel replicas of ``num_gpu_per_worker`` tensor-parallel GPUs,
through the same server lifecycle as the sglang engine, and stops it on close.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from icrm_sgl.engines.hosted.openai_compat import (
    PRESETS,
    OpenAICompatEngine,
    OpenAIOptions,
    check_one_endpoint,
)
from icrm_sgl.engines.server_process import (
    HOST,
    ServerProcess,
    check_gpus,
    default_log_path,
    free_port,
    serve,
)
from icrm_sgl.errors import InputError, MissingDependencyError

#: Options that only make sense when this engine launches the server itself.
_LAUNCH_ONLY = (
    "num_workers",
    "num_gpu_per_worker",
    "dtype",
    "quantization",
    "server_args",
    "launch_timeout",
    "log_path",
    "executable",
)
INSTALL_HINT = "pip install vllm (on a CUDA machine), or pass endpoint=URL of a running server"


class VllmOptions(OpenAIOptions):
    """Settings of the vllm engine: the OpenAI-compatible client's, plus how to launch."""

    run_only: ClassVar[frozenset[str]] = OpenAIOptions.run_only | {"launch_timeout", "log_path"}

    num_workers: int = Field(1, ge=1, description="data-parallel replicas")
    num_gpu_per_worker: int = Field(1, ge=1, description="tensor-parallel GPUs per replica")
    dtype: str | None = Field(None, description="vllm serve --dtype (auto, bfloat16, ...)")
    quantization: str | None = Field(None, description="vllm serve --quantization (awq, fp8...)")
    server_args: list[str] = Field(default_factory=list, description="extra vllm serve flags")
    launch_timeout: float = Field(900.0, gt=0, description="seconds to wait for health")
    log_path: str | None = Field(None, description="server log file (default: a temp file)")
    executable: str = Field("vllm", description="the vllm command line program")

    @field_validator("server_args", mode="before")
    @classmethod
    def _split_args(cls, value: Any) -> Any:
        return shlex.split(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_mode(self) -> VllmOptions:
        misplaced = sorted(self.model_fields_set & set(_LAUNCH_ONLY))
        if misplaced and (self.base_url is not None or not self.model_name):
            raise ValueError(
                f"{', '.join(misplaced)} only apply when launching (a model name and no endpoint)"
            )
        return self


class LaunchedVllmEngine(OpenAICompatEngine):
    """The OpenAI-compatible engine on a vLLM server it started; ``shutdown`` stops it."""

    def __init__(self, options: VllmOptions, server: ServerProcess) -> None:
        self.server: ServerProcess | None = server
        self.url = server.url
        super().__init__(
            options.model_copy(update={"base_url": f"{server.url}/v1"}), PRESETS["vllm"]
        )
        # The options say what was asked (launch, no endpoint): the port changes every
        # launch and must not change cache keys.
        self.options = options

    @property
    def where(self) -> str:
        return f"vllm engine (launched at {self.url})"

    def shutdown(self) -> None:
        """Close connections and stop the server with its whole process group."""
        super().shutdown()
        if self.server is not None:
            self.server.stop()
            self.server = None


def launch_command(executable: str, options: VllmOptions, port: int) -> list[str]:
    """The ``vllm serve`` command line for these options."""
    assert options.model_name is not None  # only launched for a model (``create``)
    cmd = [executable, "serve", options.model_name, "--host", HOST, "--port", str(port)]
    cmd += ["--tensor-parallel-size", str(options.num_gpu_per_worker)]
    cmd += ["--data-parallel-size", str(options.num_workers)]
    if options.seed is not None:
        cmd += ["--seed", str(options.seed)]
    if options.dtype:
        cmd += ["--dtype", options.dtype]
    if options.quantization:
        cmd += ["--quantization", options.quantization]
    if options.api_key is not None:
        cmd += ["--api-key", options.api_key.get_secret_value()]
    return cmd + list(options.server_args)


def find_executable(options: VllmOptions) -> str:
    """The program to run: ``vllm`` needs the package installed; another path must exist."""
    if options.executable == "vllm" and importlib.util.find_spec("vllm") is None:
        raise MissingDependencyError(f"engine 'vllm' cannot launch a server: {INSTALL_HINT}")
    found = shutil.which(options.executable)
    if found is None:
        raise InputError(f"engine 'vllm': executable {options.executable!r} not found")
    return found


def launch(options: VllmOptions) -> LaunchedVllmEngine:
    """Start ``vllm serve`` for ``options.model_name``, wait for health, connect."""
    executable = find_executable(options)
    check_gpus("vllm", options.num_workers, options.num_gpu_per_worker)
    port = free_port()
    headers = (
        {"Authorization": f"Bearer {options.api_key.get_secret_value()}"}
        if options.api_key
        else None
    )
    server = serve(
        launch_command(executable, options, port),
        port,
        options.launch_timeout,
        options.log_path or default_log_path("icrm-vllm-"),
        health_path="/health",
        headers=headers,
        name="vllm server",
    )
    try:
        return LaunchedVllmEngine(options, server)
    except BaseException:
        server.stop()
        raise


def create(model_name: str | None = None, **options: Any) -> OpenAICompatEngine:
    """Registry factory: launch ``vllm serve`` for a model when no endpoint is given,
    else connect to the endpoint (or the default local port)."""
    check_one_endpoint("vllm", options)
    opts = VllmOptions(model_name=model_name, **options)
    if opts.base_url is None and opts.model_name:
        return launch(opts)
    return OpenAICompatEngine(opts, PRESETS["vllm"])
