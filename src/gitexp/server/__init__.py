"""gitexp's MLflow-compatible tracking server (needs ``pip install 'gitexp[server]'``).

    gitexp server --repo PATH --port 5000
    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python train.py

``create_app(repo)`` builds the FastAPI app; ``serve(repo, host, port)`` runs it.
See docs/server.md.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

for _needed in ("fastapi", "uvicorn"):
    if importlib.util.find_spec(_needed) is None:
        raise ImportError(f"The gitexp server needs {_needed}: pip install 'gitexp[server]'")


def create_app(repo: Any = None, **kwargs: Any) -> FastAPI:
    """The FastAPI app serving `repo` (see gitexp.server.app.create_app)."""
    from .app import create_app as _create_app

    return _create_app(repo, **kwargs)


def serve(repo: Any = None, host: str = "127.0.0.1", port: int = 5000, **kwargs: Any) -> None:
    """Serve `repo` until interrupted (see gitexp.server.app.serve)."""
    from .app import serve as _serve

    _serve(repo, host, port, **kwargs)


__all__ = ["create_app", "serve"]
