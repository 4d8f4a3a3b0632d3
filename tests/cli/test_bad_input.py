"""Every malformed input through the real ``icrm-sgl`` command (in-process, ``run_cli``).

Batch cases share one .jsonl file per judging mode, between two good examples: each bad
line must give exactly one stderr line naming its line number (and id), a record with
the error, exit code 2 and no traceback, while the good examples are still judged.
File-level cases fail before any model loads: exactly one stderr line and exit code 2.
"""

import json

import pytest

from icrm_sgl.judges import default_judge
from tests.conftest import EXAMPLES

FAST = ["--num-shots", "1", "--max-tokens", "40"]
NOT_UTF8 = b'{"note": "caf\xe9"}'


def turn(role, content):
    return {"role": role, "content": content}


def conv(reply, query="What is the capital of France?"):
    return [turn("user", query), turn("assistant", reply)]


def pair(**overrides):
    return {"conversation_A": conv("Paris."), "conversation_B": conv("Lyon."), **overrides}


def line(record):
    return json.dumps(record).encode()


# (case, the .jsonl line, a fragment its error must contain)
PAIRWISE_CASES = [
    ("invalid JSON", b"{not json", "invalid JSON"),
    ("not UTF-8", NOT_UTF8, "not UTF-8 text"),
    ("not an object", b"[1, 2]", "expected an example object, got list"),
    ("lone surrogate", line(pair(conversation_B=conv("Ly\ud800on."))), "lone surrogate"),
    ("both forms", line(pair(conversation=conv("Paris."))), "has both 'conversation'"),
    ("missing B", line({"conversation_A": conv("Paris.")}), "conversation_B"),
    ("empty B", line(pair(conversation_B=[])), "conversation_B: expected a non-empty list"),
    ("unknown role", line(pair(conversation_A=[turn("bot", "x")])), "role 'bot'"),
    ("content not text", line(pair(conversation_B=conv(5))), "turn 1 content is int"),
    (
        "extra turn key",
        line(pair(conversation_A=[{**turn("user", "q"), "name": "x"}, turn("assistant", "a")])),
        "exactly the keys",
    ),
    ("turn not an object", line(pair(conversation_A=["hi", "there"])), "turn 0 is str"),
    ("ends with user", line(pair(conversation_A=[turn("user", "q")])), "end with an assistant"),
    ("histories differ", line(pair(conversation_B=conv("Lyon.", "Other?"))), "differ at turn 0"),
    ("id not text", line({"id": [1], **pair()}), "id must be a string or an integer"),
    ("surrogate id", line({"id": "p\udc80", **pair()}), "id: contains a lone surrogate"),
]

INDIVIDUAL_CASES = [
    ("invalid JSON", b'{"conversation": [', "invalid JSON"),
    ("not UTF-8", NOT_UTF8, "not UTF-8 text"),
    ("a number", b"42", "expected an example object, got int"),
    ("no conversation", line({"conversation": None}), "expected a non-empty list"),
    ("starts with assistant", line({"conversation": conv("x")[::-1]}), "expected 'user'"),
    ("lone surrogate", line({"conversation": conv("\udfff")}), "lone surrogate"),
    ("both forms", line({"conversation": conv("x"), **pair()}), "has both 'conversation'"),
    ("content is a list", line({"conversation": conv(["a"])}), "content is list"),
]

GOOD = {
    "pairwise": [pair(), pair(conversation_A=conv("Lyon."), conversation_B=conv("Paris."))],
    "individual": [{"conversation": conv("Paris.")}, {"conversation": conv("Berlin.")}],
}


def batch_file(path, rm_type, cases):
    """Good example, a blank line, the bad lines, good example: returns {line: case}."""
    first, last = GOOD[rm_type]
    lines = [line({"id": "good-1", **first}), b""]
    where = {}
    for name, raw, fragment in cases:
        lines.append(raw)
        where[len(lines)] = (name, fragment)
    lines.append(line({"id": "good-2", **last}))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return where


