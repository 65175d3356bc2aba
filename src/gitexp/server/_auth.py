"""Authentication and authorization of the one web app: ONE ASGI middleware (``Guard``).

Every request but /health, /login and the UI's static files is authenticated:

* ``Authorization: Basic`` (what MLflow clients send for MLFLOW_TRACKING_USERNAME/PASSWORD),
* ``Authorization: Bearer <token>`` (MLFLOW_TRACKING_TOKEN; tokens from ``gitexp users token``),
* the UI's session cookie (``gitexp_session``: HMAC-signed, HttpOnly, SameSite=Lax) set by the
  login page; a POST made with it must carry the page's CSRF token (``csrf_token`` form field)
  and come from this server's origin.

No or wrong credentials answer 401 with ``WWW-Authenticate`` (the UI's pages redirect to
/login); failed logins are logged (address and user name, never a secret) and, past
``FailedLogins.limit`` in a minute from one address, refused with 429.

Then each request is authorized by ``ROUTES``: (resource kind, how to find its id in the
request, the permission needed) -- READ for reads, EDIT for writes, MANAGE for deletes and
permission changes -- against the user's permission on that experiment or registered model
(auth.AuthStore). The request runs with the user as the author of its commits
(``Client``'s ``acting_as``). Creating an experiment or a model gives its creator MANAGE.
Searches: experiments/search, registered-models/search and model-versions/search answer
only what the user may read; runs/search and logged-models/search refuse (403) when an
experiment asked for is not readable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..client import Client, acting_as
from ..exceptions import GitexpError, InvalidParameterValue, ResourceDoesNotExist
from . import auth as a
from ._responses import JSON, error
from ._viewer import EXPERIMENT as EXP
from ._viewer import MODEL, viewing

_log = logging.getLogger("gitexp.server.auth")

COOKIE = "gitexp_session"
SESSION_SECONDS = 12 * 3600
OPEN_PATHS = ("/health", "/login", "/favicon.ico")
OPEN_PREFIXES = ("/ui-static/",)
API_ROOTS = ("/api/", "/ajax-api/")

Need = tuple[str, str, str]  # (resource kind, resource id, permission)


@dataclass
class AuthConfig:
    """What the app authenticates with (one per app)."""

    store: a.AuthStore
    default_permission: str = "READ"
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    failures: a.FailedLogins = field(default_factory=a.FailedLogins)

    # -- the session cookie -------------------------------------------------------------------
    def _sign(self, payload: bytes) -> str:
        return hmac.new(self.secret, payload, hashlib.sha256).hexdigest()

    def make_session(self, user: str) -> str:
        payload = json.dumps({"u": user, "exp": int(time.time()) + SESSION_SECONDS,
                              "sid": secrets.token_hex(8)}).encode()
        # No "=" padding: a cookie value of [A-Za-z0-9_-.] only is never quoted.
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._sign(payload)

    def read_session(self, cookie: str) -> tuple[str, str] | None:
        """(user, session id) of a valid cookie."""
        try:
            body, sig = cookie.rsplit(".", 1)
            payload = base64.urlsafe_b64decode(body.encode() + b"=" * (-len(body) % 4))
        except (ValueError, binascii.Error):
            return None
        if not hmac.compare_digest(self._sign(payload), sig):
            return None
        data = json.loads(payload)
        if int(data.get("exp", 0)) < time.time():
            return None
        return str(data["u"]), str(data["sid"])

    def csrf_token(self, sid: str) -> str:
        return self._sign(b"csrf:" + sid.encode())


# -- which permission each route needs --------------------------------------------------------
class Req:
    """What the guard knows of a request: method, path (without the API prefix), query, body."""

    def __init__(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> None:
        self.method, self.path, self.query, self.body = method, path, query, body

    def get(self, *names: str) -> str | None:
        for name in names:
            if isinstance(self.body, dict) and self.body.get(name) not in (None, ""):
                return str(self.body[name])
            if self.query.get(name):
                return self.query[name][0]
        return None

    def get_list(self, name: str) -> list[str]:
        if isinstance(self.body, dict) and isinstance(self.body.get(name), list):
            return [str(v) for v in self.body[name]]
        return list(self.query.get(name, []))


R, E, M = "READ", "EDIT", "MANAGE"
# (method, path) -> (kind, where the id is, permission). "exp" takes experiment_id,
# "run" a run's experiment, "exp_name" an experiment's name, "model" the registered model name,
# "lm" a logged model's experiment (path parameter model_id), "exps" every listed experiment.
ROUTES: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "experiments/get"): ("exp", R),
    ("GET", "experiments/get-by-name"): ("exp_name", R),
    ("POST", "experiments/update"): ("exp", E),
    ("POST", "experiments/set-experiment-tag"): ("exp", E),
    ("POST", "experiments/delete-experiment-tag"): ("exp", E),
    ("POST", "experiments/delete"): ("exp", M),
    ("POST", "experiments/restore"): ("exp", M),
    ("POST", "runs/create"): ("exp", E),
    ("GET", "runs/get"): ("run", R),
    ("POST", "runs/update"): ("run", E),
    ("POST", "runs/delete"): ("run", M),
    ("POST", "runs/restore"): ("run", M),
    ("POST", "runs/log-metric"): ("run", E),
    ("POST", "runs/log-parameter"): ("run", E),
    ("POST", "runs/set-tag"): ("run", E),
    ("POST", "runs/delete-tag"): ("run", E),
    ("POST", "runs/log-batch"): ("run", E),
    ("POST", "runs/log-model"): ("run", E),
    ("POST", "runs/log-inputs"): ("run", E),
    ("POST", "runs/outputs"): ("run", E),
    ("POST", "runs/search"): ("exps", R),
    ("GET", "metrics/get-history"): ("run", R),
    ("GET", "metrics/get-history-bulk-interval"): ("runs", R),
    ("GET", "artifacts/list"): ("run", R),
    ("POST", "logged-models"): ("exp", E),
    ("POST", "logged-models/search"): ("exps", R),
    ("GET", "logged-models/*"): ("lm", R),
    ("PATCH", "logged-models/*"): ("lm", E),
    ("DELETE", "logged-models/*"): ("lm", M),
    ("PATCH", "logged-models/*/tags"): ("lm", E),
    ("DELETE", "logged-models/*/tags/*"): ("lm", E),
    ("POST", "logged-models/*/params"): ("lm", E),
    ("GET", "logged-models/*/artifacts/directories"): ("lm", R),
    ("POST", "registered-models/rename"): ("model", E),
    ("PATCH", "registered-models/update"): ("model", E),
    ("DELETE", "registered-models/delete"): ("model", M),
    ("GET", "registered-models/get"): ("model", R),
    ("POST", "registered-models/get-latest-versions"): ("model", R),
    ("GET", "registered-models/get-latest-versions"): ("model", R),
    ("POST", "registered-models/set-tag"): ("model", E),
    ("DELETE", "registered-models/delete-tag"): ("model", E),
    ("POST", "registered-models/alias"): ("model", E),
    ("DELETE", "registered-models/alias"): ("model", E),
    ("GET", "registered-models/alias"): ("model", R),
    ("POST", "model-versions/create"): ("model_from_run", E),
    ("PATCH", "model-versions/update"): ("model", E),
    ("POST", "model-versions/transition-stage"): ("model", E),
    ("DELETE", "model-versions/delete"): ("model", M),
    ("GET", "model-versions/get"): ("model", R),
    ("GET", "model-versions/get-download-uri"): ("model", R),
    ("POST", "model-versions/set-tag"): ("model", E),
    ("DELETE", "model-versions/delete-tag"): ("model", E),
    # gitexp's additions
    ("POST", "gitexp/runs/record-code"): ("run", E),
    ("GET", "gitexp/runs/code-diff"): ("run", R),
    ("GET", "gitexp/registered-models/history"): ("model", R),
    # the UI's pages and actions (path parameters: experiment_id, run_id, name)
    ("GET", "ui/experiments/*"): ("p_exp", R),
    ("GET", "ui/runs/*"): ("p_run", R),
    ("GET", "ui/runs/*/artifacts"): ("p_run", R),
    ("GET", "ui/runs/*/artifact"): ("p_run", R),
    ("GET", "ui/ui-api/runs/*/metric"): ("p_run", R),
    ("GET", "ui/models/*"): ("p_model", R),
    ("GET", "ui/models/*/versions/*"): ("p_model", R),
    ("POST", "ui/actions/experiments/*/rename"): ("p_exp", E),
    ("POST", "ui/actions/experiments/*/note"): ("p_exp", E),
    ("POST", "ui/actions/experiments/*/tags"): ("p_exp", E),
    ("POST", "ui/actions/experiments/*/tags/delete"): ("p_exp", E),
    ("POST", "ui/actions/experiments/*/delete"): ("p_exp", M),
    ("POST", "ui/actions/experiments/*/restore"): ("p_exp", M),
    ("POST", "ui/actions/runs/delete"): ("f_runs", M),
    ("POST", "ui/actions/runs/restore"): ("f_runs", M),
    ("POST", "ui/actions/runs/*/rename"): ("p_run", E),
    ("POST", "ui/actions/runs/*/note"): ("p_run", E),
    ("POST", "ui/actions/runs/*/tags"): ("p_run", E),
    ("POST", "ui/actions/runs/*/tags/delete"): ("p_run", E),
    ("POST", "ui/actions/register"): ("f_model", E),
    ("POST", "ui/actions/models/*/description"): ("p_model", E),
    ("POST", "ui/actions/models/*/tags"): ("p_model", E),
    ("POST", "ui/actions/models/*/tags/delete"): ("p_model", E),
    ("POST", "ui/actions/models/*/aliases"): ("p_model", E),
    ("POST", "ui/actions/models/*/aliases/delete"): ("p_model", E),
    ("POST", "ui/actions/models/*/versions/*/stage"): ("p_model", E),
    ("POST", "ui/actions/models/*/versions/*/description"): ("p_model", E),
    ("POST", "ui/actions/models/*/versions/*/tags"): ("p_model", E),
    ("POST", "ui/actions/models/*/versions/*/tags/delete"): ("p_model", E),
}
# Routes any authenticated user may call whatever the method (the rest: GET for anyone, other
# methods for admins only). Creating gives the creator MANAGE; searches are filtered.
ANY_USER = {("POST", "experiments/create"), ("POST", "registered-models/create"), ("POST", "experiments/search"),
            ("POST", "gitexp/flush"), ("POST", "ui/actions/experiments"), ("POST", "logout")}
SEARCHES = ("experiments/search", "registered-models/search", "model-versions/search")
CREATES = ("experiments/create", "registered-models/create", "ui/actions/experiments")
AUTH_API = "auth/"  # the MLflow auth API's routes check their own rules (see auth_router)


def _match(method: str, path: str) -> tuple[tuple[str, str] | None, list[str]]:
    parts = path.split("/")
    for (m, pattern), rule in ROUTES.items():
        if m != method:
            continue
        pat = pattern.split("/")
        if len(pat) != len(parts):
            continue
        params = []
        for p, x in zip(pat, parts, strict=True):
            if p == "*":
                params.append(x)
            elif p != x:
                break
        else:
            return rule, params
    return None, []


def _split_api(path: str) -> str | None:
    """The route's path after its API prefix ("runs/get", "gitexp/flush", "artifacts:..."),
    "ui/..." for the UI's, None for the open ones."""
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return None
    for prefix in ("/api/2.0/mlflow-artifacts/", "/ajax-api/2.0/mlflow-artifacts/"):
        if path.startswith(prefix):
            return "artifacts:" + path[len(prefix):]
    for prefix in ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/"):
        if path.startswith(prefix):
            rest = path[len(prefix):]
            if rest.startswith(("users/", "experiments/permissions/", "registered-models/permissions/")):
                return AUTH_API + rest
            return rest
    for prefix in ("/api/3.0/mlflow/users/", "/ajax-api/3.0/mlflow/users/"):
        if path.startswith(prefix):
            return AUTH_API + "users/" + path[len(prefix):]
    if path.startswith("/api/2.0/gitexp/"):
        return "gitexp/" + path[len("/api/2.0/gitexp/"):]
    if path.startswith(API_ROOTS):
        return path.lstrip("/")
    return "ui" + path if path != "/logout" else "logout"


