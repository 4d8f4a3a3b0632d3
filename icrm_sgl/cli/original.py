"""``icrm test``: the original IC-RM command line, spelled as it was, run by ``score``'s
work; its flags are ``ICRM``'s keywords, sorted into the settings groups as in Python."""

from __future__ import annotations

from typing import Any

import click

from icrm_sgl.cli import main as run_group
from icrm_sgl.cli.score import judge_loaded
from icrm_sgl.engines import engine_names
from icrm_sgl.engines.hosted.preflight import preflight
from icrm_sgl.inputs import load_examples
from icrm_sgl.judges import BUILTIN_NAMES
from icrm_sgl.options import Settings


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
def test(example_json_path: str, **flags: Any) -> None:
    """Judge the example(s) in FILE, e.g. ``icrm test examples/test_pairwise.json
    --rm_type pairwise --model_name M --engine E``."""
    loaded = load_examples(example_json_path)
    rm_type = flags.pop("rm_type")
    settings = Settings.from_flat(flags)
    preflight(settings.engine.name, settings.engine.model_name, settings.engine.options)
    judge_loaded(loaded, None, False, rm_type, {}, settings)


def main() -> None:
    """The ``icrm`` console script: errors as one line and exit code 2, as ``icrm-sgl``."""
    run_group(icrm)


if __name__ == "__main__":
    main()
