"""`gitexp users`: the users, tokens and admins of `gitexp server --auth` (docs/server.md, "Security")."""

from __future__ import annotations

import sys
from typing import Any

import click

from ._common import Context, pass_context

_FILE = click.option("--auth-file", "auth_file", default=None, metavar="PATH",
                     help="The users file (default: .git/gitexp/auth/users.json of the repository; "
                          "never on a branch).")


def _store(ctx: Context, auth_file: str | None) -> Any:
    from ..server.auth import AuthStore, default_auth_file

    if auth_file is None:
        auth_file = default_auth_file(ctx.client.get_repository_info().common_dir)
    return AuthStore(auth_file)


def _password(password_stdin: bool, confirm: bool = True) -> str:
    if password_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise click.UsageError("--password-stdin: no password on standard input")
        return value
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=confirm))


@click.group("users")
def users() -> None:
    """Users of `gitexp server --auth`: passwords, API tokens, admins.

    Stored (passwords as scrypt hashes, tokens as SHA-256) in .git/gitexp/auth/users.json,
    never in the repository's history or on the tracking branch. A running server picks
    up changes at once.

    \b
    Example:
        gitexp users add ada --admin
        gitexp users token ada     # MLFLOW_TRACKING_TOKEN for scripts
    """


@users.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="An admin may do everything, including managing users.")
@click.option("--email", default=None, help="The email of the commits made for this user (default NAME@gitexp-server).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")
@_FILE
@pass_context
def add(ctx: Context, /, name: str, admin: bool, email: str | None, password_stdin: bool,
        auth_file: str | None) -> None:
    """Add a user (asks for the password).

    \b
    Example:
        gitexp users add ada --admin --email ada@example.com
        printf '%s\\n' "$PW" | gitexp users add ci-bot --password-stdin
    """
    store = _store(ctx, auth_file)
    store.add_user(name, _password(password_stdin), admin=admin, email=email)
    click.echo(f"Added user {name}{' (admin)' if admin else ''} to {store.path}")


@users.command("remove")
@click.argument("name")
@_FILE
@pass_context
def remove(ctx: Context, /, name: str, auth_file: str | None) -> None:
    """Remove a user, their tokens and permissions.

    \b
    Example:
        gitexp users remove bob
    """
    _store(ctx, auth_file).remove_user(name)
    click.echo(f"Removed user {name}")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input (one line).")
@_FILE
@pass_context
def passwd(ctx: Context, /, name: str, password_stdin: bool, auth_file: str | None) -> None:
    """Set a user's password.

    \b
    Example:
        gitexp users passwd ada
    """
    _store(ctx, auth_file).set_password(name, _password(password_stdin))
    click.echo(f"Changed the password of {name}")


@users.command("token")
@click.argument("name")
@click.option("--label", default="", help="What the token is for (shown by `gitexp users list`).")
@click.option("--revoke", is_flag=True, help="Revoke every token of the user instead.")
@_FILE
@pass_context
def token(ctx: Context, /, name: str, label: str, revoke: bool, auth_file: str | None) -> None:
    """Make an API token for a user (printed once; only its hash is kept).

    \b
    Example:
        export MLFLOW_TRACKING_TOKEN=$(gitexp users token ada --label sweep)
        gitexp users token ada --revoke
    """
    store = _store(ctx, auth_file)
    if revoke:
        click.echo(f"Revoked {store.revoke_tokens(name)} token(s) of {name}", err=True)
        return
    click.echo(store.new_token(name, label))


@users.command("list")
@_FILE
@pass_context
def list_users(ctx: Context, /, auth_file: str | None) -> None:
    """List users, admins, token counts and granted permissions.

    \b
    Example:
        gitexp users list
    """
    store = _store(ctx, auth_file)
    data = store.read()
    for user in store.users():
        tokens = len(data["users"][user.name].get("tokens", []))
        grants = store.grants(user.name)
        shown = ", ".join(f"{k}:{r}={p}" for k, g in grants.items() for r, p in g.items())
        click.echo(f"{user.name}\t{'admin' if user.admin else 'user'}\t{tokens} token(s)\t{user.email}"
                   + (f"\t{shown}" if shown else ""))


COMMANDS = [users]
