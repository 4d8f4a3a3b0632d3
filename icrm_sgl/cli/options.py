"""Option decorators shared by the commands that build an ICRM."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

import click

from icrm_sgl.engines import engine_names
from icrm_sgl.engines.hosted.preflight import preflight
from icrm_sgl.errors import InputError
from icrm_sgl.judges import BUILTIN_NAMES, Judge
from icrm_sgl.options import Settings, check_engine_key
from icrm_sgl.panel.spec import PanelSpec
from icrm_sgl.shots import SAMPLING_MODES


def split_options(options: dict[str, Any]) -> tuple[Judge | str | None, dict[str, Any], Settings]:
    """The values of ``judge_options`` (and ``cache_options``) as (judge, generation
    kwargs, settings groups): the judge is a built-in mode's name (``--rm-type``), a rubric
    read from ``--judge``, or None when neither was given. ``-E KEY=VALUE`` sets the
    engine's own options and the launch settings without a flag (``-E num_workers=2``)."""
    rest = dict(options)
    rm_type, rubric = rest.pop("rm_type"), rest.pop("judge")
    if rm_type and rubric:
        raise click.UsageError("give --rm-type or --judge, not both")
    gen = {key: rest.pop(key) for key in ("max_tokens", "temperature", "top_p")}
    rest.update(engine_kwargs(rest.pop("endpoint"), rest.pop("engine_option")))
    settings = Settings.from_flat(rest)
    engine = settings.engine  # a hosted engine's key and server, before the heavy imports
    preflight(engine.name, engine.model_name, engine.options)
    if rubric is None:
        return rm_type, gen, settings
    from icrm_sgl.judges.rubric import load_rubric

    return load_rubric(rubric), gen, settings


#: ``judge_options`` that name a file the command reads.
_FILE_OPTIONS = (
    "judge",
    "shots_pool_path",
    "template_path",
    "shot_template_path",
    "feedback_template_path",
    "model_name",
)


def read_paths(input_path: str, options: dict[str, Any]) -> list[str | Path]:
    """The input, every file a judge option names and every file the ``--judge`` rubric
    names: what an output may not replace."""
    paths: list[str | Path] = [input_path]
    paths += [options[key] for key in _FILE_OPTIONS if options.get(key)]
    if options.get("judge"):
        from icrm_sgl.judges.rubric import rubric_sources

        paths += rubric_sources(options["judge"])
    if options.get("panel"):
        paths += _panel_sources(options["panel"])
    return paths


def _panel_sources(path: str) -> list[Path]:
    """The panel file and the rubric files it names (only the file itself when it cannot
    be read: ``split_panel`` says why)."""
    from icrm_sgl.panel.spec import load_panel

    try:
        return load_panel(path).sources()
    except InputError:
        return [Path(path)]


def engine_kwargs(endpoint: str | None, engine_option: tuple[str, ...]) -> dict[str, Any]:
    """``--endpoint`` and ``-E KEY=VALUE`` as engine keyword arguments (values as YAML-ish
    scalars: ints, floats, true/false, else text); a key that is not the engine's is
    refused, naming its flag."""
    options: dict[str, Any] = {"endpoint": endpoint} if endpoint else {}
    for item in engine_option:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="-E")
        check_engine_key(key, _setting_flags())
        options[key] = _scalar(value.strip())
    return options


@cache
def _setting_flags() -> dict[str, str]:
    """The shared options' flags by the names a user might give after ``-E``: the setting
    each one sets and its own spelling (``model_name`` and ``model`` → ``--model``)."""
    command = click.command()(judge_options(cache_options(lambda **_: None)))
    flags: dict[str, str] = {}
    for param in command.params:
        long = [opt for opt in param.opts if opt.startswith("--")]
        for opt in long:
            flags[opt[2:].replace("-", "_")] = opt
        if param.name and long:
            flags[param.name] = long[0]
    return flags


