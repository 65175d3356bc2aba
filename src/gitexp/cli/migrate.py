"""`gitexp import` and `gitexp export`: move runs in from MLflow stores and back out."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

from ..exceptions import InvalidParameterValue
from ._common import Context, pass_context

_KIND_COLUMNS = ("created", "updated", "unchanged", "failed")


def _when(value: str | None, option: str) -> int | None:
    """Milliseconds since the epoch from a date, an ISO time (UTC unless it says) or a number of ms."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidParameterValue(f"{option} {value!r}: expected a date (2024-05-01), an ISO time "
                                    "(2024-05-01T12:00) or milliseconds since 1970") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return int(when.timestamp() * 1000)


class _Progress:
    """A rich progress bar with counts on stderr (only on a terminal)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Progress:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self.bar.__enter__()
        return self

    def __call__(self, what: str, done: int, total: int) -> None:
        if self.bar is None:
            return
        if what not in self.tasks:
            self.tasks[what] = self.bar.add_task(what, total=total)
        self.bar.update(self.tasks[what], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _summary(result: Any, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    table.add_column("kind")
    for column in _KIND_COLUMNS:
        table.add_column(column, justify="right")
    for kind, counts in result.counts.items():
        table.add_row(kind, *[str(counts.get(c, 0)) for c in _KIND_COLUMNS])
    console = Console()
    console.print(table)
    for failure in result.failures:
        click.echo(f"could not copy {failure.kind[:-1] if failure.kind.endswith('s') else failure.kind} "
                   f"{failure.name}: {failure.error}", err=True)


@click.command("import")
@click.argument("source")
@click.option("--experiment", "-e", "experiments", multiple=True, metavar="NAME",
              help="Copy only this experiment (name or the source's id); repeat for several.")
@click.option("--since", metavar="WHEN", help="Only runs started at or after WHEN (date, ISO time or ms).")
@click.option("--until", metavar="WHEN", help="Only runs started before WHEN.")
@click.option("--dry-run", is_flag=True, help="Print what would be copied; write nothing.")
@click.option("--artifacts-root", metavar="DIR",
              help="The directory a tracking server serves as mlflow-artifacts:/ (its --artifacts-destination), "
                   "for a database whose runs keep their artifacts there.")
@click.option("--batch", type=click.IntRange(1), default=500, show_default=True,
              help="Runs per commit (an interrupted import resumes after the last one).")
@pass_context
def import_(ctx: Context, source: str, experiments: tuple[str, ...], since: str | None, until: str | None,
            dry_run: bool, artifacts_root: str | None, batch: int) -> None:
    """Copy an MLflow store into the tracking branch, losing nothing.

    SOURCE is an MLflow tracking URI -- a database (sqlite:///mlflow.db or any SQLAlchemy URL
    MLflow accepts, read directly with SQL) or a tracking server (http(s)://, through MLflow's
    client; needs gitexp[mlflow]) -- or the path of an mlruns/ directory (read from its files).
    Experiments, runs (ids, names, users, times, status, params, tags, full metric histories,
    datasets, artifacts), logged models and the model registry are copied.

    Run it again to copy what is new or changed: nothing is ever duplicated, and an import that
    was interrupted carries on. Imports of several stores into clones of one repository merge
    with `gitexp sync` (docs/migration.md).

    \b
    Example:
        gitexp import sqlite:///mlflow.db
        gitexp import ./mlruns --experiment churn --since 2024-01-01
        gitexp import http://mlflow.internal:5000 --dry-run
    """
    from ..migrate import import_store

    with _Progress() as progress:
        result = import_store(ctx.client, source, experiments=list(experiments) or None,
                              since=_when(since, "--since"), until=_when(until, "--until"), dry_run=dry_run,
                              progress=progress, artifacts_root=artifacts_root, batch=batch)
    _summary(result, f"{'would import' if dry_run else 'imported'} from {source}")
    if result.failures:
        raise click.exceptions.Exit(1)


@click.command("export")
@click.argument("dest")
@click.option("--experiment", "-e", "experiments", multiple=True, metavar="NAME",
              help="Export only this experiment (name or id); repeat for several.")
@click.option("--since", metavar="WHEN", help="Only runs started at or after WHEN (date, ISO time or ms).")
@click.option("--until", metavar="WHEN", help="Only runs started before WHEN.")
@click.option("--no-registry", is_flag=True, help="Leave the model registry out.")
@click.option("--artifact-root", metavar="URI",
              help="Where a new database puts experiments' artifacts (default: ./mlartifacts next to it).")
@pass_context
def export(ctx: Context, dest: str, experiments: tuple[str, ...], since: str | None, until: str | None,
           no_registry: bool, artifact_root: str | None) -> None:
    """Write the tracking branch (or part of it) into an MLflow database.

    DEST is a database URI MLflow accepts (sqlite:///mlflow.db, postgresql://...); it is
    created if needed and written through MLflow's own store classes, so any MLflow 3.17
    reads it. Run ids, names, users, times, status, params, tags, full metric histories,
    datasets, artifacts, logged models and the registry are kept. Exporting again adds what is
    new: new runs, versions and logged models, and new params, tags, metric points, status and
    deletions of runs already there.

    \b
    Example:
        gitexp export sqlite:///mlflow.db
        gitexp export sqlite:///churn.db --experiment churn --since 2024-06-01
    """
    from ..migrate import export_store

    with _Progress() as progress:
        result = export_store(ctx.client, dest, experiments=list(experiments) or None,
                              since=_when(since, "--since"), until=_when(until, "--until"),
                              registry=not no_registry, artifact_root=artifact_root, progress=progress)
    _summary(result, f"exported to {dest}")
    if result.failures:
        raise click.exceptions.Exit(1)


COMMANDS = [import_, export]
