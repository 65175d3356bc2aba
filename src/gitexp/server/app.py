"""The one web app of gitexp: MLflow's REST API 2.0 and the web UI over one repository's Client.

    create_app(repo, api=True, ui=None)   the app: the API (routes under /api/2.0/mlflow and
                       /ajax-api/2.0/mlflow, the artifact proxy under /api/2.0/mlflow-artifacts,
                       gitexp's additions under /api/2.0/gitexp, /api/3.0/mlflow/server-info,
                       /openapi.json) and/or the web UI's pages at /, plus /health and /version
    bind(host, port)   the listening socket, or a clear error naming a busy port
    serve(repo, ...)   run it with uvicorn (one process: the store's sessions live here);
                       what both `gitexp server` and `gitexp ui` run

One Host policy (against DNS rebinding), one map from error codes to statuses and one
JSON helper (``_responses``) serve the API and the UI alike. Errors are MLflow's:
``{"error_code": ..., "message": ...}`` with the HTTP status MLflow maps the code to
(404 RESOURCE_DOES_NOT_EXIST, 400 INVALID_PARAMETER_VALUE and RESOURCE_ALREADY_EXISTS,
500 only for a failure of the server itself).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import importlib.util
import ipaddress
import logging
import os
import socket
import traceback
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..client import Client, acting_as
from ..exceptions import GitexpError
from . import _artifacts, _gitexp, _registry, _tracking
from . import _schemas as s
from ._responses import HTTP_STATUS, JSON, error, status_for  # noqa: F401  (HTTP_STATUS: public name)

_log = logging.getLogger("gitexp.server")

API_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")
GITEXP_PREFIX = "/api/2.0/gitexp"


_TYPE_TAGS = {"float", "int", "str", "bool", "list", "dict", "none"}


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    seen: set[str] = set()
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
    if importlib.util.find_spec("gitexp.ui") is None or importlib.util.find_spec("jinja2") is None:
        if ui:
            raise ImportError("The web UI (gitexp.ui) needs jinja2 and plotly: pip install 'gitexp[server]'")
        return None
    return importlib.import_module("gitexp.ui")


# -- one Host policy ------------------------------------------------------------------------------
WILDCARD_BINDS = ("0.0.0.0", "::", "")


def host_allowed(host_header: str, allowed: Iterable[str]) -> bool:
    """Whether a Host header names this server (against DNS rebinding): a listed name, or an IP
    address that is loopback or private. A rebinding page reaches the server under its own
    name (evil.example), never under an IP address, so IP addresses need no list."""
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

    def __init__(self, app: Any, allowed: list[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            if not host_allowed(host, self.allowed):
                name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
                response = error("PERMISSION_DENIED", f"Host header {host!r} is not allowed. If you reach this "
                                 f"server by that name, start it with --allowed-hosts {name}", 403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


ANONYMOUS = ("anonymous (gitexp server)", "anonymous@gitexp-server")


def _is_loopback(host: str) -> bool:
    """Is the bind address this machine only (127.0.0.1, ::1, localhost)?"""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Anonymous:
    """ASGI middleware of a server exposed without --auth: the commits a request makes say that
    nobody signed in (their author is ANONYMOUS; the committer stays the repository's identity)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with acting_as(ANONYMOUS):
            await self.app(scope, receive, send)


def default_allowed_hosts(host: str, extra: Iterable[str] = ()) -> list[str]:
    """The Host names a server bound to `host` answers: localhost, the bind address (unless it
    is a wildcard such as 0.0.0.0, which is no name a client uses) and `extra` (names given
    with --allowed-hosts; "*" allows any). IP addresses that are loopback or private are
    always answered (see :func:`host_allowed`)."""
    names = {"localhost", "127.0.0.1", "::1"}
    bind = host.strip().strip("[]").lower()
    if bind not in WILDCARD_BINDS:
        names.add(bind)
    names.update(h.strip().lower().strip("[]") for h in extra if h and h.strip())
    return sorted(names)


def _no_root(app: FastAPI, repository: Any) -> None:
    @app.get("/", tags=["server"], response_model=dict)
    def index() -> JSON:
        return JSON({"server": "gitexp", "version": __version__, "repository": repository.path,
                     "branch": repository.branch, "api": "/api/2.0/mlflow/",
                     "openapi": "/openapi.json"})


def create_app(repo: str | os.PathLike[str] | None = None, *, api: bool = True, ui: bool | None = None,
               push_to: str | None = None, push_interval: float = 60.0,
               allowed_hosts: Iterable[str] | None = None, auth: bool = False, auth_file: str | None = None,
               default_permission: str = "READ", secure_cookies: bool = False,
               anonymous: bool = False) -> FastAPI:
    """The web app for the repository at `repo` (default: the current directory's).

    api: serve MLflow's REST API (and gitexp's additions, /openapi.json).
    ui: serve the web UI (``gitexp.ui``) at / -- None serves it when it is installed
        (jinja2 and plotly present), True fails without it, False never.
    push_to: a git remote to push the tracking branch to every `push_interval` seconds.
    allowed_hosts: Host header values to answer (others get 403 PERMISSION_DENIED, against DNS
        rebinding); IP addresses that are loopback or private are always allowed, "*" allows
        any. None (the default for create_app) checks nothing; `serve` always checks, with
        :func:`default_allowed_hosts`.
    auth: require users (docs/server.md, "Security"): HTTP Basic, Bearer tokens or the UI's login,
        and per-experiment/-model permissions (``default_permission`` where none is granted);
        the users are in `auth_file` (default: ``.git/gitexp/auth/users.json`` of the repository,
        see gitexp.server.auth). Refuses to start without any user. Commits made for a request
        name its user as their author. secure_cookies: the session cookie is sent over HTTPS only.
    anonymous: without auth, author the commits of requests as ``anonymous (gitexp server)``
        (`serve` does when it listens beyond loopback without auth); otherwise they are the
        repository's own identity's, the person who runs the server on their machine.
    /health is always served, without authentication.
    """
    ui_module = _ui_module(ui)
    if not api and ui_module is None:
        from ..exceptions import InvalidParameterValue

        raise InvalidParameterValue("Nothing to serve: both the API and the web UI are turned off")
    client = Client(os.fspath(repo) if repo is not None else None)
    from ..exceptions import InvalidParameterValue, RepositoryRequired

    try:  # opening the store also checks the path: a bad one fails now, not at a request
        repository = client.get_repository_info()
    except RepositoryRequired:
        raise InvalidParameterValue(
            f"gitexp serves a git repository, but the tracking URI is the server {client.tracking_uri}; "
            "pass --repo PATH (and check GITEXP_TRACKING_URI)") from None
    pusher = None
    if push_to:
        from .push import PeriodicPush

        pusher = PeriodicPush(client, push_to, push_interval)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if pusher is not None:
            pusher.start()
        try:
            yield
        finally:
            from starlette.concurrency import run_in_threadpool

            await run_in_threadpool(client.flush)
            if pusher is not None:
                await run_in_threadpool(pusher.stop)

    docs: dict[str, Any] = {} if api else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(
        title="gitexp tracking server" if api else "gitexp",
        version=__version__,
        description="MLflow's REST API 2.0 over a git repository: everything logged lands on the "
                    "repository's tracking branch. Point MLFLOW_TRACKING_URI at this server.",
        lifespan=lifespan,
        responses={400: {"model": s.Error}, 404: {"model": s.Error}},
        **docs,
    )
    app.state.client = client
    app.state.pusher = pusher

    auth_config = None
    if auth:
        from . import auth as auth_store
        from ._auth import AuthConfig, Guard

        store = auth_store.AuthStore(auth_file or auth_store.default_auth_file(repository.common_dir))
        if not store.has_users():
            raise InvalidParameterValue(
                f"Authentication is on but {store.path} holds no user: add one first with "
                "`gitexp users add NAME --admin` (or serve on 127.0.0.1 only, with --no-auth)")
        auth_config = AuthConfig(store, auth_store.check_permission_name(default_permission),
                                 secret=store.session_key())
        app.state.auth = auth_config
        app.add_middleware(Guard, config=auth_config, client=client)
    elif anonymous:
        app.add_middleware(_Anonymous)
    if allowed_hosts is not None:
        app.add_middleware(_HostCheck, allowed=[h.strip().lower().strip("[]") for h in allowed_hosts if h.strip()])

    @app.exception_handler(GitexpError)
    async def gitexp_error(request: Request, exc: GitexpError) -> JSON:
        return error(exc.error_code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSON:
        return error("INVALID_PARAMETER_VALUE", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSON:
        if exc.status_code == 404:
            return error("ENDPOINT_NOT_FOUND", f"No endpoint {request.method} {request.url.path} on this "
                         "gitexp server" + ("; see /openapi.json for the API" if api else ""), 404)
        return error("BAD_REQUEST", f"{request.method} {request.url.path}: {exc.detail}", exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSON:
        _log.error("gitexp server: %s %s failed:\n%s", request.method, request.url.path,
                   "".join(traceback.format_exception(exc)))
        return error("INTERNAL_ERROR", f"The gitexp server failed on {request.method} {request.url.path}: "
                     f"{type(exc).__name__}: {exc}. This is a bug; please report it with the server log.")

    if auth_config is not None:
        from ._auth import auth_router

        app.include_router(auth_router(auth_config, client, secure_cookies))
    if api:
        tracking = _tracking.router(client)
        registry = _registry.router(client)
        artifacts = _artifacts.router(client)
        for i, prefix in enumerate(API_PREFIXES):
            app.include_router(tracking, prefix=prefix, include_in_schema=i == 0)
            app.include_router(registry, prefix=prefix, include_in_schema=i == 0)
        for i, prefix in enumerate(ARTIFACT_PREFIXES):
            app.include_router(artifacts, prefix=prefix, include_in_schema=i == 0)
        app.include_router(_gitexp.router(client), prefix=GITEXP_PREFIX)

        @app.get("/api/3.0/mlflow/server-info", tags=["server"], response_model=s.ServerInfo)
        def server_info() -> JSON:
            # No multipart uploads: the client then PUTs each file through the artifact proxy.
            return JSON({"store_type": "gitexp", "workspaces_enabled": False, "trace_archival_enabled": False,
                         "multipart_uploads_enabled": False, "multipart_downloads_enabled": False,
                         "features_enabled": {"gateway": False}})

    @app.get("/health", tags=["server"], response_model=str)
    def health() -> JSON:
        return JSON("OK")

    @app.get("/version", tags=["server"], response_model=str)
    def version() -> JSON:
        return JSON(__version__)

    if ui_module is not None:
        app.include_router(ui_module.router(client=client))
    else:
        _no_root(app, repository)
    return app


# -- serving --------------------------------------------------------------------------------------
class CannotListen(GitexpError):
    """The server cannot open its port (in use, not allowed, no such address)."""

    error_code = "RESOURCE_CONFLICT"


def bind(host: str, port: int, option: str = "--port") -> socket.socket:
    """The listening socket for `host`:`port` (as uvicorn would open it), bound now so that a
    busy port is one clear error before anything else happens, not uvicorn's [Errno 98]."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn chooses
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, family, socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise CannotListen(f"Cannot listen on {host!r}: {exc.strerror}. Give an address of this machine "
                           "with --host (127.0.0.1 for this machine only, 0.0.0.0 for every network)") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]" if ":" in host else host
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(f"Port {port} on {shown} is already in use (another gitexp ui or server, or "
                               f"another program, is listening there). Choose another port with {option}, "
                               "or stop that program") from exc
        if exc.errno == errno.EACCES:
            raise CannotListen(f"Not allowed to listen on port {port} of {shown} (ports below 1024 need "
                               f"root): choose another port with {option}") from exc
        raise CannotListen(f"Cannot listen on {shown}:{port}: {exc.strerror}") from exc
    sock.setblocking(False)
    return sock


def url_of(host: str, port: int) -> str:
    """The URL to open for a server bound to host:port (a wildcard bind is reached at 127.0.0.1)."""
    if host in WILDCARD_BINDS:
        host = "127.0.0.1" if host != "::" else "::1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def serve(repo: str | os.PathLike[str] | None = None, host: str = "127.0.0.1", port: int = 5000, *,
          api: bool = True, ui: bool | None = None, push_to: str | None = None, push_interval: float = 60.0,
          log_level: str = "info", allowed_hosts: Iterable[str] | None = None,
          sock: socket.socket | None = None, auth: bool = False, auth_file: str | None = None,
          default_permission: str = "READ", ssl_keyfile: str | None = None,
          ssl_certfile: str | None = None) -> None:
    """Serve the repository over HTTP until interrupted (one process; loopback by default).

    allowed_hosts: extra Host names to answer besides localhost, the bind address and
    loopback/private IP addresses ("*" for any).
    sock: a socket from :func:`bind` (else one is bound here; a busy port raises CannotListen, naming it).
    auth, auth_file, default_permission: as :func:`create_app`'s.
    ssl_keyfile, ssl_certfile: serve HTTPS with this key and certificate (PEM files).
    """
    import uvicorn

    app = create_app(repo, api=api, ui=ui, push_to=push_to, push_interval=push_interval,
                     allowed_hosts=default_allowed_hosts(host, allowed_hosts or ()), auth=auth,
                     auth_file=auth_file, default_permission=default_permission,
                     secure_cookies=bool(ssl_certfile), anonymous=not auth and not _is_loopback(host))
    if sock is None:
        sock = bind(host, port)
    config = uvicorn.Config(app, host=host, port=sock.getsockname()[1], log_level=log_level, workers=1,
                            ssl_keyfile=ssl_keyfile, ssl_certfile=ssl_certfile)
    uvicorn.Server(config).run(sockets=[sock])
