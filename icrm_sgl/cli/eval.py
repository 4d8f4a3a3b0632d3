"""``icrm-sgl eval``: judge a labelled benchmark and report accuracy the official way."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from icrm_sgl.cli.options import (
    cache_options,
    echo_cache_note,
    judge_options_for,
    read_paths,
    split_options,
)
from icrm_sgl.errors import InputError
from icrm_sgl.files import refuse_overwrite
from icrm_sgl.options import Settings

FORMATS = ("rewardbench", "rewardbench2", "llmbar", "pairs")
#: The files a run writes in its output folder besides results.jsonl and config.json.
METRICS, CHART, CALIBRATION = "metrics.json", "chart.png", "calibration.png"


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
    "subset=…). Labels 1/2, A/B or 0 (tie); a list of labels is decided by majority.",
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
@judge_options_for("pairwise")
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

    Pairwise by default, both orders reconciled; --rm-type individual scores each reply.
    Writes results.jsonl (one record per pair, flushed as it is judged), metrics.json and
    chart.png, and prints the metrics table.
    """
    from icrm_sgl.evaluation.loaders import load_pairs

    rm_type, gen, settings = split_options(options)
    if rm_type is not None and not isinstance(rm_type, str):
        raise InputError(
            "eval runs the built-in judges only (its metrics read a score or a choice); "
            "for your own judge, use score --judge on each reply, or rank --judge"
        )

    out = Path(output_dir) if output_dir else default_output_dir(source)
    _refuse_overwrite(out, [*read_paths(source, options), *_folder_files(source)])
    pairs = load_pairs(source, fmt, split, columns)
    if subsets:
        wanted = {s.strip() for s in subsets.split(",") if s.strip()}
        pairs = [p for p in pairs if p.subset in wanted]
    pairs = pairs[:limit] if limit else pairs
    if not pairs:
        raise click.UsageError("no pairs left to judge after --subsets / --limit")
    _run(
        source,
        pairs,
        out,
        rm_type or "pairwise",
        orders,
        resume,
        overwrite,
        reconcile,
        gen,
        settings,
    )


def _folder_files(source: str) -> list[Path]:
    """The dataset files of an LLMBar folder (each ``dataset.json`` in it or below, as
    ``load_pairs`` reads them); none for a file or a hub name."""
    folder = Path(source)
    return sorted(folder.rglob("dataset.json")) if folder.is_dir() else []


def _refuse_overwrite(out: Path, reads: list[str | Path]) -> None:
    """An ``InputError`` when a file the run writes in ``out`` is one it reads."""
    from icrm_sgl.evaluation.lock import LOCK_FILE
    from icrm_sgl.evaluation.store import CONFIG, RESULTS

    for name in (RESULTS, CONFIG, METRICS, CHART, CALIBRATION, LOCK_FILE):
        refuse_overwrite(out / name, reads)


def _run(
    source: str,
    pairs: list,
    out: Path,
    rm_type: str,
    orders: str,
    resume: bool,
    overwrite: bool,
    reconcile: str | None,
    gen: dict[str, Any],
    settings: Settings,
) -> None:
    from icrm_sgl.evaluation.calibration import write_calibration_chart
    from icrm_sgl.evaluation.chart import write_chart
    from icrm_sgl.evaluation.metrics import compute_metrics, format_table
    from icrm_sgl.evaluation.store import ResultStore

    started = time.perf_counter()
    store = ResultStore(out)
    store.lock()  # before sglang and the model load: a folder in use or unwritable fails fast
    from icrm_sgl.evaluation.runner import Evaluator
    from icrm_sgl.icrm import ICRM

    with ICRM.from_settings(*settings.with_judge(rm_type)) as model:
        evaluator = Evaluator(model, orders=orders, **gen)
        done = store.open(evaluator.config(source), resume=resume, overwrite=overwrite)
        todo = [p for p in pairs if p.id not in done]
        if done:
            click.echo(f"resuming: {len(done)} pairs already judged, {len(todo)} to go", err=True)
        try:
            written = evaluator.run(todo, store)
        except KeyboardInterrupt:
            saved = len(store.records())
            click.echo(
                f"interrupted: {saved} pairs saved in {store.results_path}; continue with --resume",
                err=True,
            )
            raise
        finally:
            store.close()
    echo_cache_note(model)
    metrics = compute_metrics(store.records(), reconcile=reconcile)
    (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    chart = write_chart(metrics, out / CHART)
    write_calibration_chart(metrics["calibration"], out / CALIBRATION)
    elapsed = time.perf_counter() - started
    click.echo(format_table(metrics))
    click.echo(
        f"{written} pairs judged in {elapsed:.1f} s ({written / elapsed:.2f} pairs/s); "
        f"results: {store.results_path}, metrics: {out / METRICS}, chart: {chart}",
        err=True,
    )
