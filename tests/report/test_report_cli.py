"""``icrm-sgl report`` on finished, resumed and in-progress folders and on two runs, its
refusals, and the page's size for a thousand examples."""

from __future__ import annotations

import json
import os
import shutil

from icrm_sgl.evaluation.metrics import record_judge
from icrm_sgl.evaluation.report.build import embedded_json
from icrm_sgl.evaluation.report.model import Page, Run

MB = 1_000_000


def test_eval_and_report_write_the_page_of_each_folder(eval_folders, run_cli):
    finished, resumed = eval_folders["finished"], eval_folders["resumed"]
    assert (finished / "report.html").stat().st_size > 0  # eval wrote it
    assert (resumed / "report.html").stat().st_size > 0  # and so did the resumed run
    for name in ("finished", "resumed", "progress"):
        out = eval_folders[name] / "again.html"
        proc = run_cli("report", eval_folders[name], "-o", out)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == str(out)
        assert '"status":"in progress"' in out.read_text() or name != "progress"


def test_report_compares_two_runs_of_one_set(eval_folders, run_cli, tmp_path):
    out = tmp_path / "compare.html"
    proc = run_cli("report", eval_folders["finished"], eval_folders["resumed"], "-o", out)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert html.count('"changed":') == 4
    proc = run_cli("report", eval_folders["finished"], eval_folders["progress"], "-o", out)
    assert proc.returncode == 2 and "judged different examples" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_refuses_bad_folders_and_outputs_in_one_line(eval_folders, run_cli, tmp_path):
    finished = eval_folders["finished"]
    fifo = tmp_path / "fifo"
    shutil.copytree(finished, fifo)
    (fifo / "results.jsonl").unlink()
    os.mkfifo(fifo / "results.jsonl")
    cases = [
        (["report", tmp_path], "not an eval folder"),
        (["report", tmp_path / "none"], "not a folder"),
        (["report", fifo, "-o", tmp_path / "x.html"], "results.jsonl"),
        (["report", finished, "-o", finished / "results.jsonl"], "is the same file"),
        (["report", finished, "-o", tmp_path / "no" / "x.html"], "cannot write"),
    ]
    for args, message in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_thousand_examples_stay_under_five_megabytes(eval_folders, tmp_path):
    """A synthetic folder: the real run's record and config, a thousand long pairs whose
    verdicts hold long analyses."""
    from icrm_sgl.evaluation.report import write_report

    finished = eval_folders["finished"]
    record = json.loads((finished / "results.jsonl").read_text().splitlines()[0])
    texts = [field.key for field in record_judge(record["mode"]).text_fields]
    for judgement in record["judgements"]:
        judgement["verdict"].update(dict.fromkeys(texts, "an analysis " * 400))
    folder = tmp_path / "big"
    folder.mkdir()
    long = "a long reply " * 400
    user = {"role": "user", "content": "question " * 200}
    pairs = [
        {
            "id": f"x{i}",
            "subset": f"s{i % 7}",
            "conversation_A": [user, {"role": "assistant", "content": long}],
            "conversation_B": [user, {"role": "assistant", "content": long}],
            "label": "A",
        }
        for i in range(1000)
    ]
    (tmp_path / "big.json").write_text(json.dumps(pairs))
    config = json.loads((finished / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**config, "source": str(tmp_path / "big.json")})
    )
    lines = [json.dumps({**record, "id": p["id"], "subset": p["subset"]}) for p in pairs]
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    page = write_report(folder)
    assert page.stat().st_size < 5 * MB
    html = page.read_text()
    assert "a long reply" in html and "an analysis" in html and '"status":"in progress"' in html


def test_embedded_json_cannot_close_its_script_tag():
    run = Run(title="</script>\u2028&\ud800", status="x", settings={}, metrics=None, examples=[])
    text = embedded_json(Page(runs=[run]))
    assert not any(c in text for c in "<>&\u2028") and "\ud800" not in text
    assert json.loads(text)["runs"][0]["title"] == "</script>\u2028&\ufffd"
