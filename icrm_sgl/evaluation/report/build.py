"""Write ``report.html``: the page's assets and data inlined into one file that needs no
server and no network, its data escaped so that no text in it can end its script."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from icrm_sgl.errors import InputError
from icrm_sgl.evaluation.report.compare import changes
from icrm_sgl.evaluation.report.folder import Item, read_run
from icrm_sgl.evaluation.report.model import Page
from icrm_sgl.plumbing.files import open_for_writing

REPORT = "report.html"
#: What may not appear raw in a ``<script>`` block's JSON, and its JSON escape.
_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _asset(name: str) -> str:
    return files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def embedded_json(page: Page) -> str:
    """The page's data as JSON safe inside ``<script type="application/json">``: no ``<``,
    ``>`` or ``&`` (nothing can close the tag), line separators escaped, and an unpaired
    surrogate (valid in JSON text, not in UTF-8) replaced by U+FFFD."""
    text = json.dumps(page.model_dump(), ensure_ascii=False, separators=(",", ":"))
    text = _SURROGATE.sub("\ufffd", text)
    return re.sub("[<>&\u2028\u2029]", lambda m: _ESCAPES[m.group()], text)


def render(page: Page) -> str:
    """The whole HTML document of ``page``."""
    html = _asset("report.html")
    for marker, text in (
        ("/*STYLE*/", _asset("report.css")),
        ("/*SCRIPT*/", _asset("report.js")),
        ("/*DATA*/", embedded_json(page)),
    ):
        html = html.replace(marker, text, 1)
    return html


def _write(page: Page, out: Path) -> Path:
    """Write the page; a path that is there but not a regular file (a FIFO would block)
    is refused."""
    if out.exists() and not out.is_file():
        raise InputError(f"output {out}: not a regular file")
    with open_for_writing(out) as handle:
        handle.write(render(page))
    return out


def write_report(
    folder: Path, out: Path | None = None, items: Sequence[Item] | None = None
) -> Path:
    """Write the page of one eval folder (by default its ``report.html``)."""
    return _write(Page(runs=[read_run(folder, items)]), out or folder / REPORT)


def write_comparison(a: Path, b: Path, out: Path) -> Path:
    """Write the page comparing two runs of the same set."""
    first, second = read_run(a), read_run(b)
    return _write(Page(runs=[first, second], changes=changes(first, second)), out)
