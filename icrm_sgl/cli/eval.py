"""``icrm-sgl eval``: judge a labelled benchmark and report accuracy the official way."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from icrm_sgl.errors import InputError
from icrm_sgl.judges import Judge
from icrm_sgl.judging.settings import Settings
from icrm_sgl.plumbing.files import refuse_overwrite

if TYPE_CHECKING:
    from icrm_sgl.evaluation.loaders import LabelledPair, ScoredReply
    from icrm_sgl.evaluation.runner import Evaluator
    from icrm_sgl.evaluation.store import ResultStore
    from icrm_sgl.panel.spec import PanelSpec

FORMATS = ("rewardbench", "rewardbench2", "llmbar", "pairs")
#: The files a run writes in its output folder besides results.jsonl and config.json.
METRICS, CHART, CALIBRATION = "metrics.json", "chart.png", "calibration.png"
#: What a tie (equal rewards) on a pair not labelled a tie counts for a --judge rubric.
TIE_CREDIT = 0.5


def default_output_dir(source: str) -> Path:
    """``eval-results/<name>``: the file's stem, its folder for ``dataset.json``."""
    path = Path(source)
    name = path.parent.name if path.stem == "dataset" else path.stem
    return Path("eval-results") / (name or source.replace("/", "_"))


@click.command("eval")
@click.argument("source")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Record format (default: detected).",
)
@click.option(
    "--columns",
    default=None,
    metavar="NAME=FIELD,...",
    help="Your own field names: prompt=…,a=…,b=…,label=… (optional input=…, id=…, "
    "subset=…). Labels 1/2, A/B or 0 (tie); a list of labels is decided by majority. "
    "prompt=…,reply=…,score=… reads one reply per row with a human score (correlations). "
    "NAME=FIELD for a --judge input NAME (e.g. reference=answer).",
)
@click.option(
    "--split", default="filtered", show_default=True, help="Split, for a Hugging Face dataset name."
)
@click.option(
    "--orders",
    type=click.Choice(("both", "ab", "alternate")),
    default="both",
    show_default=True,
    help="both: each pair in both A/B orders; ab: chosen as A; alternate: by pair.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where results.jsonl, metrics.json and chart.png go (default: eval-results/<name>).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --output-dir.")
@click.option("--overwrite", is_flag=True, help="Discard results already in --output-dir.")
@cache_options
@click.option("--limit", type=click.IntRange(1), default=None, help="Judge the first N pairs.")
@click.option("--subsets", default=None, help="Comma-separated subsets to keep.")
@click.option(
    "--reconcile",
    type=click.Choice(("choice", "probability")),
    default=None,
    help="Headline reconciliation: greedy choices, or probability-weighted margins "
    "(default: probability when the engine reports probabilities). Both are in metrics.json.",
)
@settings_options("pairwise")
@panel_options
def eval_command(
    source: str,
    fmt: str | None,
    columns: str | None,
    split: str,
    orders: str,
    output_dir: str | None,
    resume: bool,
    overwrite: bool,
    limit: int | None,
    subsets: str | None,
    reconcile: str | None,
    **options: Any,
) -> None:
    """Judge the labelled pairs in SOURCE (a file, an LLMBar folder, or a hub dataset name).

    Pairwise by default, both orders reconciled; --rm-type individual scores each reply;
    --judge RUBRIC.toml runs your own judge (of one reply: each reply's reward; of two:
    both orders). --panel PANEL.toml judges with a panel of judges and reports the panel's
    accuracy, each member's and their agreement. With --columns …,score=… each row is one
    reply with a human score, and the report gives the reward's correlations with it.
    Writes results.jsonl (one record per pair, flushed as it is judged), metrics.json and
    chart.png, and prints the metrics table.
    """
    from icrm_sgl.evaluation.columns import scores_replies
    from icrm_sgl.evaluation.store import ResultStore

    reads = [*read_paths(source, options), *_folder_files(source)]
    panel, require_all = split_panel(options)
    if panel is not None and reconcile is not None:
        raise click.UsageError("--reconcile is for one judge: a panel is scored by its reward")
    chosen, gen, settings = split_options(options)
    scored = columns is not None and scores_replies(columns)
    settings = settings.with_judge(chosen or ("individual" if scored else "pairwise"))
    judges = panel.judges if panel is not None else (settings.judging.definition(),)
    out = Path(output_dir) if output_dir else default_output_dir(source)
    _refuse_overwrite(out, reads)
    store = ResultStore(out)
    store.lock()  # before sglang and the model load: a folder in use or unwritable fails fast
    from icrm_sgl.evaluation.runner import check_jobs, check_judge, jobs_for, row_inputs

    inputs = sorted({key for judge in judges for key in row_inputs(judge)})
    items = _load(source, fmt, split, columns, scored, inputs)
    if subsets:
        wanted = {s.strip() for s in subsets.split(",") if s.strip()}
        items = [p for p in items if p.subset in wanted]
    items = items[:limit] if limit else items
    if not items:
        raise click.UsageError("no pairs left to judge after --subsets / --limit")
    run = Run(source, items, store, orders, resume, overwrite, gen, settings)
    if panel is not None:
        from icrm_sgl.evaluation.panel import check_panel_items

        check_panel_items(panel, items, orders)
        _run_panel(run, panel, require_all)
        return
    (judge,) = judges
    check_judge(judge, items)
    check_jobs(judge, jobs_for(judge, items, orders))
    tie_credit = TIE_CREDIT if isinstance(chosen, Judge) else 0.0
    _run(run, reconcile, tie_credit)


