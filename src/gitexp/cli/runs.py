"""`gitexp runs ...`"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from ..entities import ViewType
from ._common import (
    Context,
    F,
    default_run_columns,
    duration,
    emit,
    format_option,
    number,
    pass_context,
    progress,
    run_row,
    timestamp,
)

if TYPE_CHECKING:
    import pandas as pd

_VIEWS = {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY, "all": ViewType.ALL}


@click.group("runs")
def runs() -> None:
    """List, show, compare, delete and restore runs.

    Runs are named by their id or any unique prefix of it (4+ characters).

    \b
    Example:
        gitexp runs list -e nyc-taxi --filter "metrics.rmse < 7" --order-by "metrics.rmse"
        gitexp runs compare 1a2b 3c4d
    """


def _experiment_ids(ctx: Context, experiments: tuple[str, ...], all_experiments: bool) -> list[str]:
    if all_experiments:
        return [e.experiment_id for e in ctx.client.search_experiments(view_type=ViewType.ALL, max_results=None)]
    if experiments:
        return [ctx.experiment(e).experiment_id for e in experiments]
    return [e.experiment_id for e in ctx.client.search_experiments(max_results=None)]


_ROW_FIELDS = ("run_id", "name", "experiment_id", "status", "start", "duration", "user", "lifecycle_stage",
               "start_time", "end_time", "artifact_uri", "run_name", "user_id")


def _columns(spec: str | None) -> list[str] | None:
    if not spec:
        return None
    columns = [c.strip() for c in spec.split(",") if c.strip()]
    for column in columns:
        if column not in _ROW_FIELDS and not column.startswith(("metrics.", "params.", "tags.")):
            raise click.BadParameter(
                f"unknown column {column!r}; use {', '.join(_ROW_FIELDS)}, or metrics.<key>, params.<key>, "
                "tags.<key>", param_hint="--columns")
    return columns


def _selection(func: F) -> F:
    """Options shared by `runs list` and `runs export`: which runs, in which order."""
    options = [
        click.option("--experiment", "-e", "experiments", multiple=True, metavar="NAME|ID",
                     help="Experiment to search (repeatable; default: every active experiment)."),
        click.option("--all-experiments", is_flag=True, help="Search deleted experiments too."),
        click.option("--filter", "filter_string", default="", metavar="FILTER",
                     help="MLflow search filter, e.g. \"metrics.rmse < 7 and params.model = 'xgb'\"."),
        click.option("--order-by", "order_by", multiple=True, metavar="KEY [ASC|DESC]",
                     help="Sort key, e.g. \"metrics.rmse ASC\" (repeatable). Default: newest first."),
        click.option("--view", type=click.Choice(list(_VIEWS)), default="active", show_default=True,
                     help="Which runs: active, deleted or all."),
        click.option("--as-of", "as_of", metavar="COMMIT|DATE",
                     help="Search the store as it was: a commit (gitexp~3) or a date/time (2024-05-01)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@runs.command("list")
@_selection
@click.option("--max", "max_results", type=click.IntRange(min=1, max=50000), default=100, show_default=True,
              help="At most this many runs.")
@click.option("--columns", "-c", metavar="COL,COL", help="Columns to show, e.g. run_id,metrics.rmse,params.alpha.")
@format_option()
@pass_context
def list_runs(ctx: Context, experiments: tuple[str, ...], all_experiments: bool, filter_string: str,
              order_by: tuple[str, ...], view: str, as_of: str | None, max_results: int, columns: str | None,
              fmt: str) -> None:
    """List runs matching an MLflow filter, newest first, with their metrics and params.

    \b
    Example:
        gitexp runs list -e nyc-taxi --filter "tags.model = 'xgboost'" \\
            --order-by "metrics.rmse ASC" --max 5 -c run_id,metrics.rmse,params.max_depth
        gitexp runs list --filter "metrics.rmse < 7" --as-of "2 weeks ago"
    """
    cols = _columns(columns)
    ids = _experiment_ids(ctx, experiments, all_experiments)
    found = ctx.client.search_runs(ids, filter_string, _VIEWS[view], max_results, list(order_by) or None,
                                   as_of=as_of)
    rows = []
    for r in found:
        row = run_row(r)
        row.update(start_time=r.info.start_time, end_time=r.info.end_time, artifact_uri=r.info.artifact_uri,
                   run_name=r.info.run_name, user_id=r.info.user_id)
        rows.append(row)
    caption = None
    if not cols:
        cols, caption = default_run_columns(rows, fmt)
    if fmt == "table":
        for r in rows:
            r["run_id"] = r["run_id"][:8]
    emit(rows, cols, fmt, caption=caption)


_EXPORT_FORMATS = ("csv", "parquet", "json")


@runs.command("export")
@_selection
@click.option("--max", "max_results", type=click.IntRange(min=1), default=None,
              help="At most this many runs (default: all).")
@click.option("--columns", "-c", metavar="COL,COL",
              help="Columns to keep, e.g. run_id,start_time,metrics.rmse (default: all, as mlflow.search_runs).")
@click.option("--format", "-f", "fmt", type=click.Choice(_EXPORT_FORMATS), default="csv", show_default=True,
              help="File format.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="File to write (default: standard output; required for parquet).")
@pass_context
def export(ctx: Context, experiments: tuple[str, ...], all_experiments: bool, filter_string: str,
           order_by: tuple[str, ...], view: str, as_of: str | None, max_results: int | None, columns: str | None,
           fmt: str, output: str | None) -> None:
    """Export runs as a table: the DataFrame gitexp.search_runs returns, as CSV, Parquet or JSON.

    Columns are MLflow's: run_id, experiment_id, status, artifact_uri,
    start_time, end_time (UTC), then metrics.*, params.* and tags.*.

    \b
    Example:
        gitexp runs export -e nyc-taxi --filter "metrics.rmse < 7" -f parquet -o runs.parquet
        gitexp runs export --order-by "metrics.rmse" -c run_id,metrics.rmse,params.alpha > runs.csv
        gitexp runs export -f json --as-of 2024-05-01 -o may.json
    """
    if fmt == "parquet" and not output:
        raise click.UsageError("Parquet is binary: give a file with -o FILE")
    ids = _experiment_ids(ctx, experiments, all_experiments)
    frame = ctx.client.search_runs_frame(ids, filter_string, _VIEWS[view], max_results, list(order_by) or None,
                                         as_of=as_of)
    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        missing = [c for c in wanted if c not in frame.columns]
        known_prefix = [c for c in missing if c.startswith(("metrics.", "params.", "tags."))]
        if len(known_prefix) < len(missing):
            bad = [c for c in missing if c not in known_prefix]
            raise click.BadParameter(f"unknown column(s) {', '.join(map(repr, bad))}; columns are "
                                     f"{', '.join(frame.columns[:6])} and metrics.*, params.*, tags.*",
                                     param_hint="--columns")
        for column in known_prefix:  # a key no selected run has: an empty column, as in a DataFrame
            frame[column] = None
        frame = frame[wanted]
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise click.ClickException(
                "Writing Parquet needs pyarrow: pip install 'gitexp[parquet]' (or pip install pyarrow)") from None
        frame.to_parquet(output, index=False)
    elif fmt == "csv":
        text = frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ", lineterminator="\n")
        _write_text(text, output)
    else:
        _write_text(json.dumps(_records(frame), indent=2, ensure_ascii=False) + "\n", output)
    if output:
        click.echo(f"Wrote {len(frame)} runs to {output}", err=True)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: times in ISO 8601 UTC, missing values and NaN as null,
    infinities as the strings "Infinity" / "-Infinity" (JSON has no number for them)."""
    import math

    import pandas as pd

    columns = []
    for name in frame.columns:
        series = frame[name]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            values = [None if pd.isna(v) else v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
                      for v in series]
        else:
            values = []
            for v in series.tolist():
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    v = None
                elif isinstance(v, float) and math.isinf(v):
                    v = "Infinity" if v > 0 else "-Infinity"
                values.append(v)
        columns.append(values)
    names = list(frame.columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)] if columns else []


