"""`gitexp server`: MLflow's tracking server API (and the web UI) over this repository."""

from __future__ import annotations

from typing import Any

import click

from ._common import Context, pass_context
from ._serving import run_server, serve_options


@click.command("server")
@serve_options(api=True, ui=None, log_level="info")
@pass_context
def server(ctx: Context, /, **options: Any) -> None:
    """Serve MLflow's REST API 2.0 and the web UI; everything logged lands in this repository.

    Point any MLflow client (or gitexp's) at it with MLFLOW_TRACKING_URI. Runs,
    metrics, artifacts (through the artifact proxy), logged models and the model
    registry all become commits on the tracking branch. One process serves all
    clients; stop it with Ctrl-C (it commits what it holds first). `gitexp ui`
    takes the same options; it serves the web UI without the API by default.

    \b
    Example:
        gitexp server --repo . --port 5000
        MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python train.py
        gitexp server --push-to origin --push-interval 30
    """
    run_server(ctx, "server", **options)


COMMANDS = [server]
