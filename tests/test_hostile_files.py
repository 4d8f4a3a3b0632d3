"""Files that are not what a command expects (issue 27): FIFOs, devices, folders, files far
too large, and outputs that are the input. Each is one stderr line, exit 2, at once: no
read blocks, no memory grows, and nothing the command reads is overwritten."""

from __future__ import annotations

import json
import os
import signal
from contextlib import contextmanager

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.loaders import load_pairs
from icrm_sgl.files import SizeLimit, open_input
from tests.conftest import EXAMPLES

GIB = 1 << 30
#: Were an output check to fail, the run it lets through stays short.
FAST = ["--num-shots", "0", "--max-tokens", "8"]
PAIRWISE = json.loads((EXAMPLES / "test_pairwise.json").read_text("utf-8"))
PAIR = {**PAIRWISE, "label": "A"}
DEVICE = "/dev/zero: is a device, not a regular file"
FIFO = "is a named pipe (FIFO), not a regular file"
DATA_LIMIT = "over the 512 MiB limit for data files (set ICRM_MAX_INPUT_MB to raise it)"
DEFINITION_LIMIT = "over the 16 MiB limit for templates, rubrics and shots pools"


@contextmanager
def within(seconds: int):
    """Fail the test instead of hanging when a read blocks (an alarm interrupts ``open``)."""

    def stop(*_):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def one_error(proc, fragment: str) -> None:
    """Exit 2 with exactly one stderr line, which holds ``fragment``; no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


def rubric(folder, **files: str):
    """A rubric whose ``template_file`` (or other keys) name the given paths."""
    template = folder / "template.txt"
    template.write_text("Rate it.\n{$shots}{$user_query}\n{$model_output}\n", encoding="utf-8")
    keys = {"template_file": str(template), **files}
    lines = [f"{key} = {json.dumps(value)}" for key, value in keys.items()]
    path = folder / "judge.toml"
    path.write_text(
        'name = "t"\nreward = "score"\n'
        + "\n".join(lines)
        + '\n[[fields]]\nname = "score"\ntype = "int"\nmin = 1\nmax = 5\n',
        encoding="utf-8",
    )
    return path


def sparse(path, size: int):
    """A file of ``size`` zero bytes that takes no disk space."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def individual_file(folder, name="in.jsonl"):
    path = folder / name
    path.write_text(json.dumps({"conversation": PAIRWISE["conversation_A"]}) + "\n", "utf-8")
    return path


# ----------------------------------------------------------------- not a regular file


