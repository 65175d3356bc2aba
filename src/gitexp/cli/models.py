"""`gitexp models ...`: the model registry."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from ._common import Context, emit, format_option, parse_pairs, pass_context, timestamp

if TYPE_CHECKING:
    from ..entities.model_registry import ModelVersion


@click.group("models")
def models() -> None:
    """Registered models: versions, stages, aliases and their audit trail.

    Every change is a commit on the tracking branch by your git identity, so
    `git push origin gitexp` shares it and `gitexp models history` shows who did what.

    \b
    Example:
        gitexp models register runs:/1a2b3c4d/model nyc-taxi-regressor
        gitexp models transition nyc-taxi-regressor 1 Production --archive-existing
        gitexp models alias nyc-taxi-regressor champion 1
        gitexp models history nyc-taxi-regressor
    """


def _version_row(v: ModelVersion) -> dict[str, Any]:
    return {
        "version": v.version,
        "stage": v.current_stage,
        "aliases": ", ".join("@" + a for a in v.aliases),
        "source": v.source,
        "run_id": v.run_id or "",
        "created": timestamp(v.creation_timestamp),
        "updated": timestamp(v.last_updated_timestamp),
        "user": v.user_id or "",
        "description": v.description or "",
        "tags": ", ".join(f"{k}={val}" for k, val in sorted(v.tags.items())),
        "renumbered_from": v.renumbered_from if v.renumbered_from is not None else "",
    }


def _print_notices(notices: list[str]) -> None:
    for notice in notices:
        click.secho(f"Notice: {notice}", fg="yellow", err=True)


@models.command("list")
@click.option("--filter", "filter_string", default=None, metavar="FILTER",
              help="Registry filter, e.g. \"name LIKE 'taxi%'\" or \"tags.team = 'ml'\".")
@click.option("--order-by", "order_by", multiple=True, metavar="KEY [ASC|DESC]",
              help="name, last_updated_timestamp or creation_timestamp (repeatable). Default: name.")
@click.option("--max", "max_results", type=int, default=100, show_default=True, help="At most this many models.")
@format_option()
@pass_context
def list_models(ctx: Context, filter_string: str | None, order_by: tuple[str, ...], max_results: int, fmt: str) -> None:
    """List registered models with their latest version per stage and aliases.

    \b
    Example:
        gitexp models list --filter "name LIKE 'nyc-%'" --order-by "last_updated_timestamp DESC"
    """
    found = ctx.client.search_registered_models(filter_string, max_results, list(order_by) or None)
    rows = []
    for m in found:
        rows.append({
            "name": m.name,
            "latest": ", ".join(f"v{v.version} {v.current_stage}" for v in m.latest_versions),
            "aliases": ", ".join(f"@{a}=v{n}" for a, n in sorted(m.aliases.items())),
            "updated": timestamp(m.last_updated_timestamp),
            "created": timestamp(m.creation_timestamp),
            "description": m.description or "",
            "tags": ", ".join(f"{k}={v}" for k, v in sorted(m.tags.items())),
            "notices": len(m.notices),
        })
    columns = ["name", "latest", "aliases", "updated", "description", "tags"]
    if any(r["notices"] for r in rows):
        columns.append("notices")
    emit(rows, columns if fmt == "table" else columns + ["created"], fmt)


@models.command("show")
@click.argument("name")
@format_option()
@pass_context
def show(ctx: Context, name: str, fmt: str) -> None:
    """Show a registered model: description, tags, aliases, every version, and notices.

    \b
    Example:
        gitexp models show nyc-taxi-regressor
    """
    m = ctx.client.get_registered_model(name)
    versions = ctx.client.search_model_versions(f"name = '{_quote(m.name)}'", order_by=["version_number ASC"])
    if fmt == "json":
        doc = m.to_dictionary()
        doc["versions"] = [v.to_dictionary() for v in versions]
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    rows = [
        {"field": "name", "value": m.name},
        {"field": "description", "value": m.description or ""},
        {"field": "created", "value": timestamp(m.creation_timestamp)},
        {"field": "updated", "value": timestamp(m.last_updated_timestamp)},
    ]
    rows += [{"field": f"tags.{k}", "value": v} for k, v in sorted(m.tags.items())]
    rows += [{"field": f"@{a}", "value": f"version {n}"} for a, n in sorted(m.aliases.items())]
    if fmt == "csv":
        emit(rows, ["field", "value"], fmt)
        return
    emit(rows, ["field", "value"], fmt, title=f"Registered model {m.name}")
    vrows = [_version_row(v) for v in versions]
    columns = ["version", "stage", "aliases", "source", "created", "user", "description"]
    if any(r["renumbered_from"] != "" for r in vrows):
        columns.append("renumbered_from")
    emit(vrows, columns, fmt, title="Versions")
    _print_notices(m.notices)


def _quote(name: str) -> str:
    """A name inside a single-quoted filter value."""
    return name.replace("\\", "\\\\").replace("'", "\\'")


@models.command("versions")
@click.argument("name")
@click.option("--stage", default=None, help="Only versions in this stage (None, Staging, Production, Archived).")
@click.option("--filter", "filter_string", default=None, metavar="FILTER",
              help="More conditions, e.g. \"tags.validated = 'yes'\" or \"version_number > 3\".")
@format_option()
@pass_context
def versions(ctx: Context, name: str, stage: str | None, filter_string: str | None, fmt: str) -> None:
    """List the versions of a model, newest first.

    \b
    Example:
        gitexp models versions nyc-taxi-regressor --stage production
    """
    from ..entities.model_registry import ModelVersionStages

    model = ctx.client.get_registered_model(name)
    query = f"name = '{_quote(model.name)}'" + (f" AND {filter_string}" if filter_string else "")
    found: list[ModelVersion] = ctx.client.search_model_versions(query, order_by=["version_number DESC"])
    if stage is not None:
        wanted = ModelVersionStages.canonical(stage)
        found = [v for v in found if v.current_stage == wanted]
    rows = [_version_row(v) for v in found]
    columns = ["version", "stage", "aliases", "source", "run_id", "created", "user", "description", "tags"]
    if any(r["renumbered_from"] != "" for r in rows):
        columns.append("renumbered_from")
    if fmt == "table":
        for r in rows:
            r["run_id"] = r["run_id"][:8]
    emit(rows, columns, fmt)
    if fmt == "table":
        _print_notices(model.notices)


@models.command("register")
@click.argument("model_uri")
@click.argument("name")
@click.option("--tag", "-t", "tags", multiple=True, metavar="KEY=VALUE", help="Version tag (repeatable).")
@click.option("--description", "-d", default=None, help="Description of the new version.")
@pass_context
def register(ctx: Context, model_uri: str, name: str, tags: tuple[str, ...], description: str | None) -> None:
    """Register MODEL_URI as a new version of NAME (the model is created if needed).

    MODEL_URI is runs:/<run id or unique prefix>/<path>, models:/<name>/<version> or a path.
    Prints the new version number.

    \b
    Example:
        gitexp models register runs:/1a2b3c4d/model nyc-taxi-regressor -t validated=no
    """
    from ..fluent_registry import parse_runs_uri, register_with

    if model_uri.startswith("runs:"):
        run_ref, path = parse_runs_uri(model_uri)
        model_uri = f"runs:/{ctx.run_id(run_ref)}/{path}" if path else f"runs:/{ctx.run_id(run_ref)}"
    mv = register_with(ctx.client, model_uri, name, tags=parse_pairs(tags), description=description)
    click.echo(mv.version)


@models.command("transition")
@click.argument("name")
@click.argument("version")
@click.argument("stage")
@click.option("--archive-existing", is_flag=True,
              help="Archive the versions already in STAGE (Staging or Production only).")
@pass_context
def transition(ctx: Context, name: str, version: str, stage: str, archive_existing: bool) -> None:
    """Move a version to a stage: None, Staging, Production or Archived (any case).

    \b
    Example:
        gitexp models transition nyc-taxi-regressor 4 production --archive-existing
    """
    before = {v.version: v.current_stage for v in
              ctx.client.search_model_versions(f"name = '{_quote(name)}'")}
    mv = ctx.client.transition_model_version_stage(name, version, stage, archive_existing)
    click.echo(f"Model {mv.name!r} version {mv.version}: {before.get(mv.version, '?')} -> {mv.current_stage}")
    for v in ctx.client.search_model_versions(f"name = '{_quote(name)}'", order_by=["version_number ASC"]):
        if v.version != mv.version and before.get(v.version) != v.current_stage:
            click.echo(f"Model {v.name!r} version {v.version}: {before.get(v.version)} -> {v.current_stage}")


@models.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", required=False)
@click.option("--delete", "delete_alias", is_flag=True, help="Remove the alias instead of setting it.")
@pass_context
def alias(ctx: Context, name: str, alias: str, version: str | None, delete_alias: bool) -> None:
    """Point ALIAS at VERSION, remove it (--delete), or show where it points (no VERSION).

    Load an aliased version with models:/NAME@ALIAS.

    \b
    Example:
        gitexp models alias nyc-taxi-regressor champion 3
        gitexp models alias nyc-taxi-regressor champion
        gitexp models alias nyc-taxi-regressor champion --delete
    """
    if delete_alias:
        if version is not None:
            raise click.UsageError("--delete takes no VERSION")
        ctx.client.delete_registered_model_alias(name, alias)
        click.echo(f"Removed @{alias} from model {name!r}")
    elif version is None:
        mv = ctx.client.get_model_version_by_alias(name, alias)
        click.echo(f"models:/{mv.name}@{alias} -> version {mv.version} ({mv.current_stage}) {mv.source}")
    else:
        ctx.client.set_registered_model_alias(name, alias, version)
        mv = ctx.client.get_model_version_by_alias(name, alias)
        click.echo(f"models:/{mv.name}@{alias} -> version {mv.version}")


@models.command("history")
@click.argument("name")
@format_option()
@pass_context
def history(ctx: Context, name: str, fmt: str) -> None:
    """Who changed the model, what and when: versions, stages, aliases, descriptions, tags.

    Read from the registry's event files; each row names the commit that added it.
    Changes a merge made moot (e.g. a stage change of a version deleted before it)
    are listed as ignored, with the reason.

    \b
    Example:
        gitexp models history nyc-taxi-regressor
        gitexp models history nyc-taxi-regressor --format csv > audit.csv
    """
    entries = ctx.client.get_registered_model_history(name)
    rows = []
    for e in entries:
        detail = e.detail + (f" [ignored: {e.ignored}]" if e.ignored else "")
        rows.append({
            "time": timestamp(e.timestamp), "timestamp": e.timestamp, "user": e.user, "email": e.email or "",
            "action": e.action, "model": e.model, "version": e.version if e.version is not None else "",
            "detail": detail, "commit": e.commit or "", "event": e.event,
        })
    if fmt == "table":
        for r in rows:
            r["commit"] = r["commit"][:8]
        emit(rows, ["time", "user", "action", "version", "detail", "commit"], fmt, title=f"History of {name}")
    else:
        emit(rows, ["timestamp", "user", "email", "action", "model", "version", "detail", "commit", "event"], fmt)


@models.command("rename")
@click.argument("name")
@click.argument("new_name")
@pass_context
def rename(ctx: Context, name: str, new_name: str) -> None:
    """Rename a registered model (its versions, stages and aliases stay).

    \b
    Example:
        gitexp models rename taxi nyc-taxi-regressor
    """
    ctx.client.rename_registered_model(name, new_name)
    click.echo(f"Renamed model {name!r} -> {new_name!r}")


@models.command("delete")
@click.argument("name")
@click.option("--version", "-v", "versions", multiple=True, metavar="N",
              help="Delete only this version (repeatable); without it the whole model is deleted.")
@pass_context
def delete(ctx: Context, name: str, versions: tuple[str, ...]) -> None:
    """Delete a registered model, or some of its versions.

    Version numbers are never reused. The events stay in git history, and
    `gitexp models history NAME` still shows them.

    \b
    Example:
        gitexp models delete nyc-taxi-regressor --version 2
        gitexp models delete scratch-model
    """
    if versions:
        for v in versions:
            ctx.client.delete_model_version(name, v)
            click.echo(f"Deleted model {name!r} version {v}")
    else:
        ctx.client.delete_registered_model(name)
        click.echo(f"Deleted model {name!r}")


COMMANDS = [models]
