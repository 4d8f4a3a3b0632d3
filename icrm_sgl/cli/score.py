"""``icrm-sgl score``: judge the examples of a .json / .jsonl file."""

from __future__ import annotations

import json
import sys
from itertools import chain
from typing import Any

import click

from icrm_sgl.cli.options import judge_options, split_options
from icrm_sgl.inputs import detect_rm_type, load_examples
from icrm_sgl.judgement import Judgement


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@judge_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write JSONL records here (default: stdout).",
)
@click.option(
    "--both-orders",
    is_flag=True,
    help="Pairwise: judge A/B and B/A and print the reconciled result (P(A better), "
    "debiased expected margin, both verdicts, whether the choice flipped).",
)
def score(
    input_path: str,
    output: str | None,
    both_orders: bool,
    **options: Any,
) -> None:
    """Judge the example(s) in INPUT (.json: one example or a list; .jsonl: one per line).

    One example prints its verdict as indented JSON. Several print (or write to
    --output) one JSONL record each, with a progress bar and a summary on stderr.
    Exit code 2 when any example was malformed, 1 when any verdict failed.
    """
    loaded = load_examples(input_path)
    rm_type, gen, icrm_options = split_options(options)
    rm_type = rm_type or detect_rm_type(loaded.examples)
    if both_orders and rm_type != "pairwise":
        raise click.UsageError("--both-orders compares two replies: it needs pairwise examples")
    from icrm_sgl.icrm import ICRM  # imports sglang (seconds): only once the input is read
    from icrm_sgl.pair_judging import judge_pair, judge_pairs

    with ICRM(rm_type=rm_type, **icrm_options) as model:
        if loaded.single and not loaded.errors:
            if both_orders:
                shown = judge_pair(model, loaded.examples[0], True, **gen).result()
            else:
                shown = model.judge(loaded.examples[0], **gen).verdict
            click.echo(json.dumps(shown, indent=4, ensure_ascii=False))
            return
        failures = [
            Judgement(ex_id, error=msg, meta={"stage": "input"}) for ex_id, msg in loaded.errors
        ]
        if both_orders:
            results = judge_pairs(model, loaded.examples, True, progress=True, **gen)
        else:
            results = model.judge_batch(loaded.examples, progress=True, **gen)
        counts = _write_all(failures, results, output)
    click.echo(
        f"{counts['ok']} verdicts, {counts['input']} malformed examples skipped, "
        f"{counts['failed']} failed"
        + (f", {counts['retries']} retries" if "retries" in counts else "")
        + (f", {counts['tokens']} tokens" if counts.get("tokens") else "")
        + (f"; records in {output}" if output else ""),
        err=True,
    )
    sys.exit(2 if counts["input"] else 1 if counts["failed"] else 0)


def _tally(counts: dict[str, int], meta: dict[str, Any]) -> None:
    """Add a record's re-asks (hosted engines report them) and tokens to the summary."""
    if "retries" in meta:
        counts["retries"] = counts.get("retries", 0) + meta["retries"]
    tokens = (meta.get("prompt_tokens") or 0) + (meta.get("completion_tokens") or 0)
    counts["tokens"] = counts.get("tokens", 0) + tokens


def _write_all(failures: list[Judgement], results: Any, output: str | None) -> dict[str, int]:
    counts = {"ok": 0, "input": 0, "failed": 0}
    with click.open_file(output or "-", "w", encoding="utf-8") as sink:
        for result in chain(failures, results):
            _tally(counts, result.meta)
            if result.ok:
                counts["ok"] += 1
            else:
                counts["input" if result.meta.get("stage") == "input" else "failed"] += 1
                click.echo(f"skipped {result.id}: {result.error}", err=True)
            sink.write(json.dumps(result.record(), ensure_ascii=False) + "\n")
            sink.flush()
    return counts
