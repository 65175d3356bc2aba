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
from typing import Iterable

from fastapi import APIRouter, FastAPI

from ..client import Client

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "allowed_hosts", "create_ui_app", "router", "serve"]


def router(repo_path: str | os.PathLike | None = None, client: Client | None = None) -> APIRouter:
    """The UI's routes (pages at /, /runs, /models, /history..., data at /ui-api, files at /ui-static).

    Mount it with ``app.include_router(gitexp.ui.router(repo))``.  Actions refuse
    cross-site requests on their own; a host allow-list (see :func:`allowed_hosts`)
    is the mounting app's job.
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
    """Host headers to accept when bound to `host`: loopback names for a loopback bind (so a
    DNS-rebinding page cannot reach the UI), anything for a wildcard bind, plus `extra`."""
    extra = [h for h in extra if h]
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    hosts = list(LOOPBACK_HOSTS) if host in LOOPBACK_HOSTS or host.startswith("127.") else []
    return sorted({host, *hosts, *extra})


def create_ui_app(repo_path: str | os.PathLike | None = None, host: str = DEFAULT_HOST,
                  extra_hosts: Iterable[str] = ()) -> FastAPI:
    """A FastAPI app serving the UI of the repository at `repo_path` (default: the current one)."""
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    app = FastAPI(title="gitexp", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router(repo_path))
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host, extra_hosts))
    return app


def serve(repo_path: str | os.PathLike | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          extra_hosts: Iterable[str] = ()) -> None:
    """Serve the UI until interrupted (what `gitexp ui` runs)."""
    import uvicorn

    uvicorn.run(create_ui_app(repo_path, host, extra_hosts), host=host, port=port, log_level="warning")
