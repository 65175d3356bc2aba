"""The `gitexp` command line: a thin layer over Client.

Each command opens the Client for the repository (--repo, GITEXP_TRACKING_URI,
or the current directory), calls one or two of its methods and prints the
result as a table, JSON or CSV.  gitexp errors become click errors.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..exceptions import GitexpError
from ._common import Context


class _Group(click.Group):
    """Turns gitexp errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GitexpError as exc:
            raise click.ClickException(exc.message) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--repo", "-C", "repo", envvar="GITEXP_TRACKING_URI", metavar="PATH",
              help="Repository to work in (default: GITEXP_TRACKING_URI, else the one around the current "
                   "directory). Every command also takes --repo/-C after its name.")
@click.version_option(package_name="gitexp")
@click.pass_context
def main(ctx: click.Context, repo: str | None) -> None:
    """Experiment tracking and a model registry inside your git repository.

    Runs live on the branch `gitexp` as YAML/JSONL files; `git push origin gitexp`
    shares them. Every command has --help with an example. The repository is
    --repo PATH (or -C PATH), given before or after the command's name, else
    GITEXP_TRACKING_URI, else the one around the current directory.

    \b
    Example:
        gitexp init
        python train.py            # uses `import gitexp as mlflow`
        gitexp runs list --order-by "metrics.rmse ASC"
    """
    ctx.obj = Context(repo)


def _set_repo(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        context = ctx.find_object(Context)
        assert context is not None  # main() made it
        context.repo = value
        context._client = None


def _repo_option() -> click.Option:
    """`--repo/-C PATH` after a command's name: the same as `gitexp --repo PATH` before it (the
    later one wins), so `gitexp --repo X cmd` and `gitexp cmd --repo X` are one thing everywhere."""
    return click.Option(["--repo", "-C"], metavar="PATH", expose_value=False, is_eager=True,
                        callback=_set_repo,
                        help="Repository to work in (the same as `gitexp --repo PATH` before the command).")


def _add_repo_option(command: click.Command) -> None:
    if not any("--repo" in p.opts for p in command.params):
        command.params.append(_repo_option())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _add_repo_option(sub)


def _register() -> None:
    from . import (
        artifacts,
        code,
        demo,
        doctor,
        experiments,
        hooks,
        metrics,
        migrate,
        models,
        runs,
        server,
        sync,
        ui,
        users,
    )

    for module in (doctor, experiments, metrics, runs, code, artifacts, models, sync, migrate, hooks, server, ui, users,
                   demo):
        for command in module.COMMANDS:
            if module is not demo:  # demo makes its own scratch repository (its DIRECTORY argument)
                _add_repo_option(command)
            main.add_command(command)


_register()


def run() -> None:  # pragma: no cover - console entry point
    main(prog_name="gitexp" if not sys.argv[0].endswith("git-exp") else "git exp")
