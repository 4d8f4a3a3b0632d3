"""``icrm-sgl serve``: the judge as an HTTP service (needs the ``serve`` extra)."""

from __future__ import annotations

from typing import Any

import click

from icrm_sgl.cli.options import (
    cache_options,
    judge_options,
    panel_options,
    split_options,
    split_panel,
)
from icrm_sgl.errors import InputError, MissingDependencyError
from icrm_sgl.judges import BUILTIN_NAMES, Judge
from icrm_sgl.judges.supply import GET_REWARD, check_supplied


@click.command()
@judge_options
@panel_options
@cache_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--max-queue",
    default=256,
    show_default=True,
    type=click.IntRange(1),
    help="Examples waiting for the engine; more get HTTP 429 with Retry-After.",
)
@click.option(
    "--max-batch",
    default=8,
    show_default=True,
    type=click.IntRange(1),
    help="Examples per judge_batch call (use 64+ on an sglang server).",
)
@click.option(
    "--deadline",
    default=300.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds a request may take (HTTP 504 after); clients may ask for less.",
)
@click.option(
    "--max-body-bytes",
    default=1 << 20,
    show_default=True,
    type=click.IntRange(1024),
    help="Larger request bodies get HTTP 413.",
)
@click.option(
    "--drain-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0),
    help="On SIGINT/SIGTERM, seconds to finish queued examples before refusing them.",
)
@click.option(
    "--api-key",
    envvar="ICRM_API_KEY",
    show_envvar=True,
    default=None,
    help="Require 'Authorization: Bearer KEY' (prefer the variable: argv is visible to ps).",
)
@click.option(
    "--failed-reward",
    type=float,
    default=None,
    help="/get_reward value for a query without a verdict (default: the request fails, 500).",
)
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
    """
    try:
        from icrm_sgl.serve.config import ServeConfig
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
