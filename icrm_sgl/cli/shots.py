"""``icrm-sgl shots``: inspect, validate and sample shot pools."""

from __future__ import annotations

import json
import sys

import click

from icrm_sgl.errors import InputError
from icrm_sgl.inputs import detect_rm_type
from icrm_sgl.judges import BUILTIN_NAMES, builtin_judge
from icrm_sgl.shots import (
    SAMPLING_MODES,
    load_shots,
    pool_problems,
    read_pool,
    sample_shots,
    shot_label,
)

RM_TYPES = BUILTIN_NAMES

rm_type_option = click.option(
    "--rm-type",
    type=click.Choice(RM_TYPES),
    default=None,
    help="Judging mode of the pool (default: both built-in pools, or detected).",
)
pool_option = click.option(
    "--shots-pool",
    "pool_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A pool file instead of the built-in one.",
)


def _pools(rm_type: str | None, pool_path: str | None) -> list[tuple[str, list[dict]]]:
    if pool_path is not None:
        kind = rm_type or detect_rm_type(read_pool(pool_path))
        return [(kind, load_shots(kind, pool_path))]
    return [(kind, load_shots(kind)) for kind in ([rm_type] if rm_type else RM_TYPES)]


def _counter():
    from icrm_sgl.engines.local import token_counter

    return token_counter()


@click.group()
def shots() -> None:
    """List, show, validate and sample shots (token counts use the SmolLM2 tokenizer)."""


@shots.command("list")
@rm_type_option
@pool_option
def list_shots(rm_type: str | None, pool_path: str | None) -> None:
    """One line per shot: id, category, score or choice, rendered length in tokens."""
    count = _counter()
    for kind, pool in _pools(rm_type, pool_path):
        templates = builtin_judge(kind)
        click.echo(f"# {kind}: {len(pool)} shots")
        click.echo(f"{'id':<32} {'category':<22} {'verdict':>7} {'tokens':>6}")
        for shot in pool:
            tokens = count(templates.render_shots([shot]))
            click.echo(f"{shot['id']:<32} {shot['category']:<22} {shot_label(shot):>7} {tokens:>6}")


@shots.command()
@click.argument("shot_id")
@rm_type_option
@pool_option
def show(shot_id: str, rm_type: str | None, pool_path: str | None) -> None:
    """Print one shot as JSON, then as the prompt renders it."""
    for kind, pool in _pools(rm_type, pool_path):
        for shot in pool:
            if shot["id"] == shot_id:
                click.echo(json.dumps(shot, indent=2, ensure_ascii=False))
                click.echo("\n--- rendered ---")
                click.echo(builtin_judge(kind).render_shots([shot]), nl=False)
                return
    raise InputError(f"no shot with id {shot_id!r}")


@shots.command()
@click.argument("pool_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--rm-type",
    type=click.Choice(RM_TYPES),
    default=None,
    help="Judging mode (default: detected from the records).",
)
def validate(pool_file: str, rm_type: str | None) -> None:
    """Check every record of POOL_FILE against the verdict schema; exit 2 on any problem."""
    records = read_pool(pool_file)
    kind = rm_type or detect_rm_type(records)
    valid, problems = pool_problems(records, kind, pool_file)
    for problem in problems:
        click.echo(problem, err=True)
    click.echo(f"{pool_file}: {len(valid)} valid {kind} shots, {len(problems)} problems")
    if problems:
        sys.exit(2)


@shots.command()
@click.option("--n", "num_shots", type=click.IntRange(0), default=3, show_default=True)
@click.option("--mode", type=click.Choice(SAMPLING_MODES), default="fixed", show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--rm-type", type=click.Choice(RM_TYPES), default="pairwise", show_default=True)
@pool_option
def sample(num_shots: int, mode: str, seed: int, rm_type: str, pool_path: str | None) -> None:
    """The shots a run with these settings would use, and the prefix length in tokens."""
    ((kind, pool),) = _pools(rm_type, pool_path)
    picked = sample_shots(pool, num_shots, mode, seed)
    for shot in picked:
        click.echo(f"{shot['id']:<32} {shot['category']:<22} {shot_label(shot):>7}")
    prefix = builtin_judge(kind).prompt(picked).segments[0]
    click.echo(f"prefix: {_counter()(prefix)} tokens ({mode}, n={num_shots}, seed={seed})")
