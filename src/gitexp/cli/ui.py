"""`gitexp ui`: serve the web UI of a repository."""

from __future__ import annotations

import click

from ._common import pass_context


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default only accepts connections from this machine; "
                   "0.0.0.0 exposes the UI, and the power to change runs and models, to your network.")
@click.option("--port", "-p", default=5000, show_default=True, type=int, help="Port to listen on.")
@click.option("--allowed-host", "allowed", multiple=True, metavar="NAME",
              help="Another Host header to accept (e.g. a name you reach this machine by). Repeatable.")
@pass_context
def ui(ctx, host: str, port: int, allowed: tuple[str, ...]) -> None:
    """Serve the web UI: experiments, runs, charts, comparisons, models and the branch's history.

    Reads the tracking branch of the repository (--repo, or the one around the
    current directory) live: new runs appear on reload. Actions in the UI
    (tags, notes, deletes, registering models, stages, aliases) are commits
    with your git identity. Needs gitexp[server].

    \b
    Example:
        gitexp ui                        # http://127.0.0.1:5000/
        gitexp --repo ../project ui --port 8080
    """
    try:
        from ..ui import serve
    except ImportError as exc:
        raise click.ClickException(f"the web UI needs gitexp[server] ({exc.name} is missing): "
                                   "pip install 'gitexp[server]'") from exc
    client = ctx.client
    repo = client.get_repository_info()
    click.secho(f"gitexp UI for {repo.path} (branch {repo.branch}): "
                f"http://{'[' + host + ']' if ':' in host else host}:{port}/  (Ctrl-C to stop)", bold=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.secho("Warning: listening beyond this machine; anyone who can reach it can read and change "
                    "your runs and models.", fg="yellow", err=True)
    serve(client.tracking_uri, host=host, port=port, extra_hosts=allowed)


COMMANDS = [ui]
