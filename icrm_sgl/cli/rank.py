"""``icrm-sgl rank``: order the responses to each prompt of a .json / .jsonl file."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from icrm_sgl.cli.options import judge_options, split_options
from icrm_sgl.errors import InputError, VerdictError
from icrm_sgl.inputs import load_examples


@click.command("rank")
@click.argument("input_path", metavar="FILE", type=click.Path(dir_okay=False))
@judge_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write JSONL records here (default: stdout).",
)
def rank_command(input_path: str, output: str | None, **options: Any) -> None:
    """Rank the responses of each item in FILE, best first.

    An item is {"prompt": TEXT, "responses": [TEXT, ...]} or {"conversation": [turns
    ending with a user turn], "responses": [...]}, with an optional "id". --rm-type
    individual (the default) orders by expected score; --rm-type pairwise by comparisons
    judged in both orders, sorted by binary insertion (about N log2 N comparisons).
    """
    loaded = load_examples(input_path)
    rm_type, gen, icrm_options = split_options(options)
    from icrm_sgl.icrm import ICRM  # imports sglang (seconds): only once the input is read

    counts = {"ok": 0, "input": len(loaded.errors), "failed": 0}
    for _, message in loaded.errors:
        click.echo(f"skipped: {message}", err=True)
    with ICRM(rm_type=rm_type or "individual", **icrm_options) as model:
        if loaded.single and not loaded.errors:
            ranking = _rank_one(model, loaded.examples[0], "item", gen)
            click.echo(json.dumps(ranking, indent=4, ensure_ascii=False))
            return
        with click.open_file(output or "-", "w", encoding="utf-8") as sink:
            for i, item in enumerate(loaded.examples):
                item_id = str(item.get("id", i)) if isinstance(item, dict) else str(i)
                record = _record(model, item, item_id, gen, counts)
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                sink.flush()
    click.echo(
        f"{counts['ok']} ranked, {counts['input']} malformed items skipped, "
        f"{counts['failed']} failed" + (f"; records in {output}" if output else ""),
        err=True,
    )
    sys.exit(2 if counts["input"] else 1 if counts["failed"] else 0)


def _rank_one(model: Any, item: Any, where: str, gen: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected an object with 'responses'")
    if "responses" not in item:
        raise InputError(f"{where}: missing 'responses'")
    ranking = model.rank(
        item["responses"],
        prompt=item.get("prompt"),
        conversation=item.get("conversation"),
        where=where,
        **gen,
    )
    return ranking.as_dict()


def _record(
    model: Any, item: Any, item_id: str, gen: dict[str, Any], counts: dict[str, int]
) -> dict[str, Any]:
    """One item's JSONL record; a bad item or failed verdict is reported, not raised."""
    try:
        ranking = _rank_one(model, item, f"item {item_id}", gen)
    except InputError as exc:
        counts["input"] += 1
        click.echo(f"skipped {item_id}: {exc}", err=True)
        return {"id": item_id, "error": str(exc)}
    except VerdictError as exc:
        counts["failed"] += 1
        click.echo(f"failed {item_id}: {exc}", err=True)
        return {"id": item_id, "error": str(exc)}
    counts["ok"] += 1
    return {"id": item_id, "ranking": ranking}
