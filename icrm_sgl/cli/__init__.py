"""The ``icrm-sgl`` command line: a click group whose commands live in their own modules."""

from __future__ import annotations

import os
import sys

import click

from icrm_sgl.cli.eval import eval_command
from icrm_sgl.cli.rank import rank_command
from icrm_sgl.cli.score import score
from icrm_sgl.cli.shots import shots
from icrm_sgl.errors import IcrmError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="icrm-sgl")
def cli() -> None:
    """icrm-sgl: judge chatbot responses with an in-context reward model."""


cli.add_command(score)
cli.add_command(shots)
cli.add_command(eval_command)
cli.add_command(rank_command)


def main() -> None:
    """Entry point: library errors become one line on stderr and exit code 2."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except IcrmError as exc:
        if os.environ.get("ICRM_DEBUG"):
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
