"""Every command and snippet in README.md and docs/*.md works as written from a clean clone.

Each fenced ``bash`` and ``python`` block is taken apart. The default run checks all of
them without judging: an ``icrm-sgl`` / ``icrm`` command must parse with its command's own
options (the flags its ``--help`` lists, their types and choices), every repository file a
command or snippet names must exist, a snippet must compile and import what it names, a
``make`` target or a script flag must exist. It also runs the commands and snippets that
take seconds. The slow tier (``-m slow``) runs every other one as written, each in a fresh
copy of ``examples/``. What cannot run here is listed in ``EXCEPTIONS`` with the reason;
an exception that no longer matches anything fails, so the list stays true.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Commands and snippets that cannot run in a test, by a piece of their text, and why.
#: They are still checked statically.
EXCEPTIONS = {
    "pip install": "installs packages: the test run's environment has them already",
    "python -m pytest": "the test suite itself",
    "icrm-sgl report": "reads an eval folder an earlier command wrote (tests/report runs it)",
    "make ": "the install, the whole suite or the benchmark",
    "~/models/": "needs a GGUF model you download",
    "--model_name M --engine together": "needs a Together API key",
    "--engine sglang": "needs an sglang server on a GPU (tests/engines/sglang/test_sglang_real.py "
    "runs one on the CPU)",
    "--engine vllm": "needs vLLM and a GPU",
    "--engine openai --model gpt-4o-mini": "needs an OpenAI API key",
    "--engine openai --base-url": "needs a llama.cpp server (tests/engines run one)",
    "--engine together": "needs a Together API key",
    "--engine mistral": "needs a Mistral API key",
    "--engine claude": "needs an Anthropic API key",
    "allenai/reward-bench": "downloads a data set from the Hugging Face hub",
    "icrm-sgl serve": "a server that runs until stopped (tests/serve/ runs it)",
    "curl ": "needs a running icrm-sgl serve",
    "python -m sglang.launch_server": "an sglang server on a GPU",
    "python -m smg.launch_router": "sglang's router in front of GPU servers",
    "python examples/grpo_with_icrm.py": "GRPO training, minutes of CPU "
    "(tests/integrations/ runs it)",
    "GRPOTrainer(model=policy": "a sketch: the policy, data set and GRPOConfig are the reader's",
    'ICRMReward(endpoint="http://judge-host:8000"': "needs a running icrm-sgl serve",
}

#: Runs in the default test run: each takes a second or two (no model, or one short verdict).
QUICK_COMMANDS = ("icrm-sgl shots ",)
QUICK_SNIPPETS = (
    "ICRM.from_settings(",  # builds a judge, judges nothing
    "class Tone(BaseModel):",  # one verdict of two short fields, no shots
    'program_config("pairwise", num_shots=1, field_tokens=16)',  # one 16-token-field verdict
)

#: Options whose value is a file the command writes, not one it reads.
OUTPUT_OPTIONS = {"-o", "--output", "--output-dir", "--cache-dir"}
#: Repository files a command or snippet may name.
REPO_PATH = re.compile(
    r"^@?(?:\./)?(?:examples|docs|bench|scripts|devtools|icrm_sgl|tests|\.ci)/[\w./-]*$"
)
SEPARATORS = {"&&", "&", ";", "|", "||"}


@dataclass(frozen=True)
class Block:
    """One fenced block: its file, first line (the fence's) and text."""

    path: Path
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Command:
    """One shell command of a bash block (continuations joined, comments dropped)."""

    block: Block
    argv: tuple[str, ...]

    @property
    def text(self) -> str:
        return shlex.join(self.argv)

    @property
    def where(self) -> str:
        return f"{self.block.where}: {self.text}"


def _blocks() -> list[Block]:
    found = []
    for path in DOCS:
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            if lines[i].startswith("```"):
                lang = lines[i][3:].strip()
                end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
                if lang in ("bash", "python"):
                    found.append(Block(path, i + 1, lang, "\n".join(lines[i + 1 : end]) + "\n"))
                i = end
            i += 1
    return found


def _commands(block: Block) -> list[Command]:
    commands = []
    for line in block.text.replace("\\\n", " ").splitlines():
        words: list[str] = []
        for word in [*shlex.split(line, comments=True), "&&"]:
            if word in SEPARATORS:
                if words:
                    commands.append(Command(block, tuple(words)))
                words = []
            else:
                words.append(word)
    return commands


BLOCKS = _blocks()
COMMANDS = [c for b in BLOCKS if b.lang == "bash" for c in _commands(b)]
SNIPPETS = [b for b in BLOCKS if b.lang == "python"]


def _exception(text: str) -> str | None:
    return next((why for piece, why in EXCEPTIONS.items() if piece in text), None)


def _quick(command: Command) -> bool:
    return command.text.startswith(QUICK_COMMANDS) and _exception(command.text) is None


def _quick_snippet(block: Block) -> bool:
    return any(piece in block.text for piece in QUICK_SNIPPETS)


# -- static checks: every command and snippet -----------------------------------------------


def test_the_docs_have_commands_and_snippets():
    assert len(COMMANDS) > 60 and len(SNIPPETS) >= 6
    assert {b.path.name for b in BLOCKS} >= {"README.md", "cli.md", "engines.md", "judges.md"}


def test_the_quick_start_test_command_is_what_ci_runs():
    quick_start = next(b for b in BLOCKS if b.path.name == "README.md" and b.lang == "bash")
    assert quick_start.text.splitlines() == [
        "pip install -e . && icrm-sgl score examples/test_pairwise.json",
        "pip install -e '.[dev]' && python -m pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert quick_start.text.splitlines()[1] in ci


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.where)
def test_every_command_names_files_that_exist(command):
    previous = ""
    for word in command.argv:
        if previous not in OUTPUT_OPTIONS and REPO_PATH.match(word):
            assert (ROOT / word.lstrip("@")).exists(), f"{command.where}: no file {word}"
        previous = word


def _click_command(argv: tuple[str, ...]) -> tuple[click.Command, list[str], str]:
    """The click command an ``icrm-sgl`` / ``icrm`` command line reaches, and its arguments."""
    from icrm_sgl.cli import cli
    from icrm_sgl.cli.original import icrm

    command: click.Command = cli if argv[0] == "icrm-sgl" else icrm
    args, name = list(argv[1:]), argv[0]
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(click.Context(command), args[0])
        assert sub is not None, f"{shlex.join(argv)}: no command {args[0]!r} in {name}"
        command, name, args = sub, f"{name} {args[0]}", args[1:]
    return command, args, name


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if c.argv[0] in ("icrm-sgl", "icrm")], ids=lambda c: c.where
)
def test_every_icrm_sgl_command_parses_with_its_options(command, monkeypatch):
    """Click parses the arguments as the command would (options, types, choices, required
    arguments) without running it."""
    monkeypatch.chdir(ROOT)
    target, args, name = _click_command(command.argv)
    try:
        target.make_context(name, args)
    except click.ClickException as exc:
        pytest.fail(f"{command.where}: {exc.format_message()}")


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.argv[0] == "make"], ids=str)
def test_every_make_target_exists(command):
    targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
    assert set(command.argv[1:]) <= set(targets), command.where


