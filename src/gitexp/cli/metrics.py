"""`gitexp metrics ...`"""

from __future__ import annotations

import click

from ._common import Context, emit, format_option, pass_context, timestamp


@click.group("metrics")
def metrics() -> None:
    """Metric histories.

    \b
    Example:
        gitexp metrics history 1a2b3c4d rmse --format csv > rmse.csv
    """


@metrics.command("history")
@click.argument("run")
@click.argument("key")
@format_option()
@pass_context
def history(ctx: Context, run: str, key: str, fmt: str) -> None:
    """Every logged value of one metric of a run, in step order.

    \b
    Example:
        gitexp metrics history 1a2b3c4d validation-rmse
    """
    run_id = ctx.run_id(run)
    points = ctx.client.get_metric_history(run_id, key)
    if not points:
        known = ", ".join(sorted(ctx.client.get_run(run_id).data.metrics)) or "none"
        raise click.ClickException(f"Run {run_id} has no metric {key!r} (its metrics: {known})")
    rows = [{"step": m.step, "value": m.value, "timestamp": m.timestamp, "time": timestamp(m.timestamp)}
            for m in points]
    emit(rows, ["step", "value", "time"] if fmt == "table" else ["step", "value", "timestamp"], fmt,
         title=f"{key} of run {run_id[:8]}")


COMMANDS = [metrics]