def fifo_cases(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    good = individual_file(tmp_path)
    return fifo, {
        "score": ["score", fifo],
        "rank": ["rank", fifo],
        "eval": ["eval", fifo],
        "shots validate": ["shots", "validate", fifo],
        "--template": ["score", good, "--template", fifo],
        "--shots-pool": ["score", good, "--shots-pool", fifo],
        "rubric template_file": [
            "score",
            good,
            "--judge",
            rubric(tmp_path, template_file=str(fifo)),
        ],
    }


@pytest.mark.parametrize(
    "case",
    [
        "score",
        "rank",
        "eval",
        "shots validate",
        "--template",
        "--shots-pool",
        "rubric template_file",
    ],
)
def test_a_fifo_without_a_writer_is_refused_at_once(run_cli, tmp_path, case):
    fifo, cases = fifo_cases(tmp_path)
    with within(30):
        proc = run_cli(*cases[case])
    one_error(proc, f"{fifo}: {FIFO}")


DEVICE_CASES = {
    "score": ["score", "/dev/zero"],
    "rank": ["rank", "/dev/zero"],
    "eval": ["eval", "/dev/zero"],
    "eval --columns": ["eval", "/dev/zero", "--columns", "prompt=p,a=a,b=b,label=l"],
    "shots validate": ["shots", "validate", "/dev/zero"],
    "--template": ["score", "GOOD", "--template", "/dev/zero"],
    "--shots-pool": ["score", "GOOD", "--shots-pool", "/dev/zero"],
    "--judge": ["score", "GOOD", "--judge", "/dev/zero"],
}


@pytest.mark.parametrize("case", list(DEVICE_CASES))
def test_a_device_is_refused_by_name(run_cli, tmp_path, case):
    good = individual_file(tmp_path)
    args = [good if arg == "GOOD" else arg for arg in DEVICE_CASES[case]]
    with within(30):
        proc = run_cli(*args)
    one_error(proc, DEVICE)
    assert "no such file" not in proc.stderr


@pytest.mark.parametrize("key", ["template_file", "shot_template_file", "shots"])
def test_a_rubric_naming_a_device_is_refused_by_score_and_serve(run_cli, tmp_path, key):
    judge = rubric(tmp_path, **{key: "/dev/zero"})
    with within(30):
        proc = run_cli("score", individual_file(tmp_path), "--judge", judge)
    one_error(proc, DEVICE)
    with within(30):
        proc = run_cli("serve", "--judge", judge, "--port", "0")
    one_error(proc, DEVICE)


def test_a_folder_where_a_file_belongs_is_named(run_cli, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    proc = run_cli("score", individual_file(tmp_path), "--judge", folder)
    one_error(proc, f"{folder}: is a folder, not a regular file")
    proc = run_cli(
        "score", individual_file(tmp_path), "--judge", rubric(tmp_path, shots=str(folder))
    )
    one_error(proc, f"{folder}: is a folder, not a regular file")
    llmbar = tmp_path / "llmbar" / "Natural" / "dataset.json"
    llmbar.mkdir(parents=True)
    with pytest.raises(InputError, match=r"dataset\.json: is a folder, not a regular file"):
        load_pairs(str(tmp_path / "llmbar"))


# ----------------------------------------------------------------------- sizes


@pytest.mark.parametrize("name", ["big.jsonl", "big.json", "big.parquet"])
def test_a_data_file_over_the_limit_is_refused_before_it_is_read(run_cli, tmp_path, name):
    big = sparse(tmp_path / name, 2 * GIB)
    with within(30):
        for command in (["score"], ["rank"], ["eval"]) if name != "big.parquet" else (["eval"],):
            one_error(run_cli(*command, big), f"{big}: 2 GiB is {DATA_LIMIT}")


def test_the_data_limit_follows_the_environment(run_cli, tmp_path, monkeypatch):
    big = sparse(tmp_path / "big.jsonl", 2 << 20)
    monkeypatch.setenv("ICRM_MAX_INPUT_MB", "1")
    one_error(run_cli("score", big), f"{big}: 2 MiB is over the 1 MiB limit for data files")
    monkeypatch.setenv("ICRM_MAX_INPUT_MB", "lots")
    one_error(run_cli("score", big), "ICRM_MAX_INPUT_MB must be a whole number of MiB >= 1")


def definition_cases(tmp_path, big):
    good = individual_file(tmp_path)
    return {
        "--template": ["score", good, "--template", big],
        "--shots-pool": ["score", good, "--shots-pool", big],
        "--judge": ["score", good, "--judge", big],
        "rubric template_file": [
            "score",
            good,
            "--judge",
            rubric(tmp_path, template_file=str(big)),
        ],
        "rubric shots": ["score", good, "--judge", rubric(tmp_path, shots=str(big))],
        "shots validate": ["shots", "validate", big],
    }


@pytest.mark.parametrize(
    "case",
    [
        "--template",
        "--shots-pool",
        "--judge",
        "rubric template_file",
        "rubric shots",
        "shots validate",
    ],
)
def test_a_template_rubric_or_pool_over_its_limit_is_refused(run_cli, tmp_path, case):
    big = sparse(tmp_path / "big.json", GIB)
    with within(30):
        proc = run_cli(*definition_cases(tmp_path, big)[case])
    one_error(proc, f"{big}: 1 GiB is {DEFINITION_LIMIT}")


def test_a_file_that_grows_while_it_is_read_stops_at_the_limit(tmp_path):
    path = tmp_path / "growing.jsonl"
    path.write_bytes(b'{"a": 1}\n')
    limit = SizeLimit(16, "test files")
    with open_input(path, limit=limit) as source:
        with path.open("ab") as writer:
            writer.write(b'{"a": 2}\n' * 4)
        with pytest.raises(InputError, match=r"growing\.jsonl: larger than the 16 bytes limit"):
            list(source.lines())


# --------------------------------------------------------------- output over input


def outputs_over_inputs(tmp_path):
    """(command, the file that must survive) for every way of naming the input again."""
    jsonl = individual_file(tmp_path, "x.jsonl")
    single = tmp_path / "x.json"
    single.write_text(json.dumps([{"conversation": PAIRWISE["conversation_A"]}]), "utf-8")
    items = tmp_path / "items.json"
    items.write_text(json.dumps({"prompt": "Hi?", "responses": ["a", "b"]}), "utf-8")
    (tmp_path / "link.jsonl").symlink_to(jsonl)
    os.link(single, tmp_path / "hard.json")
    template = tmp_path / "t.txt"
    template.write_text("{$shots}{$history}{$user_query}{$model_output}", "utf-8")
    return {
        "score .jsonl": (["score", jsonl, "-o", jsonl], jsonl),
        "score .json": (["score", single, "-o", single], single),
        "rank .json": (["rank", items, "-o", items], items),
        "score through a symlink": (["score", jsonl, "-o", tmp_path / "link.jsonl"], jsonl),
        "score through a hard link": (["score", single, "-o", tmp_path / "hard.json"], single),
        "score over its template": (
            ["score", jsonl, "--template", template, "-o", template],
            template,
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "score .jsonl",
        "score .json",
        "rank .json",
        "score through a symlink",
        "score through a hard link",
        "score over its template",
    ],
)
def test_an_output_never_replaces_an_input(run_cli, tmp_path, case):
    args, kept = outputs_over_inputs(tmp_path)[case]
    before = kept.read_bytes()
    proc = run_cli(*args, *FAST)
    one_error(proc, f"is the same file as {kept}")
    assert kept.read_bytes() == before


@pytest.mark.parametrize("name", ["results.jsonl", "config.json", "metrics.json"])
def test_eval_never_writes_over_its_input(run_cli, tmp_path, name):
    out = tmp_path / "run"
    out.mkdir()
    source = out / name
    source.write_text(
        json.dumps(PAIR) + "\n" if name.endswith("l") else json.dumps([PAIR]), "utf-8"
    )
    before = source.read_bytes()
    linked = tmp_path / "pairs.json"
    os.link(source, linked)  # the same file under another name
    for given in (source, linked):
        proc = run_cli("eval", given, "--output-dir", out, "--overwrite", *FAST)
        one_error(proc, f"output {source}: is the same file as {given}")
    assert source.read_bytes() == before


# ------------------------------------------------------------------ line numbers


def test_a_columns_error_in_jsonl_names_its_line(tmp_path):
    path = tmp_path / "prefs.jsonl"
    good = {"q": "Hi?", "x": "a", "y": "b", "votes": 1}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "votes": 7}) + "\n", "utf-8")
    with pytest.raises(InputError, match=r"prefs\.jsonl: line 3: label must be"):
        load_pairs(str(path), columns="prompt=q,a=x,b=y,label=votes")