class Guard:
    """ASGI middleware: authenticate, authorize, run the request as its user."""

    def __init__(self, app: Any, config: AuthConfig, client: Client) -> None:
        self.app, self.config, self.client = app, config, client

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _headers(scope: dict[str, Any]) -> dict[str, str]:
        return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

    @staticmethod
    def _address(scope: dict[str, Any]) -> str:
        client = scope.get("client")
        return str(client[0]) if client else "?"

    def _authenticate(self, scope: dict[str, Any], headers: dict[str, str]
                      ) -> tuple[a.User | None, str | None, str | None]:
        """(user, session id if by cookie, failure: the user name tried or "" for a bad token)."""
        store = self.config.store
        auth = headers.get("authorization", "")
        kind, _, value = auth.partition(" ")
        if kind.lower() == "basic" and value:
            try:
                name, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
            except (ValueError, binascii.Error, UnicodeDecodeError):
                return None, None, "(malformed)"
            user = store.check_password(name, password)
            return (user, None, None) if user else (None, None, name)
        if kind.lower() == "bearer" and value:
            user = store.check_token(value.strip())
            return (user, None, None) if user else (None, None, "(token)")
        for part in headers.get("cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == COOKIE and v:
                found = self.config.read_session(v)
                if found is not None:
                    try:
                        return store.get_user(found[0]), found[1], None
                    except ResourceDoesNotExist:
                        return None, None, None
        return None, None, None

    def _experiment_of_run(self, run_id: str | None) -> str | None:
        if not run_id:
            return None
        try:
            return str(self.client.get_run(run_id).info.experiment_id)
        except GitexpError:
            return None

    def _needs(self, req: Req, rule: tuple[str, str] | None, params: list[str]) -> list[Need]:
        """The (kind, id, permission) a request needs; ids not found are left to the handler."""
        if rule is None:
            return []
        where, perm = rule
        out: list[Need] = []

        def exp(eid: str | None) -> None:
            if eid:
                out.append((EXP, eid, perm))

        if where == "exp":
            exp(req.get("experiment_id"))
        elif where == "exp_name":
            name = req.get("experiment_name")
            found = self.client.get_experiment_by_name(name) if name else None
            exp(found.experiment_id if found else None)
        elif where == "run":
            exp(self._experiment_of_run(req.get("run_id", "run_uuid")))
        elif where == "runs":
            for run_id in req.get_list("run_ids"):
                exp(self._experiment_of_run(run_id))
        elif where == "exps":
            for eid in req.get_list("experiment_ids"):
                exp(eid)
        elif where == "lm":
            try:
                exp(self.client.get_logged_model(params[0]).experiment_id)
            except GitexpError:
                pass
        elif where in ("model", "model_from_run"):
            name = req.get("name")
            if name:
                out.append((MODEL, name, perm))
            if where == "model_from_run":  # registering a run's model reads the run
                source = str(req.get("source") or "")
                source_run = req.get("run_id") or (source[len("runs:/"):].split("/")[0]
                                                   if source.startswith("runs:/") else None)
                source_exp = self._experiment_of_run(source_run)
                if source_exp:
                    out.append((EXP, source_exp, R))
        elif where == "p_exp":
            exp(params[0])
        elif where == "p_run":
            exp(self._experiment_of_run(params[0]))
        elif where == "p_model":
            out.append((MODEL, params[0], perm))
        elif where == "f_runs":
            for run_id in req.get_list("run_ids"):
                exp(self._experiment_of_run(run_id))
        elif where == "f_model":
            name = req.get("name")
            if name:
                try:
                    self.client.get_registered_model(name)
                    out.append((MODEL, name, perm))
                except GitexpError:
                    pass  # a new model: its creator
            exp(self._experiment_of_run(req.get("run_id")))
            out[-1:] = [(k, i, R if k == EXP else p) for k, i, p in out[-1:]]
        return out

    def _artifact_needs(self, method: str, rest: str) -> list[Need]:
        """The proxy's paths: <experiment>/<run>/artifacts/... are the run's; others the shared area."""
        parts = rest.split("/")
        if rest.startswith("artifacts/") and len(parts) >= 4:
            eid = self._experiment_of_run(parts[2])
            if eid is not None:
                return [(EXP, eid, R if method == "GET" else E)]
        return []

    def _allowed(self, user: a.User, needs: list[Need]) -> Need | None:
        """The first need the user lacks, or None."""
        for kind, rid, perm in needs:
            have = self.config.store.permission(user, kind, rid, self.config.default_permission)
            if a.rank(have) < a.rank(perm):
                return kind, rid, perm
        return None

    def _readable(self, user: a.User, kind: str, rid: str) -> bool:
        return a.rank(self.config.store.permission(user, kind, rid, self.config.default_permission)) >= 1

    def _reader(self, user: a.User) -> Callable[[str, str], bool] | None:
        """What the user's pages may list (None for an admin: everything)."""
        if user.admin:
            return None
        return lambda kind, rid: self._readable(user, kind, rid)

    # -- the middleware -------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        route = _split_api(path)
        if route is None:
            await self.app(scope, receive, send)
            return
        headers = self._headers(scope)
        address = self._address(scope)
        wait = self.config.failures.blocked_for(address)
        if wait:
            response: Response = error("REQUEST_LIMIT_EXCEEDED", f"Too many failed logins from this address; "
                                       f"try again in {int(wait) + 1} s", 429)
            response.headers["Retry-After"] = str(int(wait) + 1)
            await response(scope, receive, send)
            return
        user, sid, failed = await run_in_threadpool(self._authenticate, scope, headers)
        if user is None:
            if failed is not None:
                n = self.config.failures.failed(address)
                _log.warning("gitexp server: failed login from %s as %r (%d in the last minute)",
                             address, failed, n)
            await self._unauthenticated(route, method, scope, receive, send, failed is not None)
            return
        body_bytes = b""
        if method not in ("GET", "HEAD") and not route.startswith("artifacts:"):
            body_bytes = await _read_body(receive)
        body: Any = None
        content_type = headers.get("content-type", "")
        if body_bytes and "json" in content_type:
            try:
                body = json.loads(body_bytes)
            except ValueError:
                body = None
        elif body_bytes and "x-www-form-urlencoded" in content_type:
            body = {k: (v if len(v) > 1 else v[0]) for k, v in parse_qs(body_bytes.decode("latin-1")).items()}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        req = Req(method, route, query, body)
        # CSRF: a change made with the session cookie carries the page's token and comes from here.
        if sid is not None and method not in ("GET", "HEAD"):
            token = body.get("csrf_token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not hmac.compare_digest(token, self.config.csrf_token(sid)) \
                    or not _same_origin(headers, scope):
                await error("PERMISSION_DENIED", "Refused a change without this page's CSRF token or from "
                            "another origin: make it from the UI's own pages", 403)(scope, receive, send)
                return
        scope["gitexp_user"] = user.name
        if sid is not None:
            scope["gitexp_csrf"] = self.config.csrf_token(sid)
        # Authorization.
        if route.startswith(AUTH_API) or route == "logout":
            needs: list[Need] = []
        elif route.startswith("artifacts:"):
            needs = await run_in_threadpool(self._artifact_needs, method, route[len("artifacts:"):])
        else:
            rule, params = _match(method, route)
            if rule is None and method not in ("GET", "HEAD") and (method, route) not in ANY_USER \
                    and not user.admin:
                await self._forbidden(scope, receive, send, f"{method} {path} is for admins")
                return
            needs = await run_in_threadpool(self._needs, req, rule, params)
        lacking = self._allowed(user, needs)
        if lacking is not None:
            kind, rid, perm = lacking
            await self._forbidden(scope, receive, send, f"User {user.name!r} lacks {perm} permission on "
                                  f"{kind.replace('_', ' ')} {rid!r}")
            return
        replay = _replay(body_bytes, receive) if body_bytes or method not in ("GET", "HEAD") else receive
        if (route in SEARCHES and not user.admin) or route in CREATES:
            await self._rewritten(route, req, user, scope, replay, send)
            return
        with acting_as(user.author), viewing(self._reader(user)):
            await self.app(scope, replay, send)

    async def _unauthenticated(self, route: str, method: str, scope: dict[str, Any], receive: Any, send: Any,
                               failed: bool) -> None:
        if route.startswith("ui") and method in ("GET", "HEAD"):
            target = scope["path"] + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string")
                                      else "")
            await RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)(scope, receive, send)
            return
        message = "Invalid credentials" if failed else "Authentication required: give a user name and " \
            "password (MLFLOW_TRACKING_USERNAME/PASSWORD) or a token (MLFLOW_TRACKING_TOKEN)"
        response = error("UNAUTHENTICATED", message, 401)
        response.headers["WWW-Authenticate"] = 'Basic realm="gitexp", charset="UTF-8"'
        await response(scope, receive, send)

    @staticmethod
    async def _forbidden(scope: dict[str, Any], receive: Any, send: Any, message: str) -> None:
        await error("PERMISSION_DENIED", message, 403)(scope, receive, send)

    async def _rewritten(self, route: str, req: Req, user: a.User, scope: dict[str, Any], receive: Any,
                         send: Any) -> None:
        """Run the request, then filter a search's answer by what the user may read, or give the
        creator of an experiment or a model MANAGE on it."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        with acting_as(user.author), viewing(self._reader(user)):
            await self.app(scope, receive, capture)
        body = b"".join(chunks)
        status = start.get("status", 500)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if status == 200 and route.endswith("search"):
            data = json.loads(body)
            key, kind, field_ = {"experiments/search": ("experiments", EXP, "experiment_id"),
                                 "registered-models/search": ("registered_models", MODEL, "name"),
                                 "model-versions/search": ("model_versions", MODEL, "name")}[route]
            data[key] = [x for x in data.get(key, []) if self._readable(user, kind, str(x.get(field_)))]
            body = json.dumps(data).encode()
        elif route == "experiments/create" and status == 200:
            await run_in_threadpool(self.config.store.grant, EXP, str(json.loads(body)["experiment_id"]),
                                    user.name, M)
        elif route == "registered-models/create" and status == 200 and req.get("name"):
            await run_in_threadpool(self.config.store.grant, MODEL, str(req.get("name")), user.name, M)
        elif route == "ui/actions/experiments" and status == 303:
            location = next((v.decode("latin-1") for k, v in headers if k.lower() == b"location"), "")
            found = re.search(r"/experiments/(\d+)", location)
            if found:
                await run_in_threadpool(self.config.store.grant, EXP, found.group(1), user.name, M)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _same_origin(headers: dict[str, str], scope: dict[str, Any]) -> bool:
    host = headers.get("host", "")
    origin = headers.get("origin") or headers.get("referer")
    if not origin or origin == "null":
        return False
    return urlsplit(origin).netloc == host


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Callable[[], Awaitable[dict[str, Any]]]:
    sent = False

    async def again() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await receive())
    return again


# -- the login page and MLflow's auth API --------------------------------------------------------
_LOGIN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in · gitexp</title>
<link rel="stylesheet" href="/ui-static/ui.css"></head><body><main class="login">
<h1>gitexp</h1>{message}<form method="post" action="/login" id="login-form" class="stack">
<input type="hidden" name="next" value="{next}">
<label>User <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button></form></main></body></html>"""


