"""One real eval run (the local engine, four pairs) shared by the report tests, its
variants made by copying and editing its files, and one headless Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.evaluation.test_eval_run import FAST, write_pairs


def run_eval(*args: str) -> None:
    """``icrm-sgl eval ARGS`` in this process (the click group: no signal handlers)."""
    from icrm_sgl.cli import cli

    cli.main(["eval", *args, *FAST], standalone_mode=False)


@pytest.fixture(scope="session")
def eval_folders(tmp_path_factory) -> dict[str, Path]:
    """``finished`` (a real run of four pairs), ``resumed`` (its first record kept, then
    ``--resume``) and ``progress`` (one record and a line cut short, no metrics)."""
    root = tmp_path_factory.mktemp("report")
    source = write_pairs(root / "pairs.json", 4)
    finished = root / "finished"
    run_eval(str(source), "--output-dir", str(finished))
    resumed, progress = root / "resumed", root / "progress"
    for copy in (resumed, progress):
        shutil.copytree(finished, copy)
        (copy / "metrics.json").unlink()
        (copy / "report.html").unlink()
        lines = (copy / "results.jsonl").read_text().splitlines(keepends=True)
        (copy / "results.jsonl").write_text(lines[0] + lines[1][:40])
    run_eval(str(source), "--output-dir", str(resumed), "--resume")
    return {"finished": finished, "resumed": resumed, "progress": progress, "source": source}


#: Text that would run, close the data's script tag or break its encoding if inserted as
#: HTML: a script, quotes, an event handler, an unpaired surrogate and a line separator.
HOSTILE = (
    "</script><script>window.__pwned=1</script>"
    '<img src=x onerror="window.__pwned=2">\'"&amp; \ud800 \u2028end'
)


@pytest.fixture(scope="session")
def hostile_folder(eval_folders, tmp_path_factory) -> Path:
    """The finished run with HOSTILE in a verdict's field and in an example's reply."""
    from icrm_sgl.evaluation.loaders import load_pairs
    from icrm_sgl.evaluation.report import write_report

    folder = tmp_path_factory.mktemp("hostile") / "run"
    shutil.copytree(eval_folders["finished"], folder)
    path = folder / "results.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[0]["judgements"][0]["analysis"] = HOSTILE
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    pairs = load_pairs(str(eval_folders["source"]))
    first = pairs[0]
    chosen = [*first.chosen[:-1], {"role": "assistant", "content": HOSTILE}]
    pairs[0] = type(first)(first.id, first.subset, chosen, first.rejected)
    write_report(folder, items=pairs)
    return folder


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium without network for a module (installed if missing)."""
    from devtools.browser import chromium_driver

    with chromium_driver() as driver:
        yield driver
