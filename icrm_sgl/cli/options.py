"""Option decorators shared by the commands that build an ICRM."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import NoneType
from typing import Any, TypeVar, get_args

import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from icrm_sgl.engines import engine_names
from icrm_sgl.engines.hosted.preflight import preflight
from icrm_sgl.errors import InputError
from icrm_sgl.judges import BUILTIN_NAMES, Judge, default_judge
from icrm_sgl.judging.settings import (
    CacheSettings,
    EngineSettings,
    Flag,
    JudgingSettings,
    Settings,
    check_engine_key,
)
from icrm_sgl.panel.spec import PanelSpec
from icrm_sgl.plumbing.arguments import GenerationOptions

_F = TypeVar("_F", bound=Callable[..., Any])
_Decorator = Callable[[_F], _F]


def split_options(options: dict[str, Any]) -> tuple[Judge | str | None, dict[str, Any], Settings]:
    """The values of ``settings_options`` (and ``cache_options``) as (judge, generation
    kwargs, settings groups): the judge is a built-in mode's name (``--rm-type``), a rubric
    read from ``--judge``, or None when neither was given. ``-E KEY=VALUE`` sets the
    engine's own options and the launch settings without a flag (``-E num_workers=2``)."""
    rest = dict(options)
    rm_type, rubric = rest.pop("rm_type"), rest.pop("judge")
    if rm_type and rubric:
        raise click.UsageError("give --rm-type or --judge, not both")
    gen = {key: rest.pop(key) for key in _GENERATION_HELP}
    rest.update(engine_kwargs(rest.pop("endpoint"), rest.pop("engine_option")))
    settings = Settings.from_flat(rest)
    engine = settings.engine  # a hosted engine's key and server, before the heavy imports
    preflight(engine.name, engine.model_name, engine.options)
    if rubric is None:
        return rm_type, gen, settings
    from icrm_sgl.judges.rubric import load_rubric

    return load_rubric(rubric), gen, settings


#: The settings whose option names a file the command reads.
_FILE_OPTIONS = [
    name
    for model in (EngineSettings, JudgingSettings)
    for name, field in model.model_fields.items()
    if any(isinstance(m, Flag) and m.path in ("file", "read") for m in field.metadata)
]


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
    command = click.command()(settings_options()(cache_options(lambda **_: None)))
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


#: The flat keyword (``ICRM(engine=...)``) of a setting whose field is named otherwise.
_PARAM_NAMES = {"name": "engine"}


def setting_option(model: type[BaseModel], name: str, *decls: str, **extra: Any) -> _Decorator:
    """The click option of ``model``'s setting ``name``, made from its field: the flags
    (``decls``, else its ``Flag``'s, else ``--name-dashed``), the type and bounds, the
    default, the description as the help; ``extra`` overrides any of them."""
    field = model.model_fields[name]
    flag = next((m for m in field.metadata if isinstance(m, Flag)), Flag())
    decls = decls or flag.decls or (f"--{name.replace('_', '-')}",)
    kind = field_kind(field)
    settings: dict[str, Any] = {
        "default": field.default,
        "show_default": kind is not bool,  # a yes/no flag would show its "no" spelling
        "help": field.description,
        "metavar": flag.metavar,
        **_click_type(field, flag, kind),
    }
    if kind is bool and "/" not in decls[0]:
        settings["is_flag"] = True
    return click.option(*decls, _PARAM_NAMES.get(name, name), **{**settings, **extra})


def field_kind(field: FieldInfo) -> type:
    """The field's type without ``None`` (``str`` for a path that may be text)."""
    kinds = [k for k in get_args(field.annotation) or (field.annotation,) if k is not NoneType]
    return kinds[0] if len(kinds) == 1 and isinstance(kinds[0], type) else str


def _click_type(field: FieldInfo, flag: Flag, kind: type) -> dict[str, Any]:
    """The click type of a setting: its choices, a path, or a number within its bounds."""
    if flag.choices is not None:
        return {"type": click.Choice(list(flag.choices))}
    if flag.path in ("file", "folder"):
        is_file = flag.path == "file"
        return {"type": click.Path(exists=is_file, dir_okay=not is_file, file_okay=is_file)}
    if kind not in (int, float):
        return {}
    bounds = {
        key: getattr(m, key)
        for m in field.metadata
        for key in ("ge", "gt", "le", "lt")
        if hasattr(m, key)
    }
    if not bounds:
        return {"type": kind}
    ranged = click.IntRange if kind is int else click.FloatRange
    low, high = bounds.get("ge", bounds.get("gt")), bounds.get("le", bounds.get("lt"))
    return {"type": ranged(low, high, min_open="gt" in bounds, max_open="lt" in bounds)}


def _flagged(model: type[BaseModel]) -> list[str]:
    """The settings of ``model`` that have a flag, in the model's order."""
    fields = model.model_fields.items()
    return [name for name, f in fields if any(isinstance(m, Flag) for m in f.metadata)]


#: The generation options with a flag of their own (``--max-tokens`` …), each with its help.
_GENERATION_HELP = {
    "max_tokens": "Token budget for the verdict's text fields, split evenly, at most {per_field} "
    "per field [default: {per_field} per field: {budget}].",
    "temperature": "0 is greedy (score/choice by select).",
    "top_p": None,
}


def _generation_options() -> list[_Decorator]:
    """A call's generation options, bounded and defaulted as ``GenerationOptions`` checks
    them; the budget's help from ``JudgingSettings.field_tokens``."""
    per_field = JudgingSettings.model_fields["field_tokens"].default
    totals = {name: per_field * len(default_judge(name).text_fields) for name in BUILTIN_NAMES}
    budget = ", ".join(f"{total} {name}" for name, total in totals.items())
    return [
        setting_option(
            GenerationOptions, name, help=text and text.format(per_field=per_field, budget=budget)
        )
        for name, text in _GENERATION_HELP.items()
    ]


_ENDPOINT = click.option(
    "--endpoint",
    "--base-url",
    "endpoint",
    default=None,
    help="URL of a running server (sglang: a server or a router; openai engines: "
    "the API base URL, e.g. http://127.0.0.1:8000/v1).",
)
_ENGINE_OPTION = click.option(
    "--engine-option",
    "-E",
    "engine_option",
    multiple=True,
    metavar="KEY=VALUE",
    help="Engine setting, repeatable (e.g. -E n_threads=2, -E num_workers=2).",
)


def engine_option() -> _Decorator:
    """``--engine``: one of the engines registered when the command is made."""
    return setting_option(EngineSettings, "name", type=click.Choice(engine_names()))


def settings_options(rm_type_default: str = "detected from the input's keys") -> _Decorator:
    """The options of every engine and judging setting with a flag (``options.Flag``),
    ``--endpoint``, ``-E`` and the generation options; ``rm_type_default`` says in the help
    what the command judges without ``--rm-type``."""
    options = [engine_option(), setting_option(EngineSettings, "model_name")]
    options += [_ENDPOINT, _ENGINE_OPTION]
    rm_help = f"{JudgingSettings.model_fields['rm_type'].description} [default: {rm_type_default}]."
    for name in _flagged(JudgingSettings):
        shown = {"help": rm_help} if name == "rm_type" else {}
        options.append(setting_option(JudgingSettings, name, **shown))
    options += _generation_options()

    def decorate(func: _F) -> _F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def cache_options(func: _F) -> _F:
    """The verdict cache's options, the same for every command that judges (they reach
    the cache's settings through ``split_options``)."""
    for name in reversed(_flagged(CacheSettings)):
        func = setting_option(CacheSettings, name)(func)
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
