"""``icrm test``: the original IC-RM command line, spelled as it was, run by ``score``."""

from __future__ import annotations

from typing import Any

import click

from icrm_sgl.cli import main as run_group
from icrm_sgl.cli.score import score
from icrm_sgl.engines import engine_names
from icrm_sgl.judges import BUILTIN_NAMES

#: Original flags that are engine settings here (``-E KEY=VALUE`` of ``score``).
_ENGINE_FLAGS = ("num_workers", "num_gpu_per_worker", "dtype", "quantization")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="icrm-sgl")
def icrm() -> None:
    """IC-RM's original command line on icrm-sgl (same output as ``icrm-sgl score``)."""


def _path(*names: str) -> Any:
    return click.option(*names, default=None, type=click.Path(exists=True, dir_okay=False))


@icrm.command("test")
@click.argument("example_json_path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--rm_type", "--rm-type", type=click.Choice(BUILTIN_NAMES))
@click.option("--model_name", "--model-name", default=None, help="Model name or GGUF path.")
@click.option("--engine", type=click.Choice(engine_names()), default="local", show_default=True)
@_path("--shots_pool_path", "--shots-pool-path")
@click.option("--num_workers", "--num-workers", type=click.IntRange(1), default=None)
@click.option("--num_gpu_per_worker", "--num-gpu-per-worker", type=click.IntRange(1))
@click.option("--dtype", default=None, help="Launched servers' weight dtype.")
@click.option("--quantization", default=None, help="Launched servers' quantization.")
@click.option("--use_cache/--nouse_cache", "--use-cache/--no-use-cache", default=False)
@click.option(
    "--overwrite_cache/--nooverwrite_cache", "--overwrite-cache/--no-overwrite-cache", default=False
)
@click.option("--completion/--nocompletion", default=None, help="Default: the engine's mode.")
@click.option("--num_shots", "--num-shots", type=click.IntRange(0), default=3, show_default=True)
@_path("--template_path", "--template-path")
@_path("--shot_template_path", "--shot-template-path")
@_path("--feedback_template_path", "--feedback-template-path")
@click.option("--verbose", is_flag=True, help="Print the prompt to stderr.")
@click.pass_context
def test(ctx: click.Context, example_json_path: str, **flags: Any) -> None:
    """Judge the example(s) in FILE, e.g. ``icrm test examples/test_pairwise.json
    --rm_type pairwise --model_name M --engine E``."""
    engine_option = tuple(
        f"{key}={value}" for key in _ENGINE_FLAGS if (value := flags.pop(key)) is not None
    )
    ctx.invoke(
        score,
        input_path=example_json_path,
        rm_type=flags["rm_type"],
        model_name=flags["model_name"],
        engine=flags["engine"],
        engine_option=engine_option,
        shots_pool_path=flags["shots_pool_path"],
        use_cache=flags["use_cache"],
        overwrite_cache=flags["overwrite_cache"],
        completion=flags["completion"],
        num_shots=flags["num_shots"],
        template_path=flags["template_path"],
        shot_template_path=flags["shot_template_path"],
        feedback_template_path=flags["feedback_template_path"],
        verbose=flags["verbose"],
    )


def main() -> None:
    """The ``icrm`` console script: errors as one line and exit code 2, as ``icrm-sgl``."""
    run_group(icrm)


if __name__ == "__main__":
    main()
