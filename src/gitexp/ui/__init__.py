"""gitexp's web UI: experiments, runs, charts, comparisons, the registry and the branch's history.

    gitexp ui                       # http://127.0.0.1:5000/
    gitexp.ui.create_ui_app(repo)   # a FastAPI app serving the UI of one repository
    gitexp.ui.router(repo)          # the same pages as an APIRouter, to mount into another app

Pages are rendered on the server (Jinja2, autoescaped) with a little vanilla
JavaScript and plotly.js from the installed plotly package (no CDN).  Every
read and every action goes through one :class:`gitexp.Client`; each action is
a commit on the tracking branch carrying the user's git identity.  Needs the
``server`` extra: ``pip install 'gitexp[server]'``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI

from ..client import Client

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "allowed_hosts", "create_ui_app", "router", "serve"]


def router(repo_path: str | os.PathLike[str] | None = None, client: Client | None = None) -> APIRouter:
    """The UI's routes (pages at /, /runs, /models, /history..., data at /ui-api, files at /ui-static).

    Mount it with ``app.include_router(gitexp.ui.router(repo))``.  Actions refuse
    cross-site requests on their own; a host allow-list (see :func:`allowed_hosts`)
    is the mounting app's job (``gitexp.server.app.create_app`` has it).
    """
    from ._web import Renderer
    from .actions import Actions
    from .routes import UI

    client = client or Client(os.fspath(repo_path) if repo_path is not None else None)
    repo = client.get_repository_info()  # fail now, with gitexp's message, if this is no git repository
    label = os.path.basename(os.path.normpath(repo.path)) or "repository"
    renderer = Renderer(label, repo.branch)
    routes = APIRouter()
    UI(client, renderer).routes(routes)
    Actions(client, renderer).routes(routes)
    return routes


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> list[str]:
    """Host headers to accept when bound to `host`: the web app's one policy
    (:func:`gitexp.server.app.default_allowed_hosts`): localhost, the bind address unless it
    is a wildcard, and `extra`; loopback and private IP addresses are always accepted."""
    from ..server.app import default_allowed_hosts

    return default_allowed_hosts(host, extra)


def create_ui_app(repo_path: str | os.PathLike[str] | None = None, host: str = DEFAULT_HOST,
                  extra_hosts: Iterable[str] = ()) -> FastAPI:
    """A FastAPI app serving the UI of the repository at `repo_path` (default: the current one),
    with the Host check for a server bound to `host`: the web app of `gitexp ui`
    (:func:`gitexp.server.app.create_app` with ``api=False, ui=True``)."""
    from ..server.app import create_app

    return create_app(repo_path, api=False, ui=True, allowed_hosts=allowed_hosts(host, extra_hosts))


def serve(repo_path: str | os.PathLike[str] | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          extra_hosts: Iterable[str] = (), **options: Any) -> None:
    """Serve the UI until interrupted (what `gitexp ui` runs; `options` as gitexp.server.serve's)."""
    from ..server.app import serve as serve_app

    options.setdefault("api", False)
    options.setdefault("log_level", "warning")
    serve_app(repo_path, host, port, ui=True, allowed_hosts=extra_hosts, **options)
