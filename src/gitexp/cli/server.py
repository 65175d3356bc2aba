"""`gitexp server`: MLflow's tracking server API over this repository."""

from __future__ import annotations

import click

from ._common import pass_context


@click.command("server")
@click.option("--repo", "repo_option", metavar="PATH", default=None,
              help="Repository to serve (default: --repo of gitexp, else the current directory's).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default accepts local connections only; 0.0.0.0 opens the "
                   "server to your network (it has no authentication: put it behind a proxy that has).")
@click.option("--port", "-p", default=5000, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option("--push-to", metavar="REMOTE", default=None,
              help="Push the tracking branch to this git remote (name or URL) while serving.")
@click.option("--push-interval", default=60.0, show_default=True, type=click.FloatRange(min=0.1),
              metavar="SECONDS", help="Seconds between pushes with --push-to.")
@click.option("--allowed-hosts", default=None, metavar="NAMES",
              help="Comma-separated host names clients may use to reach the server, besides localhost, the "
                   "--host address and private IP addresses ('*' for any). Other Host headers get 403, "
                   "which stops DNS-rebinding attacks from web pages.")
@click.option("--ui/--no-ui", default=None, help="Serve the web UI at / (default: when it is installed).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]), help="Server log level.")
@pass_context
def server(ctx, repo_option: str | None, host: str, port: int, push_to: str | None, push_interval: float,
           allowed_hosts: str | None, ui: bool | None, log_level: str) -> None:
    """Serve MLflow's REST API 2.0; everything logged lands in this repository.

    Point any MLflow client (or gitexp's) at it with MLFLOW_TRACKING_URI. Runs,
    metrics, artifacts (through the artifact proxy), logged models and the model
    registry all become commits on the tracking branch. One process serves all
    clients; stop it with Ctrl-C (it commits what it holds first).

    \b
    Example:
        gitexp server --repo . --port 5000
        MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python train.py
        gitexp server --push-to origin --push-interval 30
    """
    try:
        from ..server import serve
    except ImportError as exc:
        raise click.ClickException(f"{exc}") from exc
    repo = repo_option or ctx.repo
    click.echo(f"gitexp server: serving {repo or 'the current repository'} at http://{host}:{port}/ "
               f"(MLflow REST API: http://{host}:{port}/api/2.0/mlflow/)", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"gitexp server: listening on {host}: anyone who can reach this address can read and write "
                   "your experiments (there is no authentication)", err=True)
    try:
        serve(repo, host=host, port=port, ui=ui, push_to=push_to, push_interval=push_interval, log_level=log_level,
              allowed_hosts=[h for h in (allowed_hosts or "").split(",") if h.strip()])
    except ImportError as exc:  # --ui without the web UI installed
        raise click.ClickException(str(exc)) from exc


COMMANDS = [server]
