"""What `gitexp ui` and `gitexp server` share: one set of options, spelled the same, and one way
to serve (the one web app of gitexp.server.app, its Host check and its port check)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from ._common import Context

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _hosts(values: tuple[str, ...]) -> list[str]:
    return [h.strip() for v in values for h in v.split(",") if h.strip()]


def serve_options(*, api: bool, ui: bool | None, log_level: str) -> Callable[..., Any]:
    """The options of a serving command; `api`, `ui` and `log_level` are its defaults."""
    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--host", default="127.0.0.1", show_default=True,
                         help="Address to listen on. The default accepts connections from this machine only; "
                              "0.0.0.0 opens the server, and the power to read and change runs and models, to "
                              "your network, so authentication is then on by default (see --auth)."),
            click.option("--port", "-p", default=5000, show_default=True, type=click.IntRange(0, 65535),
                         help="Port to listen on (0: any free port). A port in use is an error naming it."),
            click.option("--allowed-hosts", "allowed_hosts", multiple=True, metavar="NAMES",
                         help="Host names clients may use to reach the server, besides localhost, the --host "
                              "address and loopback/private IP addresses: comma-separated, repeatable ('*' for "
                              "any). Other Host headers get 403, which stops DNS-rebinding attacks from web "
                              "pages."),
            click.option("--allowed-host", "allowed_host", multiple=True, hidden=True,
                         help="Old spelling of --allowed-hosts."),
            click.option("--backend-store-uri", "backend_store_uri", default=None, hidden=True,
                         help="MLflow's spelling of --repo (a path or a sqlite:/// URI: the repository "
                              "around that file)."),
            click.option("--api/--no-api", default=api, show_default=True,
                         help="Serve MLflow's REST API under /api/2.0/mlflow (and /openapi.json)."),
            click.option("--ui/--no-ui", default=ui, show_default=ui is not None,
                         help="Serve the web UI at /" + (" (default: when it is installed)." if ui is None
                                                         else ".")),
            click.option("--push-to", metavar="REMOTE", default=None,
                         help="Push the tracking branch to this git remote (name or URL) while serving."),
            click.option("--push-interval", default=60.0, show_default=True, type=click.FloatRange(min=0.1),
                         metavar="SECONDS", help="Seconds between pushes with --push-to."),
            click.option("--auth/--no-auth", "auth", default=None,
                         help="Require users (HTTP Basic, tokens, the UI's login) and per-experiment and "
                              "per-model permissions; see `gitexp users`. Default: on when --host is not a "
                              "loopback address (then it refuses to start without a user); --no-auth there "
                              "serves everyone, with a warning."),
            click.option("--auth-file", "auth_file", default=None, metavar="PATH",
                         help="The users file (default: .git/gitexp/auth/users.json of the repository)."),
            click.option("--default-permission", "default_permission", default="READ", show_default=True,
                         type=click.Choice(["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"], case_sensitive=False),
                         help="With --auth: a user's permission on experiments and models nobody granted them."),
            click.option("--ssl-keyfile", "ssl_keyfile", default=None, metavar="PEM",
                         type=click.Path(exists=True, dir_okay=False),
                         help="Serve HTTPS with this private key (with --ssl-certfile)."),
            click.option("--ssl-certfile", "ssl_certfile", default=None, metavar="PEM",
                         type=click.Path(exists=True, dir_okay=False),
                         help="Serve HTTPS with this certificate (with --ssl-keyfile)."),
            click.option("--log-level", default=log_level, show_default=True,
                         type=click.Choice(["critical", "error", "warning", "info", "debug"]),
                         help="Server log level."),
        ]
        for option in reversed(options):
            f = option(f)
        return f
    return decorate


def run_server(ctx: Context, name: str, *, host: str, port: int, allowed_hosts: tuple[str, ...],
               allowed_host: tuple[str, ...], backend_store_uri: str | None, api: bool, ui: bool | None,
               push_to: str | None, push_interval: float, log_level: str, auth: bool | None = None,
               auth_file: str | None = None, default_permission: str = "READ", ssl_keyfile: str | None = None,
               ssl_certfile: str | None = None) -> None:
    """Bind the port (a clear error if it is busy), build the app, serve until Ctrl-C."""
    try:
        from ..server.app import bind, serve, url_of
    except ImportError as exc:
        raise click.ClickException(f"gitexp {name} needs gitexp[server] ({exc}): "
                                   "pip install 'gitexp[server]'") from exc
    if backend_store_uri:
        ctx.repo = backend_store_uri
    repo = ctx.repo
    if bool(ssl_keyfile) != bool(ssl_certfile):
        raise click.UsageError("--ssl-keyfile and --ssl-certfile go together")
    if auth is None:
        auth = host not in LOOPBACK
    sock = bind(host, port)
    try:
        port = sock.getsockname()[1]
        url = url_of(host, port)
        if ssl_certfile:
            url = "https" + url[len("http"):]
        where = os.path.abspath(repo) if repo and "://" not in repo else (repo or os.getcwd())
        serving = " and ".join(p for p, on in (("the web UI", ui is not False), ("MLflow's REST API", api)) if on)
        click.secho(f"gitexp {name}: serving {serving} of the repository at {where}: {url}  (Ctrl-C to stop)",
                    bold=True, err=True)
        if host not in LOOPBACK and not auth:
            click.secho(f"gitexp {name}: WARNING: listening on {host} with --no-auth: anyone who can reach this "
                        "address can read and change your runs and models", fg="yellow", err=True)
        elif auth:
            click.secho(f"gitexp {name}: authentication on (users: `gitexp users list`; default permission "
                        f"{default_permission.upper()})", err=True)
        serve(repo, host=host, port=port, api=api, ui=ui, push_to=push_to, push_interval=push_interval,
              log_level=log_level, allowed_hosts=_hosts(allowed_hosts + allowed_host), sock=sock, auth=auth,
              auth_file=auth_file, default_permission=default_permission.upper(), ssl_keyfile=ssl_keyfile,
              ssl_certfile=ssl_certfile)
    except ImportError as exc:  # --ui without the web UI installed
        raise click.ClickException(str(exc)) from exc
    finally:
        sock.close()
