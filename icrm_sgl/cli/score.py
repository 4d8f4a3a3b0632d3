"""``icrm-sgl score``: judge the examples of a .json / .jsonl file."""

from __future__ import annotations

import json
import sys
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
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
from icrm_sgl.cli.summary import plural, status, verdict_progress
from icrm_sgl.errors import InputError, VerdictError
from icrm_sgl.judges import Judge, as_judge
from icrm_sgl.judging.examples import ExampleFile, Group, load_examples, screen_examples
from icrm_sgl.judging.settings import Settings
from icrm_sgl.panel.spec import PanelSpec
from icrm_sgl.plumbing.files import refuse_overwrite
from icrm_sgl.plumbing.judgement import Judgement


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@settings_options()
@panel_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write JSONL records here (default: stdout), even for a single example.",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=None,
    help="Judge only the first N examples (a .jsonl file is read no further).",
)
@cache_options
@click.option(
    "--both-orders",
    is_flag=True,
    help="Pairwise: judge A/B and B/A and print the reconciled result (P(A better), "
    "debiased expected margin, both verdicts, whether the choice flipped).",
)
def score(
    input_path: str,
    output: str | None,
    limit: int | None,
    both_orders: bool,
    **options: Any,
) -> None:
    """Judge the example(s) in INPUT (.json: one example or a list; .jsonl: one per line).

    One example prints its verdict as indented JSON. Several (or any with --output) give
    one JSONL record each, with a progress bar and a summary on stderr. Without --rm-type
    or --judge each example is judged in the mode its keys show (a file may mix them;
    records come grouped by mode). With --panel every member judges each example and
    the record is the panel's (one example: the whole record, indented). Exit code 2 when
    any example was malformed, 1 when any verdict could not be produced.
    """
    refuse_overwrite(output, read_paths(input_path, options))
    loaded = load_examples(input_path, limit)
    panel, require_all = split_panel(options)
    judge, gen, settings = split_options(options)
    if panel is not None:
        judge_with_panel(loaded, output, both_orders, (panel, require_all), gen, settings)
    else:
        judge_loaded(loaded, output, both_orders, judge, gen, settings)


def judge_loaded(
    loaded: ExampleFile,
    output: str | None,
    both_orders: bool,
    judge: Judge | str | None,
    gen: dict[str, Any],
    settings: Settings,
) -> None:
    """``score``'s work once the file is read and the settings made (``icrm test`` too)."""
    groups, problems = screen_examples(loaded, None if judge is None else as_judge(judge))
    if both_orders and any(chosen.pair is None for chosen, _ in groups):
        from icrm_sgl.judging.pair_judging import ONE_REPLY

        raise click.UsageError(ONE_REPLY)
    if loaded.single and not output:
        sink = RecordSink(None)
        if problems:
            raise InputError(problems[0][1])
        status(f"loading the {settings.engine.name} engine …")
        from icrm_sgl.judging.icrm import (
            ICRM,  # imports sglang (seconds): only once the input is read
        )
        from icrm_sgl.judging.pair_judging import judge_pair

        ((chosen, examples),) = groups
        with ICRM.from_settings(
            *settings.with_judge(judge if judge is not None else chosen.name)
        ) as model:
            shown: dict[str, Any] | None
            message = f"judging 1 example with {model.model_name}"
            with verdict_progress(model, message, 2 if both_orders else 1):
                if both_orders:
                    shown = judge_pair(model, examples[0], True, **gen).result()
                else:
                    shown = model.judge(examples[0], **gen).verdict
        echo_cache_note(model)
        sink.write(json.dumps(shown, indent=4, ensure_ascii=False) + "\n")
        return
    failures = [Judgement(i, error=msg, meta={"stage": "input"}) for i, msg in problems]
    unit = "pair judged in both orders" if both_orders else "verdict"
    with RecordSink(output) as sink:
        if not groups:  # nothing to judge: no model to load
            tally = _write_all(failures, [], sink, output, unit)
        else:
            status(f"loading the {settings.engine.name} engine …")
            with _models(groups, judge, settings) as models:
                results = _all_results(models, groups, both_orders, gen)
                tally = _write_all(failures, results, sink, output, unit)
                for model in models:
                    echo_cache_note(model)
    click.echo(tally.summary(output), err=True)
    sys.exit(tally.exit_code)


