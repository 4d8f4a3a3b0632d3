"""``icrm-sgl report``: rebuild an eval folder's report.html, or compare two runs."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from icrm_sgl.plumbing.files import refuse_overwrite

#: The files of an eval folder the page is built from.
_READ = ("config.json", "metrics.json", "results.jsonl")


def _inputs(folders: tuple[Path, ...]) -> list[Path]:
    """Every file of the folders the page is built from (none may be overwritten)."""
    return [folder / name for folder in folders for name in _READ]


@click.command("report")
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the page goes (default: EVAL_DIR/report.html; for two runs, A/compare.html).",
)
@click.option("--open", "open_page", is_flag=True, help="Open the page in the default browser.")
def report_command(folders: tuple[Path, ...], output: Path | None, open_page: bool) -> None:
    """Write the HTML report of the eval folder EVAL_DIR (a run finished, resumed or still
    in progress), or, given two folders A B, the page comparing two runs of the same set.
    """
    from icrm_sgl.evaluation.report import REPORT, write_comparison, write_report

    if len(folders) > 2:
        raise click.UsageError("give one eval folder, or two to compare")
    out = output or folders[0] / (REPORT if len(folders) == 1 else "compare.html")
    refuse_overwrite(out, _inputs(folders))
    if len(folders) == 1:
        page = write_report(folders[0], out)
    else:
        page = write_comparison(folders[0], folders[1], out)
    click.echo(str(page))
    if open_page:
        webbrowser.open(page.resolve().as_uri())
