"""``icrm-sgl rank``: order the responses to each prompt of a .json / .jsonl file."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import click

from icrm_sgl.cli.options import (
    cache_options,
    echo_cache_note,
    panel_options,
    read_paths,
    settings_options,
    split_options,
    split_panel,
)
from icrm_sgl.cli.sink import RecordSink
from icrm_sgl.cli.summary import plural, status
from icrm_sgl.errors import InputError, VerdictError
from icrm_sgl.judges import Judge
from icrm_sgl.judges.supply import RANK, check_supplied
from icrm_sgl.judging.examples import Entry, load_examples
from icrm_sgl.judging.ranking import item_examples, rank
from icrm_sgl.judging.settings import Settings
from icrm_sgl.panel.spec import PanelSpec
from icrm_sgl.plumbing.files import refuse_overwrite


@click.command("rank")
@click.argument("input_path", metavar="FILE", type=click.Path(dir_okay=False))
@settings_options("individual")
@panel_options
@cache_options
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
    ending with a user turn], "responses": [...]}, with an optional "id"; its other keys
    (e.g. "reference") reach a --judge whose template uses them. --rm-type individual (the
    default) orders by expected score; --rm-type pairwise, or a --judge of two replies, by
    comparisons judged in both orders, sorted by binary insertion (about N log2 N). With
    --panel, by the panel's reward (its members judging each response or comparison).
    """
    refuse_overwrite(output, read_paths(input_path, options))
    loaded = load_examples(input_path, noun="item")
    panel, require_all = split_panel(options)
    judge, gen, settings = split_options(options)
    settings = settings.with_judge(judge if judge is not None else "individual")
    definitions = panel.judges if panel else (settings.judging.definition(),)
    for definition in definitions:
        check_supplied(definition, RANK)
    if loaded.single and not loaded.errors:
        _check(loaded.examples[0], "item", definitions)
    counts = {"ok": 0, "input": len(loaded.errors), "failed": 0}
    for _, message in loaded.errors:
        click.echo(f"skipped {message}", err=True)
    items, records = [], []
    for entry in loaded.entries:  # every item checked before the model loads
        try:
            _check(entry.record, entry.where, definitions)
        except InputError as exc:
            counts["input"] += 1
            click.echo(f"skipped {exc}", err=True)
            records.append({"id": entry.id, "error": str(exc)})
            continue
        items.append(entry)
    with RecordSink(output) as sink:
        for record in records:
            sink.record(record)
        if items:
            shown = loaded.single and not output
            opened = _opened(settings, None if panel is None else (panel, require_all))
            _rank_all(items, shown, gen, opened, counts, sink)
    click.echo(
        f"{counts['ok']} ranked, {plural(counts['input'], 'malformed item')} skipped, "
        f"{counts['failed']} failed" + (f"; records in {output}" if output else ""),
        err=True,
    )
    sys.exit(2 if counts["input"] else 1 if counts["failed"] else 0)


def _check(item: Any, where: str, judges: tuple[Judge, ...]) -> None:
    """An ``InputError`` naming the item when any of ``judges`` cannot rank it."""
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected an object with 'responses'")
    if "responses" not in item:
        raise InputError(f"{where}: missing 'responses'")
    for judge in judges:
        item_examples(
            judge,
            item["responses"],
            item.get("prompt"),
            item.get("conversation"),
            _extras(item),
            where,
        )


def _opened(
    settings: Settings, panel: tuple[PanelSpec, bool] | None
) -> Callable[[], AbstractContextManager[Any]]:
    """What ranks: an ``ICRM`` from ``settings``, or the panel (``--panel``, with
    ``--require-all``) whose members share its judging and cache settings."""
    if panel is None:
        status(f"loading the {settings.engine.name} engine …")
        from icrm_sgl.judging.icrm import (
            ICRM,  # imports sglang (seconds): only once the input is read
        )

        return lambda: ICRM.from_settings(*settings)
    status(f"loading the panel's {plural(len(panel[0].members), 'member')} …")
    from icrm_sgl.panel.panel import Panel

    return lambda: Panel.from_settings(panel[0], settings, panel[1])


def _extras(item: dict[str, Any]) -> dict[str, Any]:
    """The item's keys beyond what is ranked, for judges whose template uses them."""
    return {k: v for k, v in item.items() if k not in ("id", "prompt", "conversation", "responses")}


def _rank_all(
    items: list[Entry],
    single: bool,
    gen: dict[str, Any],
    opened: Callable[[], AbstractContextManager[Any]],
    counts: dict[str, int],
    sink: RecordSink,
) -> None:
    """Rank the checked items: a single item shown on stdout as indented JSON, else
    (several, or any with --output) one JSONL record each."""
    with opened() as model:
        judging = getattr(model, "model_name", None) or f"panel {model.name}"
        status(f"ranking {plural(len(items), 'item')} with {judging} …")
        for entry in items:
            item, item_id = entry.record, entry.id
            where = "item" if single else entry.where
            try:
                ranking = rank(
                    model,
                    item["responses"],
                    item.get("prompt"),
                    item.get("conversation"),
                    where,
                    _extras(item),
                    **gen,
                ).as_dict()
            except VerdictError as exc:
                if single:
                    raise
                counts["failed"] += 1
                click.echo(f"failed {item_id}: {exc}", err=True)
                sink.record({"id": item_id, "error": str(exc)})
                continue
            counts["ok"] += 1
            if single:
                sink.write(json.dumps(ranking, indent=4, ensure_ascii=False) + "\n")
                break
            sink.record({"id": item_id, "ranking": ranking})
    for member in getattr(model, "models", [model]):
        echo_cache_note(member)