@pytest.mark.parametrize(
    "command",
    [c for c in COMMANDS if c.argv[0] == "python" and c.argv[1].endswith(".py")],
    ids=lambda c: c.where,
)
def test_every_script_flag_exists(command):
    source = (ROOT / command.argv[1]).read_text()
    for flag in (w.split("=")[0] for w in command.argv[2:] if w.startswith("--")):
        assert f'"{flag}"' in source, f"{command.where}: {command.argv[1]} has no {flag}"


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda b: b.where)
def test_every_snippet_compiles_imports_and_names_files_that_exist(snippet):
    tree = ast.parse(snippet.text, filename=snippet.where)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{snippet.where}: {node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.Constant) and REPO_PATH.match(str(node.value)):
            assert (ROOT / node.value).exists(), f"{snippet.where}: no file {node.value}"


def test_every_exception_still_matches_something():
    texts = [c.text for c in COMMANDS] + [b.text for b in SNIPPETS]
    unused = [piece for piece in EXCEPTIONS if not any(piece in t for t in texts)]
    assert not unused, f"exceptions that match no command or snippet: {unused}"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_reaches_a_file_and_heading(doc):
    text = doc.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if "://" in target:
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        assert path.exists(), f"{doc.name}: link to missing {target}"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path), f"{doc.name}: no heading for {target}"


