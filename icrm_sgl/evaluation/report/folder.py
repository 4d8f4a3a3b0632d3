"""An eval folder read for the page: its config, its records (a line a running eval is
still writing skipped), its metrics (metrics.json, or computed from the records of a run
still in progress) and, where the source is a local file, the examples' inputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from icrm_sgl.errors import IcrmError, InputError
from icrm_sgl.evaluation.loaders import LabelledPair, ScoredReply, load_pairs
from icrm_sgl.evaluation.metrics import compute_metrics, unique_records
from icrm_sgl.evaluation.panel import panel_metrics
from icrm_sgl.evaluation.report.examples import cut, example, shown_inputs, texts
from icrm_sgl.evaluation.report.model import Example, Run
from icrm_sgl.evaluation.store import CONFIG, RESULTS
from icrm_sgl.plumbing.files import read_text
from icrm_sgl.plumbing.records import loads, read_records

METRICS = "metrics.json"
#: The page's budgets for the examples' texts and for the verdicts' texts: each text is
#: cut to its share of its budget.
INPUT_BUDGET = 2_200_000
VERDICT_BUDGET = 1_000_000
#: The longest text shown whole, however few the examples.
LONGEST_TEXT = 20_000

Item = LabelledPair | ScoredReply


def check_folder(folder: Path) -> None:
    """An ``InputError`` unless ``folder`` is an eval output folder."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    if not (folder / RESULTS).exists() or not (folder / CONFIG).exists():
        raise InputError(f"{folder}: not an eval folder (no {RESULTS} and {CONFIG})")


def _json(path: Path) -> Any:
    return loads(read_text(path), str(path))


def read_results(folder: Path) -> list[dict[str, Any]]:
    """The folder's records, each id once; a line cut short by a run still writing or
    killed is skipped, never repaired (the folder may belong to a running eval)."""
    found = read_records(folder / RESULTS, skip_bad_lines=True)
    records = unique_records(found.values)
    bad = [i for i, r in enumerate(records) if not isinstance(r, dict) or "id" not in r]
    if bad:
        raise InputError(f"{folder / RESULTS}: record {bad[0]} is not a result record")
    return records


def _metrics(folder: Path, records: list[dict[str, Any]]) -> tuple[dict | None, str, str | None]:
    """(metrics, status, note): metrics.json when it covers every record, else the
    metrics computed from the records (a run in progress); None with the reason when a
    custom judge's records cannot be scored without its definition."""
    path = folder / METRICS
    if path.exists():
        saved = _json(path)
        if isinstance(saved, dict) and saved.get("n") == len(records):
            return saved, "finished", None
    if not records:
        return None, "in progress", "no example judged yet"
    try:
        if "members" in records[0]:
            return panel_metrics(records), "in progress", None
        return compute_metrics(records), "in progress", None
    except InputError as exc:
        return None, "in progress", f"metrics not computed: {exc}"


def _settings(config: dict[str, Any], metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The run's settings: the judge (name and fingerprint, or the panel), then config.json."""
    judge = (metrics or {}).get("judge") or (metrics or {}).get("panel") or {}
    named = {f"judge {key}": value for key, value in judge.items()}
    return {**named, **config}


def source_items(config: dict[str, Any]) -> list[Item] | None:
    """The pairs of the run's source when it is a local file or folder that reads as
    labelled pairs without options; None otherwise (a hub name is not fetched)."""
    source = config.get("source")
    if not isinstance(source, str) or not Path(source).exists():
        return None
    try:
        return list(load_pairs(source))
    except IcrmError:
        return None


def cut_verdicts(examples: list[Example]) -> None:
    """Cut the verdicts' texts to their share of ``VERDICT_BUDGET`` (results.jsonl keeps
    them whole): a thousand examples' analyses stay a page."""
    verdicts = [v for e in examples for v in e.verdicts]
    count = sum(texts([value for _, value in v.fields]) for v in verdicts)
    limit = max(100, min(LONGEST_TEXT, VERDICT_BUDGET // max(1, count)))
    for verdict in verdicts:
        verdict.fields = [(key, cut(value, limit, RESULTS)) for key, value in verdict.fields]


def read_run(folder: Path, items: Sequence[Item] | None = None) -> Run:
    """The page's view of one eval folder; ``items`` are the run's own examples (eval
    passes them), else the source is read again where it can be."""
    check_folder(folder)
    config = _json(folder / CONFIG)
    if not isinstance(config, dict):
        raise InputError(f"{folder / CONFIG}: not a run's config")
    records = read_results(folder)
    metrics, status, note = _metrics(folder, records)
    items = items if items is not None else source_items(config)
    by_id = {item.id: item for item in items or ()}
    limit = max(200, min(LONGEST_TEXT, INPUT_BUDGET // max(1, 3 * len(records))))
    examples = [example(r, shown_inputs(by_id.get(str(r["id"])), limit)) for r in records]
    cut_verdicts(examples)
    return Run(
        title=str(folder),
        status=status,
        settings=_settings(config, metrics),
        metrics=metrics,
        note=note,
        examples=examples,
    )
