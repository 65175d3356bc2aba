"""`gitexp ui`: serve the web UI of a repository."""

from __future__ import annotations

from typing import Any

import click

from ._common import Context, pass_context
from ._serving import run_server, serve_options


@click.command("ui")
@serve_options(api=False, ui=True, log_level="warning")
@pass_context
def ui(ctx: Context, /, **options: Any) -> None:
    """Serve the web UI: experiments, runs, charts, comparisons, models and the branch's history.

    Reads the tracking branch of the repository (--repo, or the one around the
    current directory) live: new runs appear on reload. Actions in the UI
    (tags, notes, deletes, registering models, stages, aliases) are commits
    with your git identity. Needs gitexp[server]. It is `gitexp server` with
    the API off by default: the options are the same (--api adds the API).

    \b
    Example:
        gitexp ui                        # http://127.0.0.1:5000/
        gitexp ui --repo ../project --port 8080
        gitexp ui --host 0.0.0.0 --allowed-hosts box.lan
    """
    run_server(ctx, "ui", **options)


COMMANDS = [ui]

