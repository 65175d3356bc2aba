"""`gitexp runs checkout-code`: recreate the source tree a run ran with.

Kept in its own module and attached to the `runs` group, so the group's module
stays small.
"""

from __future__ import annotations

from typing import Any

import click

from ._common import Context, pass_context
from .runs import runs


@runs.command("checkout-code")
@click.argument("run")
@click.argument("directory", type=click.Path(file_okay=False))
@pass_context
def checkout_code(ctx: Context, run: str, directory: str) -> None:
    """Recreate the exact tracked source tree a run ran with in DIRECTORY.

    Writes the run's commit plus the uncommitted diff it recorded into a new or
    empty DIRECTORY; your HEAD, index and working tree are not touched. Untracked
    files the run saw are listed: their names are recorded, not their content.

    \b
    Example:
        gitexp runs checkout-code 1a2b3c4d /tmp/run-code
        cd /tmp/run-code && python train.py
    """
    run_id = ctx.run_id(run)
    result = ctx.client.checkout_code(run_id, directory)
    click.echo(str(result))
    committed = ctx.client.get_run(run_id).data.tags.get("gitexp.code.committedAs")
    if committed:
        click.echo(f"This code was later committed as {committed[:12]} (tag gitexp.code.committedAs).")


COMMANDS: list[Any] = []  # checkout-code joins the `runs` group above
