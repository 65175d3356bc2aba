"""`gitexp artifacts ...`"""

from __future__ import annotations

import click

from ._common import Context, emit, format_option, pass_context


@click.group("artifacts")
def artifacts() -> None:
    """Files logged with runs (models, plots, data).

    \b
    Example:
        gitexp artifacts list 1a2b3c4d
        gitexp artifacts download 1a2b3c4d model -o ./model
    """


@artifacts.command("list")
@click.argument("run")
@click.argument("path", required=False, default="")
@click.option("--recursive", "-r", is_flag=True, help="List every file below PATH, not just its entries.")
@format_option()
@pass_context
def list_(ctx: Context, run: str, path: str, recursive: bool, fmt: str) -> None:
    """The files and directories below PATH (default: the run's artifact root).

    \b
    Example:
        gitexp artifacts list 1a2b3c4d
        gitexp artifacts list 1a2b3c4d model --format json
        gitexp artifacts list 1a2b3c4d -r
    """
    run_id = ctx.run_id(run)
    client = ctx.client
    entries = client.list_artifacts(run_id, path or None)
    if not entries and path:
        # A file, or nothing at all: say which.
        kind = client.get_artifact_kind(run_id, path.strip("/"))
        if kind is None:
            raise click.ClickException(f"Run {run_id} has no artifact {path!r}")
        entries = [e for e in client.list_artifacts(run_id, path.rsplit("/", 1)[0] if "/" in path else None)
                   if e.path == path.strip("/")]
    if recursive:
        expanded, stack = [], list(entries)
        while stack:
            entry = stack.pop(0)
            if entry.is_dir:
                stack[:0] = client.list_artifacts(run_id, entry.path)
            else:
                expanded.append(entry)
        entries = expanded
    rows = [{"path": e.path + ("/" if e.is_dir and fmt == "table" else ""), "is_dir": e.is_dir,
             "size": e.file_size if fmt != "table" else _human(e.file_size)} for e in entries]
    emit(rows, ["path", "size"] if fmt == "table" else ["path", "is_dir", "size"], fmt,
         title=f"artifacts of run {run_id[:8]}" + (f" at {path}" if path else ""))


@artifacts.command("download")
@click.argument("run")
@click.argument("path", required=False, default="")
@click.option("--output", "-o", "dst", default=".", show_default=True, metavar="DIR",
              help="Directory to download into; the artifact keeps its path below it.")
@pass_context
def download(ctx: Context, run: str, path: str, dst: str) -> None:
    """Download an artifact file or directory (default: all of the run's artifacts).

    Large files kept in the artifact store are fetched and their sha256 checked.
    Prints the local path.

    \b
    Example:
        gitexp artifacts download 1a2b3c4d model -o ./downloads
        gitexp artifacts download 1a2b3c4d            # everything, into .
    """
    run_id = ctx.run_id(run)
    click.echo(ctx.client.download_artifacts(run_id, path, dst))


def _human(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


COMMANDS = [artifacts]
