"""What every page and action shares: templates, URLs, formatting, and the security rules.

Security, in one place:
* Jinja2 autoescape is on for every template; data for scripts is embedded with
  ``|tojson`` inside ``<script type="application/json">`` blocks (never executed,
  and ``tojson`` escapes ``<``, ``>``, ``&`` and quotes).
* Every HTML response carries a Content-Security-Policy that allows scripts only
  from this server (no inline scripts, no other origins), ``frame-ancestors
  'none'`` and ``nosniff``.
* Every state-changing request is a POST whose ``Origin`` (or, without one,
  ``Referer``) must be this server's own origin: a page on another site cannot
  make the browser act here (CSRF).  Combined with the Host check of
  the web app (:func:`gitexp.server.app.create_app`) this also defeats DNS rebinding.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jinja2
import markupsafe
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from ..exceptions import GitexpError
from ..server._responses import JSON, status_for

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")

# 'unsafe-eval': plotly's WebGL traces (parallel coordinates) compile shaders with new Function.
PAGE_CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; frame-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class Forbidden(GitexpError):
    error_code = "PERMISSION_DENIED"


def _status_for(exc: GitexpError) -> int:
    """The web app's one map from error codes to HTTP statuses (the API's, MLflow's)."""
    return status_for(exc.error_code)


# -- formatting (template filters) ---------------------------------------------------------------
def fmt_time(ms: Any) -> str:
    if ms in (None, ""):
        return ""
    try:
        return dt.datetime.fromtimestamp(int(ms) / 1000).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return str(ms)


def fmt_duration(start: Any, end: Any) -> str:
    if not start or not end:
        return ""
    seconds = (int(end) - int(start)) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def fmt_number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.6g}"
    return str(value)


def fmt_size(size: Any) -> str:
    if size is None:
        return ""
    size = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def short(value: Any, n: int = 8) -> str:
    return str(value or "")[:n]


def csrf_field(request: Request) -> markupsafe.Markup:
    """The hidden CSRF token of a POST form, when the server authenticates (it sets the request's
    token; see gitexp.server._auth), else nothing."""
    token = request.scope.get("gitexp_csrf")
    if not token:
        return markupsafe.Markup("")
    return markupsafe.Markup('<input type="hidden" name="csrf_token" value="{}">').format(token)


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(time=fmt_time, number=fmt_number, size=fmt_size, short=short)
    env.globals.update(duration=fmt_duration, csrf_field=csrf_field)
    return env


# -- URLs ----------------------------------------------------------------------------------------
ROUTE_PREFIX = "gitexp-ui:"


def route_name(name: str) -> str:
    """The registered name of a UI route: prefixed, so an app mounting the router (the REST
    server) can have routes of its own called `run` or `models` without taking over our links."""
    return ROUTE_PREFIX + name


class Urls:
    """Paths of this UI's routes for one request (right wherever the router is mounted)."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def __call__(self, route: str, /, query: dict[str, Any] | list[Any] | None = None, **params: Any) -> str:
        path = self.request.url_for(route_name(route), **{k: quote(str(v), safe="") for k, v in params.items()}).path
        if query:
            items = query.items() if isinstance(query, dict) else query
            pairs = [(k, v) for k, v in items if v not in (None, "", [])]
            flat: list[tuple[str, str]] = []
            for k, v in pairs:
                if isinstance(v, (list, tuple)):
                    flat.extend((k, str(x)) for x in v)
                else:
                    flat.append((k, str(v)))
            if flat:
                path += "?" + urlencode(flat)
        return path

    def with_query(self, **changes: Any) -> str:
        """The current page's URL with some query parameters replaced (None removes one)."""
        items = [(k, v) for k, v in self.request.query_params.multi_items() if k not in changes]
        for k, v in changes.items():
            if v is None:
                continue
            if isinstance(v, (list, tuple)):
                items.extend((k, str(x)) for x in v)
            else:
                items.append((k, str(v)))
        path = self.request.url.path
        return path + ("?" + urlencode(items) if items else "")


# -- rendering -----------------------------------------------------------------------------------
class Renderer:
    def __init__(self, repo_label: str, branch: str) -> None:
        self.env = make_env()
        self.repo_label = repo_label
        self.branch = branch

    def page(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("flash", None)
        html = self.env.get_template(template).render(
            url=Urls(request), request=request, repo_label=self.repo_label, branch=self.branch,
            static=lambda name: Urls(request)("ui_static", path=name), **context)
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    def error(self, request: Request, exc: GitexpError, status: int | None = None) -> HTMLResponse:
        return self.page(request, "error.html", status_code=status or _status_for(exc),
                         title="Error", message=exc.message, error_code=exc.error_code)


Handler = Callable[..., Response]  # a page: (request, path and query parameters...) -> its response


def guarded(renderer_of: Callable[[], Renderer]) -> Callable[[Handler], Handler]:
    """Turn gitexp errors raised by a page handler into an error page with the right status."""
    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def inner(request: Request, *args: Any, **kwargs: Any) -> Response:
            try:
                return handler(request, *args, **kwargs)
            except GitexpError as exc:
                return renderer_of().error(request, exc)
        return inner
    return wrap


# -- CSRF: same-origin POSTs only ----------------------------------------------------------------
def _origin_of(url: str) -> tuple[str, str] | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return parts.scheme.lower(), parts.netloc.lower()


def check_same_origin(request: Request) -> None:
    """Refuse a state-changing request that does not come from a page of this server."""
    host = (request.headers.get("host") or "").lower()
    expected = (request.url.scheme.lower(), host)
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise Forbidden(f"Refused a cross-site request (Sec-Fetch-Site: {fetch_site}): "
                        "changes can only be made from this server's own pages")
    origin = request.headers.get("origin")
    if origin is not None:
        if origin == "null" or _origin_of(origin) != expected:
            raise Forbidden(f"Refused a request from origin {origin!r}: changes can only be made from "
                            f"this server's own pages ({expected[0]}://{expected[1]})")
        return
    referer = request.headers.get("referer")
    if referer is None:
        raise Forbidden("Refused a change without an Origin or Referer header: send it from the UI's "
                        "own pages (or pass an Origin header naming this server)")
    if _origin_of(referer) != expected:
        raise Forbidden(f"Refused a request referred by {referer!r}: changes can only be made from "
                        f"this server's own pages")


def raw_headers(content_type: str, inline: bool, filename: str, sandbox: str = "sandbox") -> dict[str, str]:
    """Headers for an artifact's bytes: never runs in this origin (CSP sandbox), never sniffed."""
    disposition = "inline" if inline else "attachment"
    safe_name = quote(filename)
    return {
        "Content-Type": content_type,
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{safe_name}",
        "Content-Security-Policy": f"{sandbox}; default-src 'none'; img-src 'self' data:; "
                                   "style-src 'unsafe-inline'" + ("; script-src 'unsafe-inline' 'unsafe-eval'"
                                                                  if "allow-scripts" in sandbox else ""),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def json_response(data: Any, status_code: int = 200) -> Response:
    """The web app's one JSON response (the API's), never cached."""
    return JSON(data, status_code=status_code, headers={"X-Content-Type-Options": "nosniff",
                                                        "Cache-Control": "no-store"})
