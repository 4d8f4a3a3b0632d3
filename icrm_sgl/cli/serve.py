"""``icrm-sgl serve``: the judge as an HTTP service (needs the ``serve`` extra)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from icrm_sgl.cli.options import (
    cache_options,
    panel_options,
    setting_option,
    settings_options,
    split_options,
    split_panel,
)
from icrm_sgl.errors import InputError, MissingDependencyError
from icrm_sgl.judges import BUILTIN_NAMES, Judge, as_judge
from icrm_sgl.judges.supply import GET_REWARD, check_supplied
from icrm_sgl.panel.spec import PanelSpec
from icrm_sgl.serve.config import ServeConfig

_F = TypeVar("_F", bound=Callable[..., Any])


def _serve_options(func: _F) -> _F:
    """The server's own options, one for each ``ServeConfig`` setting (``--api-key`` also
    from ``$ICRM_API_KEY``)."""
    names = [name for name in ServeConfig.model_fields if name != "gen"]
    for name in reversed(names):
        extra = {"envvar": "ICRM_API_KEY", "show_envvar": True} if name == "api_key" else {}
        func = setting_option(ServeConfig, name, **extra)(func)
    return func


@click.command()
@settings_options()
@panel_options
@cache_options
@_serve_options
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def serve(**options: Any) -> None:
    """Serve the judge over HTTP: POST /v1/judge, POST /get_reward (OpenRLHF), GET /health,
    GET /metrics. Without --rm-type or --judge both built-in judging modes are served on
    one engine; with --panel, the panel (its reward in /v1/judge and /get_reward).
    With --both-orders every pair is judged A/B and B/A and answered reconciled.
    """
    try:
        from icrm_sgl.serve.judges import Judges
        from icrm_sgl.serve.server import bind, run
    except ImportError as exc:
        raise MissingDependencyError(
            f"serve needs {exc.name!r}: pip install 'icrm-sgl[serve]'"
        ) from None
    log_level = options.pop("log_level")
    serve_keys = [key for key in ServeConfig.model_fields if key in options]
    settings = {key: options.pop(key) for key in serve_keys}
    panel, require_all = split_panel(options)
    judge, gen, groups = split_options(options)
    if settings["both_orders"]:
        _check_both_orders(panel, judge)
    for member in panel.judges if panel else (judge,) if isinstance(judge, Judge) else ():
        _note_reward(member)
    config = ServeConfig(**settings, gen={k: v for k, v in gen.items() if v is not None})
    sock = bind(config.host, config.port)
    with sock:
        if panel is not None:
            judges = Judges.open_panel(panel, groups, require_all)
        else:
            judges = Judges.open((judge,) if judge else BUILTIN_NAMES, groups)
        try:
            judges.check(config.gen)
            run(config, lambda: judges, log_level, sock)
        finally:
            judges.close()


def _note_reward(judge: Judge) -> None:
    """Say at start, in one line, when /get_reward cannot serve ``judge`` (no reward, or
    inputs it cannot supply): /v1/judge still serves it, /get_reward answers 422."""
    try:
        check_supplied(judge, GET_REWARD)
    except InputError as exc:
        click.echo(f"note: /get_reward will answer 422: {exc}", err=True)


def _check_both_orders(panel: PanelSpec | None, judge: Judge | str | None) -> None:
    """Refuse ``--both-orders`` before the engine loads when no served judge compares two
    replies, in ``score --both-orders``' words (the built-ins include the pairwise judge)."""
    if panel is not None:
        if not panel.pairs:
            raise InputError("--both-orders compares two replies: this panel judges one")
        return
    chosen = None if judge is None else as_judge(judge)
    if chosen is not None and chosen.pair is None:
        raise InputError(f"--both-orders compares two replies: judge {chosen.name} judges one")
