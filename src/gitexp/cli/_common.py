"""What every command shares: the client, argument resolution and output formats."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..client import Client
from ..entities import Experiment, Run
from ..exceptions import InvalidParameterValue, ResourceDoesNotExist

if TYPE_CHECKING:
    from rich.console import Console


class Context:
    def __init__(self, repo: str | None) -> None:
        self.repo = repo
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.repo)
        return self._client

    def experiment(self, ref: str) -> Experiment:
        """An experiment by id or by name."""
        client = self.client
        if ref.isdigit():
            try:
                return client.get_experiment(ref)
            except ResourceDoesNotExist:
                pass
        experiment = client.get_experiment_by_name(ref)
        if experiment is None:
            raise ResourceDoesNotExist(
                f"No experiment named or numbered {ref!r}; see `gitexp experiments list --all`"
            )
        return experiment

    def run_id(self, ref: str) -> str:
        """A run id from a full id or a unique prefix (like a short git hash)."""
        return self.client.resolve_run_id(ref)


pass_context = click.make_pass_decorator(Context)

F = TypeVar("F", bound=Callable[..., Any])  # a command function, under the decorators that add options

FORMATS = ("table", "json", "csv")


def format_option(default: str = "table") -> Callable[..., Any]:
    return click.option("--format", "-f", "fmt", type=click.Choice(FORMATS), default=default, show_default=True,
                        help="Output format.")


def timestamp(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def duration(start: int | None, end: int | None) -> str:
    if not start or not end:
        return ""
    seconds = (end - start) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.1f}h"


def number(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.6g}"
    return "" if value is None else str(value)


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str, title: str | None = None,
         styles: dict[str, str] | None = None, caption: str | None = None) -> None:
    """Print rows as a rich table, a JSON array or CSV."""
    if fmt == "json":
        click.echo(json.dumps([{c: _jsonable(r.get(c)) for c in columns} for r in rows], indent=2, default=str))
        return
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: r.get(c, "") for c in columns})
        click.echo(out.getvalue(), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption, show_lines=False, header_style="bold")
    for c in columns:
        table.add_column(c, style=(styles or {}).get(c), overflow="fold")
    for r in rows:
        table.add_row(*[number(r.get(c)) if not isinstance(r.get(c), str) else r.get(c) for c in columns])
    console = Console()
    if not console.is_terminal:
        # Piped or redirected: never fold cells into a narrow 80-column default.
        console = Console(width=max(80, _natural_width(rows, columns)))
    console.print(table)


def _natural_width(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> int:
    width = 1
    for c in columns:
        cells = [len(c)] + [len(number(v) if not isinstance(v := r.get(c), str) else v) for r in rows]
        width += max(cells) + 3
    return width


def default_run_columns(rows: Sequence[dict[str, Any]], fmt: str, per_kind: int = 3) -> tuple[list[str], str | None]:
    """Columns for a runs listing, and a caption naming what was left out.

    Tables show a few metrics and params so they stay readable; JSON and CSV
    carry every metric and param.
    """
    metrics = sorted({k for r in rows for k in r if k.startswith("metrics.")})
    params = sorted({k for r in rows for k in r if k.startswith("params.")})
    base = ["run_id", "name", "status", "start", "duration"]
    if fmt != "table":
        return base + ["experiment_id"] + metrics + params, None
    hidden = max(0, len(metrics) - per_kind) + max(0, len(params) - per_kind)
    caption = (f"{hidden} more metric/param columns: choose with --columns, or use --format csv"
               if hidden else None)
    return base + metrics[:per_kind] + params[:per_kind], caption


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return value


def run_row(run: Run) -> dict[str, Any]:
    info = run.info
    row: dict[str, Any] = {
        "run_id": info.run_id,
        "name": info.run_name or "",
        "experiment_id": info.experiment_id,
        "status": info.status,
        "start": timestamp(info.start_time),
        "duration": duration(info.start_time, info.end_time),
        "user": info.user_id,
        "lifecycle_stage": info.lifecycle_stage,
    }
    row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
    row.update({f"params.{k}": v for k, v in run.data.params.items()})
    row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
    return row


def progress(items: Sequence[Any], description: str, min_items: int = 20) -> Iterable[Any]:
    """Iterate with a progress bar on stderr when the work is long enough to watch."""
    import sys

    if len(items) < min_items or not sys.stderr.isatty():
        return iter(items)
    from rich.progress import track

    return track(items, description=description, total=len(items), transient=True,
                 console=_stderr_console())


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def parse_pairs(pairs: Iterable[str], what: str = "tag") -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidParameterValue(f"Expected KEY=VALUE for --{what}, got {pair!r}")
        out[key] = value
    return out
