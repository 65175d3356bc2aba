"""The FastAPI application: MLflow's REST API 2.0 over one repository's Client.

    create_app(repo)   the app (routes under /api/2.0/mlflow and /ajax-api/2.0/mlflow,
                       the artifact proxy under /api/2.0/mlflow-artifacts, gitexp's
                       additions under /api/2.0/gitexp, /health,
                       /api/3.0/mlflow/server-info, /openapi.json)
    serve(repo, ...)   run it with uvicorn (one process: the store's sessions live here)

Errors are MLflow's: ``{"error_code": ..., "message": ...}`` with the HTTP
status MLflow maps the code to (404 RESOURCE_DOES_NOT_EXIST, 400
INVALID_PARAMETER_VALUE and RESOURCE_ALREADY_EXISTS, 500 only for a failure of
the server itself).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import ipaddress
import logging
import os
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..client import Client
from ..exceptions import GitexpError
from . import _artifacts, _gitexp, _registry, _tracking
from . import _schemas as s
from ._responses import JSON

_log = logging.getLogger("gitexp.server")

# MLflow's mapping from error code to HTTP status (mlflow/exceptions.py).
HTTP_STATUS = {
    "INTERNAL_ERROR": 500, "INVALID_STATE": 500, "DATA_LOSS": 500, "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504, "REQUEST_LIMIT_EXCEEDED": 429,
    "CANCELLED": 499, "RESOURCE_EXHAUSTED": 429, "ABORTED": 409, "RESOURCE_CONFLICT": 409,
    "ALREADY_EXISTS": 409, "NOT_FOUND": 404, "ENDPOINT_NOT_FOUND": 404, "RESOURCE_DOES_NOT_EXIST": 404,
    "PERMISSION_DENIED": 403, "CUSTOMER_UNAUTHORIZED": 401, "UNAUTHENTICATED": 401, "BAD_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400, "INVALID_PARAMETER_VALUE": 400,
}
API_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")
GITEXP_PREFIX = "/api/2.0/gitexp"


def error(code: str, message: str, status: int | None = None) -> JSON:
    return JSON({"error_code": code, "message": message}, status_code=status or HTTP_STATUS.get(code, 500))


_TYPE_TAGS = {"float", "int", "str", "bool", "list", "dict", "none"}


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    seen = set()
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        while loc and (loc[-1] in _TYPE_TAGS or "[" in loc[-1]):  # which member of a union failed
            loc.pop()
        name = ".".join(loc) or "request body"
        if name in seen or len(seen) >= 5:
            continue
        seen.add(name)
        if isinstance(err.get("input"), (bytes, bytearray)) and name == "request body":
            problems.append("The request body must be JSON, sent with Content-Type: application/json.")
        elif err.get("type") == "missing":
            problems.append(f"Missing value for required parameter '{name}'.")
        elif err.get("type") == "json_invalid":
            problems.append(f"The request body is not valid JSON: {err.get('msg')}.")
        else:
            value = err.get("input")
            shown = repr(value) if len(repr(value)) <= 200 else repr(value)[:200] + "..."
            problems.append(f"Invalid value {shown} for parameter '{name}' supplied: {err.get('msg')}.")
    return " ".join(problems) + " See the API docs for more information about request parameters."


def _ui_module(ui: bool | None) -> Any:
    if ui is False:
        return None
    if importlib.util.find_spec("gitexp.ui") is None:
        if ui:
            raise ImportError("The web UI (gitexp.ui) is not installed with this gitexp")
        return None
    return importlib.import_module("gitexp.ui")


def host_allowed(host_header: str, allowed: list[str]) -> bool:
    """Whether a Host header names this server (against DNS rebinding): a listed name, or an IP
    address that is loopback or private."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if "*" in allowed or host in allowed:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


