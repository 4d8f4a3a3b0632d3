"""``icrm test``: the original IC-RM command line, spelled as it was, run by ``score``'s
work; its flags are ``ICRM``'s keywords, sorted into the settings groups as in Python."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from icrm_sgl.cli import main as run_group
from icrm_sgl.cli.options import engine_option, field_kind, setting_option
from icrm_sgl.cli.score import judge_loaded
from icrm_sgl.engines.hosted.preflight import preflight
from icrm_sgl.judging.examples import load_examples
from icrm_sgl.judging.settings import CacheSettings, EngineSettings, JudgingSettings, Settings

_F = TypeVar("_F", bound=Callable[..., Any])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="icrm-sgl")
def icrm() -> None:
    """IC-RM's original command line on icrm-sgl (same output as ``icrm-sgl score``)."""


#: The original's options, by the ``ICRM`` keyword each sets, in its order.
_KEYWORDS = (
    "rm_type",
    "model_name",
    "engine",
    "shots_pool_path",
    "num_workers",
    "num_gpu_per_worker",
    "dtype",
    "quantization",
    "use_cache",
    "overwrite_cache",
    "completion",
    "num_shots",
    "template_path",
    "shot_template_path",
    "feedback_template_path",
    "verbose",
)


def _original_option(keyword: str) -> Callable[[_F], _F]:
    """The original's option for ``keyword``, made from its setting's field: ``--name``
    and ``--name-dashed`` (a yes/no one as ``--name/--noname``, ``--name-dashed/--no-…``);
    ``--engine`` and ``--verbose`` as the shared options spell them."""
    if keyword == "engine":
        return engine_option()
    model = next(
        m for m in (JudgingSettings, EngineSettings, CacheSettings) if keyword in m.model_fields
    )
    if keyword == "verbose":
        return setting_option(model, keyword)
    spellings = dict.fromkeys((keyword, keyword.replace("_", "-")))
    if field_kind(model.model_fields[keyword]) is not bool:
        return setting_option(model, keyword, *(f"--{s}" for s in spellings))
    negated = (f"--{s}/--no{'' if s == keyword else '-'}{s}" for s in spellings)
    return setting_option(model, keyword, *negated)


def _original_options(func: _F) -> _F:
    """The original's options, in its order."""
    for keyword in reversed(_KEYWORDS):
        func = _original_option(keyword)(func)
    return func


@icrm.command("test")
@click.argument("example_json_path", metavar="FILE", type=click.Path(dir_okay=False))
@_original_options
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