def judge_with_panel(
    loaded: ExampleFile,
    output: str | None,
    both_orders: bool,
    panel: tuple[PanelSpec, bool],
    gen: dict[str, Any],
    settings: Settings,
) -> None:
    """``score --panel``: each example that every member can read, judged by the panel
    (``settings``' judging and cache groups shared by the members)."""
    from icrm_sgl.panel.panel import Panel  # imports sglang (seconds): once the input is read

    spec, require_all = panel
    if both_orders and not spec.pairs:
        raise click.UsageError("--both-orders compares two replies: this panel judges one")
    examples, problems = _screen_panel(loaded, spec)
    failures = [Judgement(i, error=msg, meta={"stage": "input"}) for i, msg in problems]
    if loaded.single and not output and problems:
        raise InputError(problems[0][1])
    unit = "panel verdict" + (" in both orders" if both_orders else "")
    with RecordSink(output) as sink:
        if not examples:
            tally = _write_all(failures, [], sink, output, unit)
        else:
            status(f"loading the panel's {plural(len(spec.members), 'member')} …")
            with Panel.from_settings(spec, settings, require_all) as judging:
                if both_orders:
                    results = judging.judge_pairs(examples, True, progress=True, **gen)
                else:
                    results = judging.judge_batch(examples, progress=True, **gen)
                if loaded.single and not output:
                    sink.write(json.dumps(_single(results), indent=4, ensure_ascii=False) + "\n")
                    return
                tally = _write_all(failures, results, sink, output, unit)
            for model in judging.models:
                echo_cache_note(model)
    click.echo(tally.summary(output), err=True)
    sys.exit(tally.exit_code)


def _single(results: Iterable[Judgement]) -> dict[str, Any]:
    """The one example's record; its failure raised as ``judge`` raises it."""
    (result,) = results
    if not result.ok:
        raise VerdictError(f"example {result.id}: {result.error}")
    return result.record()


def _screen_panel(loaded: ExampleFile, spec: PanelSpec) -> tuple[list[Any], list[tuple[str, str]]]:
    """The examples every member can read (``id`` set), and ``(id, message)`` for the
    others: the first problem any member's judge finds."""
    problems: dict[str, str] = {}
    valid: list[Any] = []
    for judge in spec.judges:
        groups, failures = screen_examples(loaded, judge)
        for example_id, message in failures:
            problems.setdefault(example_id, message)
        valid = [example for _, examples in groups for example in examples]
    return [ex for ex in valid if ex["id"] not in problems], list(problems.items())


@contextmanager
def _models(groups: list[Group], judge: Any, settings: Settings) -> Iterator[list[Any]]:
    """One ``ICRM`` per group's judge, all on the first one's engine; closed in reverse."""
    from icrm_sgl.judging.icrm import ICRM  # imports sglang (seconds): only once the input is read

    models: list[Any] = []
    try:
        for chosen, _ in groups:
            shared = models[0].backend if models else None
            chosen_settings = settings.with_judge(judge if judge is not None else chosen.name)
            models.append(ICRM.from_settings(*chosen_settings, backend=shared))
        yield models
    finally:
        for model in reversed(models):
            model.close()


def _all_results(
    models: list[Any], groups: list[Group], both_orders: bool, gen: dict[str, Any]
) -> Generator[Any, None, None]:
    """Each group's results through its model, one group after another (a generator, so
    an interrupt closes the running batch and its progress bar)."""
    for model, (_, examples) in zip(models, groups, strict=True):
        if both_orders:
            from icrm_sgl.judging.pair_judging import judge_pairs

            yield from judge_pairs(model, examples, True, progress=True, **gen)
        else:
            yield from model.judge_batch(examples, progress=True, **gen)


@dataclass
class Tally:
    """Counts for the summary line and the exit code; ``unit`` names what ``ok`` counts."""

    ok: int = 0
    malformed: int = 0
    failed: int = 0
    retries: int | None = None
    tokens: int = 0
    unit: str = "verdict"

    def add(self, result: Judgement) -> None:
        meta = result.meta
        if "retries" in meta:  # hosted engines report their re-asks
            self.retries = (self.retries or 0) + meta["retries"]
        if not meta.get("from_cache"):  # a cached verdict's tokens were spent before
            self.tokens += (meta.get("prompt_tokens") or 0) + (meta.get("completion_tokens") or 0)
        if result.ok:
            self.ok += 1
        elif meta.get("stage") == "input":
            self.malformed += 1
            click.echo(f"skipped {result.error}", err=True)
        else:
            self.failed += 1
            click.echo(f"failed {result.id}: {result.error}", err=True)

    def summary(self, output: str | None, interrupted: bool = False) -> str:
        return (
            ("interrupted after " if interrupted else "")
            + f"{plural(self.ok, self.unit)}, {plural(self.malformed, 'malformed example')} "
            + f"skipped, {self.failed} failed"
            + (f", {plural(self.retries, 'retry', 'retries')}" if self.retries is not None else "")
            + (f", {plural(self.tokens, 'token')}" if self.tokens else "")
            + (f"; records in {output}" if output else "")
        )

    @property
    def exit_code(self) -> int:
        return 2 if self.malformed else 1 if self.failed else 0


def _write_all(
    failures: list[Judgement],
    results: Iterable[Judgement],
    sink: RecordSink,
    output: str | None,
    unit: str,
) -> Tally:
    """Write and flush each record as it comes; on Ctrl-C or SIGTERM, the summary of what
    was written is printed before the interrupt goes on."""
    tally = Tally(unit=unit)
    try:
        for result in chain(failures, results):
            tally.add(result)
            sink.record(result.record())
    except KeyboardInterrupt:
        if isinstance(results, Generator):
            results.close()  # stops the batch and clears its progress bar first
        click.echo(tally.summary(output, interrupted=True), err=True)
        raise
    return tally