def _scalar(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def judge_options(
    func: Callable[..., Any], rm_type_default: str = "detected from the input's keys"
) -> Callable[..., Any]:
    """Engine, model, shots, prompt mode and sampling options; ``rm_type_default`` says
    in the help what the command judges without ``--rm-type``."""
    options = [
        click.option(
            "--engine",
            default="local",
            show_default=True,
            type=click.Choice(engine_names()),
            help="Engine that runs the programs.",
        ),
        click.option(
            "--endpoint",
            "--base-url",
            "endpoint",
            default=None,
            help="URL of a running server (sglang: a server or a router; openai engines: "
            "the API base URL, e.g. http://127.0.0.1:8000/v1).",
        ),
        click.option(
            "--engine-option",
            "-E",
            "engine_option",
            multiple=True,
            metavar="KEY=VALUE",
            help="Engine setting, repeatable (e.g. -E n_threads=2, -E num_workers=2).",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1),
            default=None,
            help="Examples in flight at once (default: the engine's choice; local: its n_seq).",
        ),
        click.option(
            "--model",
            "model_name",
            default=None,
            help="Model: a GGUF path (local engine, default: packaged SmolLM2), a name/path "
            "for the sglang engine to launch, or a hosted API's model name.",
        ),
        click.option(
            "--rm-type",
            type=click.Choice(BUILTIN_NAMES),
            default=None,
            help=f"Built-in judging mode [default: {rm_type_default}].",
        ),
        click.option(
            "--judge",
            "judge",
            default=None,
            metavar="RUBRIC.toml",
            help="Your own judge: a TOML rubric file (fields, template, reward; see "
            "docs/judges.md). Replaces --rm-type.",
        ),
        click.option(
            "--num-shots",
            default=3,
            show_default=True,
            type=click.IntRange(0),
            help="Shots shown before each example.",
        ),
        click.option(
            "--shot-sampling",
            "shot_sampling_mode",
            default="fixed",
            show_default=True,
            type=click.Choice(SAMPLING_MODES),
            help="fixed: first n (one shared prefix); random: seeded; balanced: spread categories.",
        ),
        click.option(
            "--shots-pool",
            "shots_pool_path",
            default=None,
            type=click.Path(exists=True, dir_okay=False),
            help="A shots pool JSON file (default: the packaged pool).",
        ),
        click.option(
            "--template",
            "template_path",
            default=None,
            type=click.Path(exists=True, dir_okay=False),
            help="Prompt template with {$key} placeholders (see README).",
        ),
        click.option(
            "--shot-template",
            "shot_template_path",
            default=None,
            type=click.Path(exists=True, dir_okay=False),
            help="Template for one shot.",
        ),
        click.option(
            "--feedback-template",
            "feedback_template_path",
            default=None,
            type=click.Path(exists=True, dir_okay=False),
            help="Template for a shot's verdict, placeholders named after its keys.",
        ),
        click.option(
            "--completion/--chat",
            default=None,
            help="Plain-text prompt, or user/assistant chat roles (default: the engine's "
            "mode: completion for local, sglang, vllm; chat for hosted APIs).",
        ),
        click.option(
            "--max-tokens",
            type=click.IntRange(1),
            default=None,
            help="Token budget for the verdict's text fields, split evenly, at most 128 "
            "per field [default: 128 per field: 512 individual, 640 pairwise].",
        ),
        click.option(
            "--temperature",
            default=0.0,
            show_default=True,
            type=click.FloatRange(0.0),
            help="0 is greedy (score/choice by select).",
        ),
        click.option("--top-p", default=1.0, show_default=True, type=click.FloatRange(0.0, 1.0)),
        click.option("--seed", default=42, show_default=True, type=int),
        click.option("--verbose", is_flag=True, help="Print each prompt to stderr."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def cache_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The verdict cache's options, the same for every command that judges (they reach
    the cache's settings through ``split_options``)."""
    options = [
        click.option(
            "--use-cache", is_flag=True, help="Reuse verdicts from earlier identical calls."
        ),
        click.option(
            "--overwrite-cache", is_flag=True, help="Judge again and replace cached verdicts."
        ),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False),
            default=None,
            help="Verdict cache folder (default: $ICRM_CACHE_DIR or ~/.cache/icrm-sgl).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def echo_cache_note(model: Any) -> None:
    """Say on stderr how many invalid cache entries a (closed) ICRM met, if any."""
    note = model.cache.rejected_note() if model.cache is not None else None
    if note:
        click.echo(note, err=True)


def panel_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--panel`` and ``--require-all``, for the commands that judge with a panel (they
    reach it through ``split_panel``)."""
    options = [
        click.option(
            "--panel",
            "panel",
            default=None,
            metavar="PANEL.toml",
            help="A panel of judges: each member's judge, engine and model in one TOML file "
            "(see docs/judges.md#panels). Replaces --rm-type, --judge and the engine options.",
        ),
        click.option(
            "--require-all",
            is_flag=True,
            help="With --panel: an example that any member fails is an error (default: the "
            "others' reward, naming the failed members).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


#: What a panel file says per member, by the option that would say it for one judge.
_MEMBER_OPTIONS = {
    "rm_type": "--rm-type",
    "judge": "--judge",
    "template_path": "--template",
    "shot_template_path": "--shot-template",
    "feedback_template_path": "--feedback-template",
    "shots_pool_path": "--shots-pool",
    "model_name": "--model",
    "endpoint": "--endpoint",
    "engine_option": "-E",
}


def split_panel(options: dict[str, Any]) -> tuple[PanelSpec | None, bool]:
    """``panel_options``' values taken out of ``options``: the panel file read and checked
    (before any engine loads) and ``--require-all``; None without ``--panel``. An option
    that each member sets in the file is refused beside ``--panel``, in one line."""
    path, require_all = options.pop("panel"), options.pop("require_all")
    if path is None:
        if require_all:
            raise click.UsageError("--require-all is for --panel")
        return None, False
    given = [flag for key, flag in _MEMBER_OPTIONS.items() if options.get(key)]
    if options.get("engine", "local") != "local":
        given.insert(0, "--engine")
    if given:
        raise click.UsageError(
            f"--panel names each member's judge, engine and model: drop {given[0]}"
        )
    from icrm_sgl.panel.spec import load_panel

    return load_panel(path), require_all


def judge_options_for(rm_type_default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``judge_options`` for a command with a fixed default judging mode."""
    return partial(judge_options, rm_type_default=rm_type_default)
