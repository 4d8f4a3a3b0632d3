"""The one reader of record files: true line numbers, one error style, no tracebacks."""

from __future__ import annotations

import json

import pytest

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.loaders import load_pairs
from icrm_sgl.evaluation.store import ResultStore
from icrm_sgl.judges.shots import read_pool
from icrm_sgl.judging.examples import load_examples
from icrm_sgl.plumbing.records import read_records

BOM = b"\xef\xbb\xbf"


def lines_file(tmp_path, *lines, newline=b"\n", bom=False, name="r.jsonl"):
    path = tmp_path / name
    path.write_bytes((BOM if bom else b"") + newline.join(lines) + newline)
    return path


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("bom", [False, True], ids=["plain", "BOM"])
def test_jsonl_line_numbers_count_blank_lines(tmp_path, newline, bom):
    path = lines_file(
        tmp_path, b'{"a": 1}', b"", b"   ", b'{"a": 2}', b"{oops", newline=newline, bom=bom
    )
    read = read_records(path, skip_bad_lines=True)
    assert [(r.line, r.value) for r in read.records] == [(1, {"a": 1}), (4, {"a": 2})]
    assert [place for place, _ in read.errors] == ["line 5"]
    with pytest.raises(InputError) as info:
        read_records(path)
    assert str(info.value).startswith(f"{path}: line 5: invalid JSON (")


def test_only_a_line_feed_ends_a_line(tmp_path):
    """JSON text may hold U+2028 or a form feed raw; ``splitlines`` would cut there."""
    odd = json.dumps({"t": "a\u2028b\x0cc\x1cd"}, ensure_ascii=False).encode()
    path = lines_file(tmp_path, odd, b"{bad")
    read = read_records(path, skip_bad_lines=True)
    assert read.records[0].value == {"t": "a\u2028b\x0cc\x1cd"}
    assert read.errors[0][0] == "line 2"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_a_json_file_names_the_line_of_its_error(tmp_path, newline):
    path = tmp_path / "r.json"
    path.write_bytes(BOM + newline.join([b"[", b"", b'  {"a": 1},', b"  {oops}", b"]"]))
    with pytest.raises(InputError) as info:
        read_records(path, "shots pool")
    assert str(info.value).startswith(f"shots pool {path}: line 4: invalid JSON (")


def test_every_file_kind_reads_alike(tmp_path):
    """Inputs, pairs, pools and results name the same line for the same fault."""
    good = {"conversation_A": [], "conversation_B": [], "label": "A"}
    path = lines_file(tmp_path, json.dumps(good).encode(), b"", b"{oops")
    with pytest.raises(InputError, match=r"r\.jsonl: line 3: invalid JSON"):
        load_pairs(str(path))
    assert load_examples(path).errors[0][1].startswith(f"{path}: line 3: invalid JSON")
    with pytest.raises(InputError, match=r"shots pool .*r\.jsonl: line 3: invalid JSON"):
        read_pool(path)
    store = ResultStore(tmp_path)
    store.results_path.write_bytes(b'{"id": "a"}\n\n{oops\n')
    with pytest.raises(InputError, match=r"results\.jsonl: line 3: invalid JSON .*--overwrite"):
        store.records()


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("command", ["score", "rank", "eval"])
def test_a_deeply_nested_file_is_one_line_and_exit_2(run_cli, tmp_path, command):
    src = tmp_path / "deep.json"
    src.write_text(DEEP)
    result = run_cli(command, src)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {src}: invalid JSON (nested too deeply to read)"


def test_a_deeply_nested_jsonl_line_is_skipped_by_score(tmp_path):
    path = lines_file(tmp_path, DEEP.encode(), b'{"id": "x"}')
    loaded = load_examples(path)
    assert loaded.errors == [
        ("line 1", f"{path}: line 1: invalid JSON (nested too deeply to read)")
    ]
    assert [e.where for e in loaded.entries] == ["line 2 (id x)"]
