"""``icrm-sgl shots``: inspect, validate and sample shot pools.

Nothing here imports sglang: token counts use the tokenizer of the packaged SmolLM2 alone
(``engines.gguf``), so every subcommand answers in about a second.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import click

from icrm_sgl.errors import InputError
from icrm_sgl.judges import BUILTIN_NAMES, Judge, builtin_judge, default_judge
from icrm_sgl.judges.shots import (
    SAMPLING_MODES,
    Shot,
    load_shots,
    pool_problems,
    read_pool,
    sample_shots,
    shot_label,
)
from icrm_sgl.judges.template import Slot
from icrm_sgl.judging.examples import detect_rm_type
from icrm_sgl.plumbing.defaults import NUM_SHOTS, SEED

RM_TYPES = BUILTIN_NAMES

rm_type_option = click.option(
    "--rm-type",
    type=click.Choice(RM_TYPES),
    default=None,
    help="Judging mode of the pool (default: both built-in pools, or detected from a pool file).",
)
judge_option = click.option(
    "--judge",
    "judge_path",
    metavar="RUBRIC.toml",
    default=None,
    help="Your own judge: its shots (or --shots-pool's) against its verdict fields.",
)
pool_option = click.option(
    "--shots-pool",
    "pool_path",
    metavar="FILE",
    default=None,
    help="A pool file instead of the built-in one (or the rubric's).",
)


@dataclass(frozen=True)
class Pool:
    """A judge with its shots, and where the shots came from."""

    judge: Judge
    source: str

    @property
    def shots(self) -> list[Shot]:
        return list(self.judge.shots_pool)

    @property
    def header(self) -> str:
        return f"# {self.judge.name}: {len(self.shots)} shots from {self.source}"

    def label(self, shot: Shot) -> str:
        """The shot's verdict in one word: the reward field's value, or the last
        non-text field's for a judge without a reward."""
        judge = self.judge
        if judge.reward is not None:
            return shot_label(shot, judge.field_named(judge.reward).key)
        picked = [spec.key for spec in judge.fields if spec.kind != "text"]
        return shot_label(shot, picked[-1] if picked else None)


def _rubric(judge_path: str | None, rm_type: str | None) -> Judge | None:
    """The judge of ``--judge RUBRIC.toml``, or None without one."""
    if judge_path is None:
        return None
    if rm_type is not None:
        raise click.UsageError("give --rm-type or --judge, not both")
    from icrm_sgl.judges.rubric import load_rubric

    return load_rubric(judge_path)


def _pools(rm_type: str | None, judge_path: str | None, pool_path: str | None) -> list[Pool]:
    """The pools a command works on: a rubric's, a pool file's (mode detected unless
    given), one built-in mode's, or both built-in ones."""
    rubric = _rubric(judge_path, rm_type)
    if rubric is not None and pool_path is None:
        return [Pool(rubric, str(judge_path))]
    if rubric is not None and pool_path is not None:
        return [Pool(replace(rubric, shots_pool=tuple(load_shots(rubric, pool_path))), pool_path)]
    if pool_path is not None:
        kind = rm_type or detect_rm_type(read_pool(pool_path))
        return [Pool(builtin_judge(kind, shots_pool_path=pool_path), pool_path)]
    kinds = [rm_type] if rm_type else RM_TYPES
    return [Pool(default_judge(kind), "the built-in pool") for kind in kinds]


def _counter() -> Callable[[str], int]:
    from icrm_sgl.engines.local.gguf import token_counter  # llama.cpp's tokenizer, not sglang

    return token_counter()


@click.group()
def shots() -> None:
    """List, show, validate and sample shots (token counts use the SmolLM2 tokenizer)."""


@shots.command("list")
@rm_type_option
@judge_option
@pool_option
def list_shots(rm_type: str | None, judge_path: str | None, pool_path: str | None) -> None:
    """One line per shot: id, category, score or choice, rendered length in tokens."""
    pools = _pools(rm_type, judge_path, pool_path)
    count = _counter()
    for pool in pools:
        click.echo(pool.header)
        click.echo(f"{'id':<32} {'category':<22} {'verdict':>7} {'tokens':>6}")
        for shot in pool.shots:
            tokens = count(pool.judge.render_shots([shot]))
            click.echo(f"{shot['id']:<32} {shot['category']:<22} {pool.label(shot):>7} {tokens:>6}")


@shots.command()
@click.argument("shot_id")
@rm_type_option
@judge_option
@pool_option
def show(shot_id: str, rm_type: str | None, judge_path: str | None, pool_path: str | None) -> None:
    """Print one shot as JSON, then as the prompt renders it."""
    for pool in _pools(rm_type, judge_path, pool_path):
        for shot in pool.shots:
            if shot["id"] == shot_id:
                click.echo(json.dumps(shot, indent=2, ensure_ascii=False))
                click.echo("\n--- rendered ---")
                click.echo(pool.judge.render_shots([shot]), nl=False)
                return
    raise InputError(f"no shot with id {shot_id!r}")


@shots.command()
@click.argument("pool_file", metavar="POOL_FILE")
@click.option(
    "--rm-type",
    type=click.Choice(RM_TYPES),
    default=None,
    help="Judging mode (default: detected from the records).",
)
@judge_option
def validate(pool_file: str, rm_type: str | None, judge_path: str | None) -> None:
    """Check every record of POOL_FILE against the verdict schema; exit 2 on any problem."""
    records = read_pool(pool_file)
    judge = _rubric(judge_path, rm_type) or default_judge(rm_type or detect_rm_type(records))
    valid, problems = pool_problems(records, judge, pool_file)
    for problem in problems:
        click.echo(problem, err=True)
    summary = f"{pool_file}: {len(valid)} valid {judge} shots, {len(problems)} problems"
    if problems and rm_type is None and judge_path is None:
        summary += f" (checked as {judge} shots, as their keys suggest; a rubric's: --judge FILE)"
    click.echo(summary)
    if problems:
        sys.exit(2)


@shots.command()
@click.option("--n", "num_shots", type=click.IntRange(0), default=NUM_SHOTS, show_default=True)
@click.option("--mode", type=click.Choice(SAMPLING_MODES), default="fixed", show_default=True)
@click.option("--seed", type=int, default=SEED, show_default=True)
@click.option(
    "--rm-type",
    type=click.Choice(RM_TYPES),
    default=None,
    help="Judging mode (default: pairwise; detected from a --shots-pool file).",
)
@judge_option
@pool_option
def sample(
    num_shots: int,
    mode: str,
    seed: int,
    rm_type: str | None,
    judge_path: str | None,
    pool_path: str | None,
) -> None:
    """The shots a run with these settings would use, and the prefix length in tokens.

    The first line names the pool: without --rm-type, --judge or --shots-pool it is the
    built-in pairwise one."""
    if rm_type is None and judge_path is None and pool_path is None:
        rm_type = "pairwise"
    (pool,) = _pools(rm_type, judge_path, pool_path)
    picked = sample_shots(pool.shots, num_shots, mode, seed)
    click.echo(pool.header)
    for shot in picked:
        click.echo(f"{shot['id']:<32} {shot['category']:<22} {pool.label(shot):>7}")
    prefix = _shared_prefix(pool.judge.prompt(picked).segments)
    click.echo(f"prefix: {_counter()(prefix)} tokens ({mode}, n={num_shots}, seed={seed})")


def _shared_prefix(segments: Sequence[str | Slot]) -> str:
    """The prompt text before the example's first input: what every example shares."""
    prefix = ""
    for segment in segments:
        if not isinstance(segment, str):
            break
        prefix += segment
    return prefix
