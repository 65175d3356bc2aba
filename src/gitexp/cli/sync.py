"""`gitexp pull`, `gitexp push`, `gitexp sync`: share the tracking branch through a git remote."""

from __future__ import annotations

import click

from ._common import Context, F, pass_context


def _progress_option(func: F) -> F:
    return click.option("--progress/--no-progress", default=None,
                        help="Show git's transfer progress (default: when stderr is a terminal).")(func)


@click.command("pull")
@click.argument("remote", required=False)
@_progress_option
@pass_context
def pull(ctx: Context, remote: str | None, progress: bool | None) -> None:
    """Fetch the remote's tracking branch and merge it into yours.

    No checkout is needed and your working tree is not touched. The merge cannot
    conflict: every file on the tracking branch has one writer, and every later
    change is a new, uniquely named event file.

    REMOTE is a remote name or a repository URL or path; by default the current
    branch's upstream remote, else origin.

    \b
    Example:
        gitexp pull
        gitexp pull upstream
    """
    click.echo(str(ctx.client.pull(remote, progress)))


@click.command("push")
@click.argument("remote", required=False)
@click.option("--no-verify", is_flag=True, help="Skip your pre-push hooks for this push.")
@_progress_option
@pass_context
def push(ctx: Context, remote: str | None, no_verify: bool, progress: bool | None) -> None:
    """Push the tracking branch to a remote.

    If another clone pushed first, its runs are fetched and merged and the push
    is tried again (with a growing random pause), up to 20 times.

    REMOTE is a remote name or a repository URL or path; by default the current
    branch's upstream remote, else origin.

    \b
    Example:
        gitexp push
        gitexp push origin
    """
    click.echo(str(ctx.client.push(remote, progress, no_verify=no_verify)))


@click.command("sync")
@click.argument("remote", required=False)
@_progress_option
@pass_context
def sync(ctx: Context, remote: str | None, progress: bool | None) -> None:
    """Pull, then push: afterwards you and the remote hold every run of both.

    REMOTE is a remote name or a repository URL or path; by default the current
    branch's upstream remote, else origin.

    \b
    Example:
        gitexp sync
        gitexp sync git@github.com:me/project.git
    """
    click.echo(str(ctx.client.sync(remote, progress)))

COMMANDS = [pull, push, sync]