def test_the_layout_names_every_part_of_the_package():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = next(b for b in re.findall(r"```\n(icrm_sgl/\n.*?)```", readme, re.S))
    named = set(re.findall(r"(?:^|[\s,])([\w.]+/?)(?=[\s,])", layout))
    package = ROOT / "icrm_sgl"
    parts = {
        p.name + ("/" if p.is_dir() else "")
        for p in package.iterdir()
        if p.name != "__pycache__" and (p.is_dir() or p.suffix == ".py")
    }
    assert parts <= named, f"the README's layout misses {sorted(parts - named)}"
    for top in re.findall(r"^([\w.]+/)", layout, re.M):
        assert (ROOT / top).is_dir(), f"the README's layout names {top}, which is not there"
    for part in re.findall(r"^  ([\w.]+/?)", layout, re.M):
        assert (package / part).exists(), f"the README's layout names icrm_sgl/{part}"


# -- quick runs -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [c for c in COMMANDS if _quick(c)], ids=lambda c: c.where)
def test_quick_commands_run(command, run_cli, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = run_cli(*command.argv[1:])
    assert result.returncode == 0, f"{command.where}\n{result.stderr}"
    assert result.stdout.strip()


@pytest.mark.parametrize(
    "snippet", [b for b in SNIPPETS if _quick_snippet(b)], ids=lambda b: b.where
)
def test_quick_snippets_run(snippet, monkeypatch, capsys):
    """Run in this process (a subprocess would spend seconds importing sglang)."""
    monkeypatch.chdir(ROOT)
    # dont_inherit: this module's ``from __future__ import annotations`` must not apply.
    code = compile(snippet.text, snippet.where, "exec", dont_inherit=True)
    exec(code, {"__name__": "__doc_snippet__"})
    if re.search(r"\bprint\(", snippet.text):
        assert capsys.readouterr().out.strip()


def test_the_quick_sets_match_what_they_name():
    assert sum(_quick_snippet(b) for b in SNIPPETS) == len(QUICK_SNIPPETS)
    assert any(_quick(c) for c in COMMANDS)


# -- the slow tier: everything else, as written ---------------------------------------------

#: Each distinct command once (the README and docs/ repeat some), where it first appears.
RUNNABLE_COMMANDS = list(
    {
        c.text: c
        for c in reversed(COMMANDS)
        if c.argv[0] in ("icrm-sgl", "icrm") and not _quick(c) and _exception(c.text) is None
    }.values()
)[::-1]
RUNNABLE_SNIPPETS = [b for b in SNIPPETS if not _quick_snippet(b) and _exception(b.text) is None]


def _clean_copy(tmp_path: Path) -> Path:
    """A folder holding what a clean clone gives the docs' commands: ``examples/``."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


def _env() -> dict[str, str]:
    # conftest.py set ICRM_THREADS=1 and the session's ICRM_CACHE_DIR; subprocesses inherit.
    return {**os.environ, "ICRM_THREADS": "1"}


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("command", RUNNABLE_COMMANDS, ids=lambda c: c.where)
def test_documented_command_runs_as_written(command, tmp_path):
    exe = shutil.which(command.argv[0])
    assert exe is not None, f"{command.argv[0]} is not installed"
    done = subprocess.run(
        [exe, *command.argv[1:]],
        cwd=_clean_copy(tmp_path),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=1700,
    )
    assert done.returncode == 0, f"{command.where}\n{done.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("snippet", RUNNABLE_SNIPPETS, ids=lambda b: b.where)
def test_documented_snippet_runs_as_written(snippet, tmp_path):
    script = tmp_path / "snippet.py"
    script.write_text(textwrap.dedent(snippet.text))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=_clean_copy(tmp_path),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=1700,
    )
    assert done.returncode == 0, f"{snippet.where}\n{done.stderr[-3000:]}"