class _HostCheck:
    """ASGI middleware: 403 for requests whose Host header is not this server's."""

    def __init__(self, app: Any, allowed: list[str]):
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            if not host_allowed(host, self.allowed):
                response = error("PERMISSION_DENIED", f"Host header {host!r} is not allowed. If you reach this "
                                 f"server by that name, start it with --allowed-hosts {host.split(':')[0]}", 403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def default_allowed_hosts(host: str) -> list[str]:
    return sorted({"localhost", "127.0.0.1", "::1", host.strip("[]").lower()})


def create_app(repo: str | os.PathLike | None = None, *, ui: bool | None = None,
               push_to: str | None = None, push_interval: float = 60.0,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """The server app for the repository at `repo` (default: the current directory's).

    ui: mount the web UI (``gitexp.ui``) at / -- None mounts it when it is installed.
    push_to: a git remote to push the tracking branch to every `push_interval` seconds.
    allowed_hosts: Host header values to answer (others get 403, against DNS rebinding);
        IP addresses that are loopback or private are always allowed, "*" allows any.
        None (the default for create_app) checks nothing; `serve` always checks.
    """
    client = Client(os.fspath(repo) if repo is not None else None)
    from ..exceptions import InvalidParameterValue, RepositoryRequired

    try:  # opening the store also checks the path: a bad one fails now, not at a request
        repository = client.get_repository_info()
    except RepositoryRequired:
        raise InvalidParameterValue(
            f"gitexp server serves a git repository, but the tracking URI is the server {client.tracking_uri}; "
            "pass --repo PATH (and check GITEXP_TRACKING_URI)") from None
    pusher = None
    if push_to:
        from .push import PeriodicPush

        pusher = PeriodicPush(client, push_to, push_interval)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if pusher is not None:
            pusher.start()
        try:
            yield
        finally:
            from starlette.concurrency import run_in_threadpool

            await run_in_threadpool(client.flush)
            if pusher is not None:
                await run_in_threadpool(pusher.stop)

    app = FastAPI(
        title="gitexp tracking server",
        version=__version__,
        description="MLflow's REST API 2.0 over a git repository: everything logged lands on the "
                    "repository's tracking branch. Point MLFLOW_TRACKING_URI at this server.",
        lifespan=lifespan,
        responses={400: {"model": s.Error}, 404: {"model": s.Error}},
    )
    app.state.client = client
    app.state.pusher = pusher

    if allowed_hosts is not None:
        app.add_middleware(_HostCheck, allowed=[h.strip().lower().strip("[]") for h in allowed_hosts if h.strip()])

    @app.exception_handler(GitexpError)
    async def gitexp_error(request: Request, exc: GitexpError):
        return error(exc.error_code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        return error("INVALID_PARAMETER_VALUE", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return error("ENDPOINT_NOT_FOUND", f"No endpoint {request.method} {request.url.path} on this "
                         "gitexp server; see /openapi.json for the API", 404)
        return error("BAD_REQUEST", f"{request.method} {request.url.path}: {exc.detail}", exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        _log.error("gitexp server: %s %s failed:\n%s", request.method, request.url.path,
                   "".join(traceback.format_exception(exc)))
        return error("INTERNAL_ERROR", f"The gitexp server failed on {request.method} {request.url.path}: "
                     f"{type(exc).__name__}: {exc}. This is a bug; please report it with the server log.")

    tracking = _tracking.router(client)
    registry = _registry.router(client)
    artifacts = _artifacts.router(client)
    for i, prefix in enumerate(API_PREFIXES):
        app.include_router(tracking, prefix=prefix, include_in_schema=i == 0)
        app.include_router(registry, prefix=prefix, include_in_schema=i == 0)
    for i, prefix in enumerate(ARTIFACT_PREFIXES):
        app.include_router(artifacts, prefix=prefix, include_in_schema=i == 0)
    app.include_router(_gitexp.router(client), prefix=GITEXP_PREFIX)

    @app.get("/health", tags=["server"], response_model=str)
    def health():
        return JSON("OK")

    @app.get("/version", tags=["server"], response_model=str)
    def version():
        return JSON(__version__)

    @app.get("/api/3.0/mlflow/server-info", tags=["server"], response_model=s.ServerInfo)
    def server_info():
        # No multipart uploads: the client then PUTs each file through the artifact proxy.
        return JSON({"store_type": "gitexp", "workspaces_enabled": False, "trace_archival_enabled": False,
                     "multipart_uploads_enabled": False, "multipart_downloads_enabled": False,
                     "features_enabled": {"gateway": False}})

    ui_module = _ui_module(ui)
    if ui_module is not None and hasattr(ui_module, "router"):
        app.include_router(ui_module.router(os.fspath(repo) if repo is not None else None))
    elif ui_module is not None and hasattr(ui_module, "create_ui_app"):
        app.mount("/", ui_module.create_ui_app(os.fspath(repo) if repo is not None else None))
    else:
        @app.get("/", tags=["server"], response_model=dict)
        def index():
            return JSON({"server": "gitexp", "version": __version__, "repository": repository.path,
                         "branch": repository.branch, "api": "/api/2.0/mlflow/",
                         "openapi": "/openapi.json"})

    return app


def serve(repo: str | os.PathLike | None = None, host: str = "127.0.0.1", port: int = 5000, *,
          ui: bool | None = None, push_to: str | None = None, push_interval: float = 60.0,
          log_level: str = "info", allowed_hosts: list[str] | None = None) -> None:
    """Serve the repository over HTTP until interrupted (one process; loopback by default).

    allowed_hosts: extra Host names to answer besides localhost, the bind address and
    loopback/private IP addresses ("*" for any).
    """
    import uvicorn

    hosts = default_allowed_hosts(host) + list(allowed_hosts or [])
    app = create_app(repo, ui=ui, push_to=push_to, push_interval=push_interval, allowed_hosts=hosts)
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)
