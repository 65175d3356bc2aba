"""The `gitexp` command line: a thin layer over Client.

Each command opens the Client for the repository (--repo, GITEXP_TRACKING_URI,
or the current directory), calls one or two of its methods and prints the
result as a table, JSON or CSV.  gitexp errors become click errors.
"""

from __future__ import annotations

import sys

import click

from ..exceptions import GitexpError
from ._common import Context


class _Group(click.Group):
    """Turns gitexp errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GitexpError as exc:
            raise click.ClickException(exc.message) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--repo", "-C", "repo", envvar="GITEXP_TRACKING_URI", metavar="PATH",
              help="Repository to track into (default: the one around the current directory).")
@click.version_option(package_name="gitexp")
@click.pass_context
def main(ctx: click.Context, repo: str | None) -> None:
    """Experiment tracking and a model registry inside your git repository.

    Runs live on the branch `gitexp` as YAML/JSONL files; `git push origin gitexp`
    shares them. Every command has --help with an example.

    \b
    Example:
        gitexp init
        python train.py            # uses `import gitexp as mlflow`
        gitexp runs list --order-by "metrics.rmse ASC"
    """
    ctx.obj = Context(repo)


def _register() -> None:
    from . import artifacts, code, demo, doctor, experiments, hooks, metrics, models, runs, server, sync, ui

    for module in (doctor, experiments, metrics, runs, code, artifacts, models, sync, hooks, server, ui, demo):
        for command in module.COMMANDS:
            main.add_command(command)


_register()


def run() -> None:  # pragma: no cover - console entry point
    main(prog_name="gitexp" if not sys.argv[0].endswith("git-exp") else "git exp")
