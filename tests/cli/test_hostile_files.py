"""Files that are not what a command expects (issue 27): FIFOs, devices, folders, files far
too large, and outputs that are the input. Each is one stderr line, exit 2, at once: no
read blocks, no memory grows, and nothing the command reads is overwritten."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import tracemalloc
from contextlib import contextmanager

import pytest

from icrm_sgl.cli.options import read_paths
from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.loaders import load_pairs
from icrm_sgl.evaluation.store import ResultStore
from icrm_sgl.judging.examples import load_examples
from icrm_sgl.plumbing.files import SizeLimit, decode, open_input, read_text
from icrm_sgl.plumbing.records import read_records
from tests.conftest import EXAMPLES, ROOT

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


def test_a_nul_byte_in_a_path_is_one_line(run_cli, tmp_path):
    """No file name holds a NUL, but a rubric's TOML can (``\\u0000``)."""
    nul = str(tmp_path / "a\0b.json")
    with pytest.raises(InputError, match=r"a\\0b\.json: cannot read \(a path cannot hold a NUL"):
        read_records(nul)
    judge = rubric(tmp_path, template_file=str(tmp_path / "t\0.txt"))
    out = tmp_path / "out.jsonl"
    proc = run_cli("score", individual_file(tmp_path), "--judge", judge, "-o", out)
    one_error(proc, "t\\0.txt: cannot read (a path cannot hold a NUL byte)")


def test_a_fifo_in_place_of_the_eval_results_is_refused(tmp_path):
    """The results of an earlier run are read (and written) through the same checks."""
    fifo = tmp_path / "results.jsonl"
    os.mkfifo(fifo)
    store = ResultStore(tmp_path)
    try:
        with within(30):
            for resume, overwrite in ((True, False), (False, True), (False, False)):
                with pytest.raises(InputError, match=re.escape(f"{fifo}: {FIFO}")):
                    store.open({}, resume=resume, overwrite=overwrite)
            with pytest.raises(InputError, match=re.escape(f"{fifo}: {FIFO}")):
                store.records()
    finally:
        store.close()


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


def test_a_small_file_reads_whatever_the_limit(tmp_path, monkeypatch):
    """The limit bounds what is read; it reserves no memory (a 32 GiB limit, 10 bytes)."""
    small = tmp_path / "small.json"
    small.write_text('{"a": 1}\n', "utf-8")
    monkeypatch.setenv("ICRM_MAX_INPUT_MB", str(32 << 10))
    assert read_records(small).values == [{"a": 1}]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_a_small_file_reads_in_a_process_short_of_memory(tmp_path):
    """With 256 MiB of address space to spare, under the 512 MiB default limit."""
    small = tmp_path / "small.json"
    small.write_text('{"a": 1}\n', "utf-8")
    script = textwrap.dedent(
        """
        import os, resource, sys
        from icrm_sgl.plumbing.records import read_records
        with open("/proc/self/statm") as statm:
            used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (used + (256 << 20), hard))
        print(read_records(sys.argv[1]).values)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "ICRM_MAX_INPUT_MB"}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(small)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert (proc.returncode, proc.stdout) == (0, "[{'a': 1}]\n"), proc.stderr


def test_a_jsonl_read_up_to_a_limit_may_be_larger_than_the_data_limit(
    run_cli, tmp_path, monkeypatch
):
    """``score --limit N`` reads N lines: only those count against the limit."""
    big = individual_file(tmp_path, "big.jsonl")
    os.truncate(big, 2 << 20)  # a second line of zero bytes, up to 2 MiB
    monkeypatch.setenv("ICRM_MAX_INPUT_MB", "1")
    assert len(load_examples(big, limit=1).examples) == 1
    with pytest.raises(InputError, match=r"big\.jsonl: larger than the 1 MiB limit"):
        load_examples(big, limit=2)  # the second line is read, and is over it
    with pytest.raises(InputError, match=r"big\.jsonl: 2 MiB is over the 1 MiB limit"):
        load_examples(big)
    missing = tmp_path / "missing.toml"
    proc = run_cli("score", big, "--limit", "1", "--judge", missing)
    one_error(proc, f"{missing}: cannot read")  # past the input: it was read


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


@pytest.mark.parametrize("key", ["template_file", "shot_template_file", "shots"])
@pytest.mark.parametrize("command", ["score", "rank"])
def test_an_output_never_replaces_a_file_the_rubric_names(run_cli, tmp_path, key, command):
    named = tmp_path / "named.txt"
    named.write_text("the user's own file\n", "utf-8")
    judge = rubric(tmp_path, **{key: str(named)})
    assert named in read_paths("in.jsonl", {"judge": judge})
    proc = run_cli(command, individual_file(tmp_path), "--judge", judge, "-o", named, *FAST)
    one_error(proc, f"output {named}: is the same file as {named}")
    assert named.read_text("utf-8") == "the user's own file\n"


def test_eval_never_writes_over_a_dataset_file_of_its_llmbar_folder(run_cli, tmp_path):
    folder = tmp_path / "llmbar"
    dataset = folder / "Natural" / "dataset.json"
    dataset.parent.mkdir(parents=True)
    record = {"input": "Hi?", "output_1": "Hello.", "output_2": "No.", "label": 1}
    dataset.write_text(json.dumps([record]), "utf-8")
    before = dataset.read_bytes()
    os.link(dataset, folder / "results.jsonl")  # the folder is also the output folder
    proc = run_cli("eval", folder, "--output-dir", folder, "--overwrite", *FAST)
    one_error(proc, f"output {folder / 'results.jsonl'}: is the same file as {dataset}")
    assert dataset.read_bytes() == before


# ------------------------------------------------------------------ line ends


def test_templates_read_with_lf_line_ends_as_before(tmp_path):
    """``read_text`` keeps ``Path.read_text``'s newlines (a template's text is part of its
    cache identity); data is decoded without them."""
    template = tmp_path / "t.txt"
    template.write_bytes(b"\xef\xbb\xbfa\r\nb\rc\n")
    assert read_text(template) == "a\nb\nc\n"
    assert decode(b"a\r\nb\rc", "data") == "a\r\nb\rc"


def test_a_json_file_is_read_without_copies(tmp_path):
    """The bytes and their text, and no more: no buffer the size of the limit, no
    copies to rewrite line ends (8 MiB of CRLF whitespace)."""
    path = tmp_path / "spaced.json"
    path.write_bytes(b"[" + b" \r\n" * ((8 << 20) // 3) + b"1]")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        assert read_records(path).values == [1]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * size, f"peak {peak} for {size} bytes"  # bytes + text: about 2x


def test_a_json_error_after_lone_cr_line_ends_names_its_line(tmp_path):
    path = tmp_path / "cr.json"
    path.write_bytes(b"[\r1,\r\n\r  {oops}]")
    with pytest.raises(InputError, match=r"cr\.json: line 4: invalid JSON \(.*column 4\)"):
        read_records(path)


# ------------------------------------------------------------------ line numbers


def test_a_columns_error_in_jsonl_names_its_line(tmp_path):
    path = tmp_path / "prefs.jsonl"
    good = {"q": "Hi?", "x": "a", "y": "b", "votes": 1}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "votes": 7}) + "\n", "utf-8")
    with pytest.raises(InputError, match=r"prefs\.jsonl: line 3: label must be"):
        load_pairs(str(path), columns="prompt=q,a=x,b=y,label=votes")