def _safe_next(value: str | None) -> str:
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _body_or_query(request: Request, body: dict[str, Any], name: str) -> str:
    value = body.get(name, request.query_params.get(name))
    if value in (None, ""):
        raise InvalidParameterValue(f"Missing value for required parameter '{name}'.")
    return str(value)


def auth_router(config: AuthConfig, client: Client, secure_cookie: bool) -> APIRouter:
    """/login, /logout and the MLflow auth API's endpoints that its AuthServiceClient calls."""
    api = APIRouter(include_in_schema=False)
    store = config.store

    def page(message: str = "", next_: str = "/", status: int = 200) -> HTMLResponse:
        shown = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
        return HTMLResponse(_LOGIN.format(message=shown, next=html.escape(next_)), status_code=status,
                            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})

    @api.get("/login")
    def login_page(request: Request) -> HTMLResponse:
        return page(next_=_safe_next(request.query_params.get("next")))

    @api.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        next_ = _safe_next(str(form.get("next", "/")))
        address = request.client.host if request.client else "?"
        wait = config.failures.blocked_for(address)
        if wait:
            return page("Too many failed logins; try again in a minute.", next_, 429)
        user = await run_in_threadpool(store.check_password, name, password)
        if user is None:
            n = config.failures.failed(address)
            _log.warning("gitexp server: failed UI login from %s as %r (%d in the last minute)", address, name, n)
            return page("Wrong user name or password.", next_, 401)
        response = RedirectResponse(next_, status_code=303)
        response.set_cookie(COOKIE, config.make_session(user.name), max_age=SESSION_SECONDS, httponly=True,
                            samesite="lax", secure=secure_cookie, path="/")
        return response

    @api.post("/logout")
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    def me(request: Request) -> a.User:
        return store.get_user(request.scope["gitexp_user"])

    def admin(request: Request) -> a.User:
        user = me(request)
        if not user.admin:
            raise a.PermissionDenied("Only an admin can do this")
        return user

    def user_json(u: a.User) -> dict[str, Any]:
        return {"id": abs(hash(u.name)) % 10 ** 9, "username": u.name, "is_admin": u.admin,
                "experiment_permissions": [{"experiment_id": k, "user_id": u.name, "permission": p}
                                           for k, p in store.grants(u.name)[EXP].items()],
                "registered_model_permissions": [{"name": k, "user_id": u.name, "permission": p}
                                                 for k, p in store.grants(u.name)[MODEL].items()]}

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            raise InvalidParameterValue("The request body is not valid JSON") from None
        return data if isinstance(data, dict) else {}

    def may_manage(request: Request, kind: str, rid: str) -> None:
        user = me(request)
        if a.rank(store.permission(user, kind, rid, config.default_permission)) < a.rank(M):
            raise a.PermissionDenied(f"User {user.name!r} lacks MANAGE permission on {kind.replace('_', ' ')} "
                                     f"{rid!r}")

    for prefix in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
        @api.post(f"{prefix}/users/create")
        async def create_user(request: Request) -> JSON:
            admin(request)
            b = await body_of(request)
            user = await run_in_threadpool(store.add_user, _body_or_query(request, b, "username"),
                                           _body_or_query(request, b, "password"))
            return JSON({"user": user_json(user)})

        @api.get(f"{prefix}/users/get")
        def get_user(request: Request, username: str) -> JSON:
            if me(request).name != username:
                admin(request)
            return JSON({"user": user_json(store.get_user(username))})

        @api.patch(f"{prefix}/users/update-password")
        async def update_password(request: Request) -> JSON:
            b = await body_of(request)
            name = _body_or_query(request, b, "username")
            if me(request).name != name:
                admin(request)
            await run_in_threadpool(store.set_password, name, _body_or_query(request, b, "password"))
            return JSON({})

        @api.patch(f"{prefix}/users/update-admin")
        async def update_admin(request: Request) -> JSON:
            admin(request)
            b = await body_of(request)
            value = b.get("is_admin")
            store.set_admin(_body_or_query(request, b, "username"), value in (True, "true", "True", 1))
            return JSON({})

        @api.delete(f"{prefix}/users/delete")
        async def delete_user(request: Request) -> JSON:
            admin(request)
            b = await body_of(request)
            store.remove_user(_body_or_query(request, b, "username"))
            return JSON({})

        for kind, noun, key in ((EXP, "experiments", "experiment_id"), (MODEL, "registered-models", "name")):
            answer = "experiment_permission" if kind == EXP else "registered_model_permission"

            def perm_routes(kind: str = kind, noun: str = noun, key: str = key, answer: str = answer,
                            prefix: str = prefix) -> None:
                @api.post(f"{prefix}/{noun}/permissions/create")
                async def create(request: Request) -> JSON:
                    b = await body_of(request)
                    rid, name = _body_or_query(request, b, key), _body_or_query(request, b, "username")
                    may_manage(request, kind, rid)
                    perm = _body_or_query(request, b, "permission")
                    store.grant(kind, rid, name, perm)
                    return JSON({answer: {key: rid, "user_id": name, "permission": a.check_permission_name(perm)}})

                @api.get(f"{prefix}/{noun}/permissions/get")
                def get(request: Request) -> JSON:
                    rid = _body_or_query(request, {}, key)
                    name = _body_or_query(request, {}, "username")
                    may_manage(request, kind, rid)
                    perm = store.explicit(kind, rid, name)
                    if perm is None:
                        raise ResourceDoesNotExist(f"No permission for user {name!r} on {rid!r}")
                    return JSON({answer: {key: rid, "user_id": name, "permission": perm}})

                @api.patch(f"{prefix}/{noun}/permissions/update")
                async def update(request: Request) -> JSON:
                    b = await body_of(request)
                    rid, name = _body_or_query(request, b, key), _body_or_query(request, b, "username")
                    may_manage(request, kind, rid)
                    store.grant(kind, rid, name, _body_or_query(request, b, "permission"))
                    return JSON({})

                @api.delete(f"{prefix}/{noun}/permissions/delete")
                async def delete(request: Request) -> JSON:
                    b = await body_of(request)
                    rid, name = _body_or_query(request, b, key), _body_or_query(request, b, "username")
                    may_manage(request, kind, rid)
                    store.revoke(kind, rid, name)
                    return JSON({})
            perm_routes()

    kinds = {"experiment": EXP, "registered_model": MODEL}

    def kind_of(value: str) -> str:
        if value not in kinds:
            raise InvalidParameterValue(f"resource_type must be one of {', '.join(kinds)}, got {value!r}")
        return kinds[value]

    for prefix in ("/api/3.0/mlflow", "/ajax-api/3.0/mlflow"):
        @api.post(f"{prefix}/users/permissions/grant")
        async def grant(request: Request) -> JSON:
            b = await body_of(request)
            kind = kind_of(_body_or_query(request, b, "resource_type"))
            rid = _body_or_query(request, b, "resource_id")
            may_manage(request, kind, rid)
            store.grant(kind, rid, _body_or_query(request, b, "username"), _body_or_query(request, b, "permission"))
            return JSON({})

        @api.post(f"{prefix}/users/permissions/revoke")
        async def revoke(request: Request) -> JSON:
            b = await body_of(request)
            kind = kind_of(_body_or_query(request, b, "resource_type"))
            rid = _body_or_query(request, b, "resource_id")
            may_manage(request, kind, rid)
            store.revoke(kind, rid, _body_or_query(request, b, "username"))
            return JSON({})

        @api.get(f"{prefix}/users/permissions/get")
        def get_permission(request: Request) -> JSON:
            kind = kind_of(_body_or_query(request, {}, "resource_type"))
            rid = _body_or_query(request, {}, "resource_id")
            name = _body_or_query(request, {}, "username")
            if me(request).name != name:
                may_manage(request, kind, rid)
            perm = store.permission(store.get_user(name), kind, rid, config.default_permission)
            return JSON({"allowed": a.rank(perm) >= a.rank(E), "permission": perm})

        @api.get(f"{prefix}/users/current")
        def current(request: Request) -> JSON:
            return JSON({"user": user_json(me(request))})
    del client
    return api