@pytest.mark.parametrize(
    "rm_type,cases", [("pairwise", PAIRWISE_CASES), ("individual", INDIVIDUAL_CASES)]
)
def test_every_malformed_line_is_one_stderr_line_and_the_rest_is_judged(
    tmp_path, rm_type, cases, run_cli
):
    src, out = tmp_path / "batch.jsonl", tmp_path / "out.jsonl"
    where = batch_file(src, rm_type, cases)
    proc = run_cli("score", src, *FAST, "-o", out)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    stderr = proc.stderr.splitlines()
    records = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    errors = [r["error"] for r in records if "error" in r]
    for number, (name, fragment) in where.items():
        place = (f"line {number}:", f"line {number} (", f"{src}: line {number}:")
        named = [x for x in stderr if x.startswith("skipped ") and x[8:].startswith(place)]
        assert len(named) == 1, (name, number, stderr)
        assert fragment in named[0], (name, named[0])
        assert sum(x.startswith(place) for x in errors) == 1, name
    verdicts = {r["id"]: r["verdict"] for r in records if "verdict" in r}
    assert set(verdicts) == {"good-1", "good-2"}
    for verdict in verdicts.values():
        default_judge(rm_type).validate(verdict)
    assert f"2 verdicts, {len(cases)} malformed examples skipped, 0 failed" in proc.stderr


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


PAIRS = [{"id": "p0", "label": "A", **pair()}]

# (case, files to create under tmp_path, command line with {tmp} for tmp_path, fragment)
FILE_CASES = [
    ("empty .jsonl", {"e.jsonl": ""}, ["score", "{tmp}/e.jsonl"], "no examples to judge"),
    ("empty list", {"e.json": "[]"}, ["score", "{tmp}/e.json"], "no examples to judge"),
    ("input not UTF-8", {"x.json": NOT_UTF8}, ["score", "{tmp}/x.json"], "not UTF-8 text"),
    (
        "shots pool not UTF-8",
        {"pool.json": NOT_UTF8},
        ["score", str(EXAMPLES / "test_pairwise.json"), "--shots-pool", "{tmp}/pool.json"],
        "shots pool",
    ),
    (
        "template not UTF-8",
        {"t.template": b"{$shots} caf\xe9"},
        ["score", str(EXAMPLES / "test_pairwise.json"), "--template", "{tmp}/t.template"],
        "not UTF-8 text",
    ),
    (
        "-o in a missing folder",
        {},
        ["score", str(EXAMPLES / "test_pairwise.json"), "-o", "{tmp}/no/such/out.jsonl"],
        "cannot write",
    ),
    (
        "single example with both forms",
        {"x.json": {"conversation": conv("a"), **pair()}},
        ["score", "{tmp}/x.json"],
        "has both",
    ),
    (
        "single example with a lone surrogate",
        {"x.json": {"conversation": conv("a\ud800")}},
        ["score", "{tmp}/x.json"],
        "lone surrogate",
    ),
    (
        "eval output folder cannot be created",
        {"pairs.json": PAIRS, "file": "x"},
        ["eval", "{tmp}/pairs.json", "--output-dir", "{tmp}/file/out"],
        "output folder",
    ),
    (
        "eval cache folder cannot be created",
        {"pairs.json": PAIRS, "file": "x"},
        [
            "eval",
            "{tmp}/pairs.json",
            "--output-dir",
            "{tmp}/out",
            "--use-cache",
            "--cache-dir",
            "{tmp}/file/cache",
        ],
        "cache folder",
    ),
    (
        "eval cache file is not a database",
        {"pairs.json": PAIRS, "cache/verdicts.sqlite": b"\x00garbage" * 512},
        [
            "eval",
            "{tmp}/pairs.json",
            "--output-dir",
            "{tmp}/out",
            "--use-cache",
            "--cache-dir",
            "{tmp}/cache",
        ],
        "verdict cache",
    ),
    ("eval source not UTF-8", {"p.json": NOT_UTF8}, ["eval", "{tmp}/p.json"], "not UTF-8 text"),
]


@pytest.mark.parametrize("name,files,args,fragment", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_files_and_paths_are_one_line_before_judging(
    tmp_path, name, files, args, fragment, run_cli
):
    for relative, data in files.items():
        _write(tmp_path / relative, data)
    proc = run_cli(*(a.replace("{tmp}", str(tmp_path)) for a in args), *FAST)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert proc.stdout == ""