def _load(
    source: str,
    fmt: str | None,
    split: str,
    columns: str | None,
    scored: bool,
    inputs: list[str],
) -> list[LabelledPair | ScoredReply]:
    """The pairs (or replies with human scores) of SOURCE, with the judge's ``inputs``
    each row holds."""
    from icrm_sgl.evaluation.loaders import load_pairs, load_scored

    if scored and columns is not None:
        if fmt is not None:
            raise InputError("give --columns or --format, not both")
        return list(load_scored(source, columns, split, inputs))
    return list(load_pairs(source, fmt, split, columns, inputs))


def _folder_files(source: str) -> list[Path]:
    """The dataset files of an LLMBar folder (each ``dataset.json`` in it or below, as
    ``load_pairs`` reads them); none for a file or a hub name."""
    folder = Path(source)
    return sorted(folder.rglob("dataset.json")) if folder.is_dir() else []


def _refuse_overwrite(out: Path, reads: list[str | Path]) -> None:
    """An ``InputError`` when a file the run writes in ``out`` is one it reads."""
    from icrm_sgl.evaluation.lock import LOCK_FILE
    from icrm_sgl.evaluation.report import REPORT
    from icrm_sgl.evaluation.store import CONFIG, RESULTS

    for name in (RESULTS, CONFIG, METRICS, CHART, CALIBRATION, LOCK_FILE, REPORT):
        refuse_overwrite(out / name, reads)


@dataclass(frozen=True)
class Run:
    """What a run judges and where: the source, its pairs, the store, the orders, whether
    it resumes or overwrites, the sampling and the settings."""

    source: str
    pairs: Sequence[LabelledPair | ScoredReply]
    store: ResultStore
    orders: str
    resume: bool
    overwrite: bool
    gen: dict[str, Any]
    settings: Settings


def _run(run: Run, reconcile: str | None, tie_credit: float) -> None:
    """Judge with one judge, then write and print its report."""
    from icrm_sgl.evaluation.metrics import compute_metrics, format_table
    from icrm_sgl.evaluation.runner import Evaluator
    from icrm_sgl.judging.icrm import ICRM

    started = time.perf_counter()
    with ICRM.from_settings(*run.settings) as model:
        written = _judge(run, Evaluator(model, orders=run.orders, **run.gen))
    echo_cache_note(model)
    metrics = compute_metrics(
        run.store.records(), reconcile=reconcile, judge=model.definition, tie_credit=tie_credit
    )
    _report(run, metrics, format_table(metrics), written, started)


def _run_panel(run: Run, spec: PanelSpec, require_all: bool) -> None:
    """Judge with a panel (each member's verdicts in the records), then write and print
    the panel's report: its accuracy, each member's and their agreement."""
    from icrm_sgl.evaluation.panel import PanelEvaluator, format_panel_table, panel_metrics
    from icrm_sgl.panel.panel import Panel

    started = time.perf_counter()
    with Panel.from_settings(spec, run.settings, require_all) as panel:
        evaluator = PanelEvaluator(panel, orders=run.orders, **run.gen)
        evaluator.jobs(run.pairs)  # members reading one input differently: before the store opens
        written = _judge(run, evaluator)
    for model in panel.models:
        echo_cache_note(model)
    metrics = panel_metrics(run.store.records(), tie_credit=TIE_CREDIT)
    _report(run, metrics, format_panel_table(metrics), written, started)


def _judge(run: Run, evaluator: Evaluator) -> int:
    """Judge the pairs not yet in the store (all, unless resuming); how many were written."""
    store = run.store
    done = store.open(evaluator.config(run.source), resume=run.resume, overwrite=run.overwrite)
    todo = [p for p in run.pairs if p.id not in done]
    if done:
        click.echo(f"resuming: {len(done)} pairs already judged, {len(todo)} to go", err=True)
    try:
        return evaluator.run(todo, store)
    except KeyboardInterrupt:
        saved = len(store.records())
        click.echo(
            f"interrupted: {saved} pairs saved in {store.results_path}; continue with --resume",
            err=True,
        )
        _write_report(run)
        raise
    finally:
        store.close()


def _write_report(run: Run) -> None:
    """The folder's report.html; a failure is one warning, never the run's."""
    from icrm_sgl.evaluation.report import write_report

    try:
        write_report(run.store.folder, items=run.pairs)
    except Exception as exc:
        click.echo(f"warning: no report.html written ({exc})", err=True)


def _report(run: Run, metrics: dict[str, Any], table: str, written: int, started: float) -> None:
    """metrics.json, the charts and the table; the run's summary on stderr."""
    from icrm_sgl.evaluation.calibration import write_calibration_chart
    from icrm_sgl.evaluation.chart import write_chart

    out = run.store.folder
    (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    chart = write_chart(metrics, out / CHART)
    write_calibration_chart(metrics.get("calibration", {}), out / CALIBRATION)
    _write_report(run)
    elapsed = time.perf_counter() - started
    click.echo(table)
    click.echo(
        f"{written} pairs judged in {elapsed:.1f} s ({written / elapsed:.2f} pairs/s); "
        f"results: {run.store.results_path}, metrics: {out / METRICS}, chart: {chart}",
        err=True,
    )
