"""`gitexp hooks ...`: install and run gitexp's git hooks."""

from __future__ import annotations

import sys

import click

from .. import hooks as git_hooks

_HOOK_CHOICE = click.Choice(list(git_hooks.HOOK_NAMES))


def _repo_path(ctx: click.Context) -> str | None:
    return ctx.find_root().obj.repo if ctx.find_root().obj is not None else None


@click.group("hooks")
def hooks() -> None:
    """Git hooks that keep experiments and code together.

    \b
    pre-commit   refuses .tracking/ files on code branches
    post-commit  links runs made on uncommitted code to the commit holding that code
    pre-push     pushes the tracking branch along with your code

    \b
    Example:
        gitexp hooks install
        git push origin main        # pushes the tracking branch too
    """


@hooks.command("install")
@click.option("--force", is_flag=True,
              help="Install even where you have a hook: yours is kept as <hook>.local and runs first.")
@click.option("--hook", "names", multiple=True, type=_HOOK_CHOICE, help="Only this hook (repeatable).")
@click.pass_context
def install(ctx: click.Context, force: bool, names: tuple[str, ...]) -> None:
    """Install the hooks into this repository (honours core.hooksPath).

    Refuses to replace a hook you already have unless --force, which keeps
    yours as <hook>.local and chains to it.

    \b
    Example:
        gitexp hooks install
        gitexp hooks install --force --hook pre-push
    """
    for change in git_hooks.install(_repo_path(ctx), force=force, hooks=names or git_hooks.HOOK_NAMES):
        click.echo(str(change))


@hooks.command("uninstall")
@click.option("--hook", "names", multiple=True, type=_HOOK_CHOICE, help="Only this hook (repeatable).")
@click.pass_context
def uninstall(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Remove gitexp's hooks and put back the hooks they chained to.

    \b
    Example:
        gitexp hooks uninstall
    """
    for change in git_hooks.uninstall(_repo_path(ctx), hooks=names or git_hooks.HOOK_NAMES):
        click.echo(str(change))


@hooks.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show which hooks are gitexp's, someone else's, or absent.

    \b
    Example:
        gitexp hooks status
    """
    for change in git_hooks.status(_repo_path(ctx)):
        click.echo(f"{change.hook}: {change.action} ({change.path})")


@hooks.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("hook", type=_HOOK_CHOICE)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(hook: str, args: tuple[str, ...]) -> None:
    """Run one hook now, as git would (the installed hooks and the pre-commit framework call this).

    \b
    Example:
        gitexp hooks run pre-commit
        echo "refs/heads/main $(git rev-parse HEAD) refs/heads/main 0000000000000000000000000000000000000000" \\
            | gitexp hooks run pre-push origin "$(git remote get-url origin)"
    """
    sys.exit(git_hooks.run(hook, list(args)))


COMMANDS = [hooks]