def _write_text(text: str, output: str | None) -> None:
    if output:
        with open(output, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    else:
        click.echo(text, nl=False)


@runs.command("show")
@click.argument("run")
@format_option()
@pass_context
def show(ctx: Context, run: str, fmt: str) -> None:
    """Show a run: info, params, latest metrics and tags.

    \b
    Example:
        gitexp runs show 1a2b3c4d
    """
    r = ctx.client.get_run(ctx.run_id(run))
    if fmt == "json":
        click.echo(json.dumps(r.to_dictionary(), indent=2, default=str))
        return
    info = r.info
    rows = [
        {"field": "run_id", "value": info.run_id},
        {"field": "name", "value": info.run_name or ""},
        {"field": "experiment_id", "value": info.experiment_id},
        {"field": "status", "value": info.status},
        {"field": "lifecycle_stage", "value": info.lifecycle_stage},
        {"field": "user", "value": info.user_id},
        {"field": "start", "value": timestamp(info.start_time)},
        {"field": "end", "value": timestamp(info.end_time)},
        {"field": "duration", "value": duration(info.start_time, info.end_time)},
        {"field": "artifact_uri", "value": info.artifact_uri or ""},
    ]
    rows += [{"field": f"params.{k}", "value": v} for k, v in sorted(r.data.params.items())]
    rows += [{"field": f"metrics.{k}", "value": number(v)} for k, v in sorted(r.data.metrics.items())]
    rows += [{"field": f"tags.{k}", "value": v} for k, v in sorted(r.data.tags.items())]
    for d in r.inputs.dataset_inputs:
        context = next((t.value for t in d.tags if t.key == "mlflow.data.context"), "")
        rows.append({"field": f"dataset.{d.dataset.name}", "value": f"digest {d.dataset.digest} {context}".strip()})
    emit(rows, ["field", "value"], fmt, title=f"Run {info.run_id}")


@runs.command("compare")
@click.argument("run_refs", metavar="RUN RUN...", nargs=-1, required=True)
@click.option("--diff-only", "-d", is_flag=True, help="Show only the params and metrics that differ.")
@format_option()
@pass_context
def compare(ctx: Context, run_refs: tuple[str, ...], diff_only: bool, fmt: str) -> None:
    """Compare runs side by side: params and metrics, differences highlighted.

    \b
    Example:
        gitexp runs compare 1a2b 3c4d 5e6f --diff-only
    """
    if len(run_refs) < 2:
        raise click.UsageError("compare needs at least two runs")
    found = [ctx.client.get_run(ctx.run_id(ref)) for ref in run_refs]
    labels = [f"{r.info.run_id[:8]} {r.info.run_name or ''}".strip() for r in found]
    keys = sorted({f"params.{k}" for r in found for k in r.data.params}) + \
        sorted({f"metrics.{k}" for r in found for k in r.data.metrics})
    rows = []
    for key in keys:
        kind, _, name = key.partition(".")
        values = [(r.data.params if kind == "params" else r.data.metrics).get(name) for r in found]
        differs = len({repr(v) for v in values}) > 1
        if diff_only and not differs:
            continue
        row: dict[str, Any] = {"key": key, "differs": differs}
        row.update({label: v for label, v in zip(labels, values, strict=True)})
        rows.append(row)
    if fmt != "table":
        emit(rows, ["key", "differs", *labels], fmt)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Runs compared (differences in yellow)", header_style="bold")
    table.add_column("key")
    for label in labels:
        table.add_column(label, overflow="fold")
    for row in rows:
        style = "bold yellow" if row["differs"] else None
        table.add_row(row["key"], *[number(row.get(label)) if row.get(label) is not None else "—" for label in labels],
                      style=style)
    Console().print(table)


@runs.command("code")
@click.argument("run")
@pass_context
def code(ctx: Context, run: str) -> None:
    """Print the uncommitted diff a run ran with (empty if the tree was clean).

    The diff applies on top of the run's commit (tag mlflow.source.git.commit).

    \b
    Example:
        gitexp runs code 1a2b3c4d > run.patch
        git checkout $(gitexp runs show 1a2b3c4d -f json | jq -r '.data.tags["mlflow.source.git.commit"]')
        git apply run.patch
    """
    patch = ctx.client.get_run_code_diff(ctx.run_id(run))
    sys.stdout.write(patch)


@runs.command("delete")
@click.argument("run_refs", metavar="RUN...", nargs=-1, required=True)
@pass_context
def delete(ctx: Context, run_refs: tuple[str, ...]) -> None:
    """Delete runs (restorable; nothing is erased from git history).

    \b
    Example:
        gitexp runs delete 1a2b3c4d 5e6f7a8b
    """
    for ref in progress(run_refs, "Deleting runs"):
        run_id = ctx.run_id(ref)
        ctx.client.delete_run(run_id)
        click.echo(f"Deleted run {run_id}")


@runs.command("restore")
@click.argument("run_refs", metavar="RUN...", nargs=-1, required=True)
@pass_context
def restore(ctx: Context, run_refs: tuple[str, ...]) -> None:
    """Restore deleted runs.

    \b
    Example:
        gitexp runs restore 1a2b3c4d
    """
    for ref in progress(run_refs, "Restoring runs"):
        run_id = ctx.run_id(ref)
        ctx.client.restore_run(run_id)
        click.echo(f"Restored run {run_id}")


COMMANDS = [runs]
