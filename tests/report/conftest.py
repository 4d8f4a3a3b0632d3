"""Real eval runs shared by the report tests (the local engine: four pairs with the
built-in judge, two with a rubric), variants made by copying and editing their files, a
panel's folder from verdicts made by hand, and one headless Chromium."""

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


def _without_verdicts(line: str) -> str:
    """A record line as eval wrote it before records kept each order's whole verdict."""
    record = json.loads(line)
    for judgement in record["judgements"]:
        del judgement["verdict"]
    return json.dumps(record) + "\n"


@pytest.fixture(scope="session")
def eval_folders(tmp_path_factory) -> dict[str, Path]:
    """``finished`` (a real run of four pairs), ``resumed`` (its first record kept, then
    ``--resume``) and ``progress`` (one record and a line cut short, no metrics); the
    first record of both in the shape eval wrote before it kept whole verdicts."""
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
        (copy / "results.jsonl").write_text(_without_verdicts(lines[0]) + lines[1][:40])
    run_eval(str(source), "--output-dir", str(resumed), "--resume")
    return {"finished": finished, "resumed": resumed, "progress": progress, "source": source}


RUBRIC = str(Path(__file__).parents[2] / "examples" / "judges" / "mtbench_pairwise.toml")


@pytest.fixture(scope="session")
def rubric_folder(eval_folders) -> Path:
    """A real run of a custom judge (a rubric: an explanation, then a verdict) on two pairs."""
    folder = eval_folders["source"].parent / "rubric"
    run_eval(
        str(eval_folders["source"]), "--judge", RUBRIC, "--limit", "2", "--output-dir", str(folder)
    )
    return folder


#: A one-reply rubric whose verdict holds a text before its score.
RATER = """name = "{name}"
reward = "score"
template = \"\"\"Rate the reply from 1 to 3. Question: {{$user_query}} Reply: {{$model_output}}
{{$fields}}\"\"\"

[[fields]]
name = "reason"
type = "text"

[[fields]]
name = "score"
type = "int"
min = 1
max = 3
"""


@pytest.fixture(scope="session")
def panel_folder(eval_folders) -> Path:
    """A one-reply panel's folder, its records made by the panel's own code from members'
    verdicts written by hand (no engine), each member entry given the ``verdicts`` it
    judged ({chosen, rejected}: taken from the panel's meta.members, which the records do
    not keep yet)."""
    from icrm_sgl.evaluation.loaders import load_pairs
    from icrm_sgl.evaluation.panel import panel_metrics, panel_record
    from icrm_sgl.evaluation.report import write_report
    from icrm_sgl.panel import combine
    from icrm_sgl.panel.spec import load_panel
    from icrm_sgl.plumbing.judgement import Judgement

    folder = eval_folders["source"].parent / "panel"
    folder.mkdir()
    for name in ("rater_a", "rater_b"):
        (folder / f"{name}.toml").write_text(RATER.format(name=name))
    (folder / "panel.toml").write_text(
        '[[members]]\njudge = "rater_a.toml"\n[[members]]\njudge = "rater_b.toml"\n'
    )
    spec = load_panel(folder / "panel.toml")
    records, pairs = [], load_pairs(str(eval_folders["source"]))[:2]
    for pair in pairs:
        results, verdicts = [], []
        for side, score in (("chosen", 3), ("rejected", 1)):
            outcomes = [
                combine.one_reply(
                    member,
                    "m",
                    Judgement(
                        f"{pair.id}#{side}",
                        verdict={
                            "reason": f"{member.judge.name} on {side} {pair.id}",
                            "score": score,
                        },
                    ),
                )
                for member in spec.members
            ]
            result = combine.combine(spec, f"{pair.id}#{side}", outcomes, False)
            results.append((side, result))
            verdicts.append((side, [m["verdict"] for m in result.meta["members"]]))
        record = panel_record(pair, spec, results)
        for k, member in enumerate(record["members"]):
            member["verdicts"] = {side: found[k] for side, found in verdicts}
        records.append(record)
    config = json.loads((eval_folders["finished"] / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "panel": spec.name}))
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "metrics.json").write_text(json.dumps(panel_metrics(records)))
    write_report(folder, items=pairs)
    return folder


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
    records[0]["judgements"][0]["verdict"]["analysis of A"] = HOSTILE
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
