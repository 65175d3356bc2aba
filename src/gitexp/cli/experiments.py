"""`gitexp experiments ...`"""

from __future__ import annotations

import click

from ..entities import ViewType
from ._common import Context, emit, format_option, parse_pairs, pass_context, timestamp


@click.group("experiments")
def experiments() -> None:
    """List, create, rename, delete and restore experiments.

    \b
    Example:
        gitexp experiments create apples --tag team=stores-ml
        gitexp experiments list
    """


@experiments.command("list")
@click.option("--all", "view", flag_value="all", help="Include deleted experiments.")
@click.option("--deleted", "view", flag_value="deleted_only", help="Only deleted experiments.")
@format_option()
@pass_context
def list_experiments(ctx: Context, view: str | None, fmt: str) -> None:
    """List experiments, newest first.

    \b
    Example:
        gitexp experiments list --all --format csv
    """
    view_type = ViewType.from_string(view) if view else ViewType.ACTIVE_ONLY
    rows = []
    for e in ctx.client.search_experiments(view_type=view_type, max_results=None):
        rows.append({
            "experiment_id": e.experiment_id,
            "name": e.name,
            "lifecycle_stage": e.lifecycle_stage,
            "created": timestamp(e.creation_time),
            "tags": ", ".join(f"{k}={v}" for k, v in sorted(e.tags.items())),
        })
    columns = ["experiment_id", "name", "created", "tags"]
    if view:
        columns.insert(2, "lifecycle_stage")
    emit(rows, columns, fmt)


@experiments.command("create")
@click.argument("name")
@click.option("--tag", "-t", "tags", multiple=True, metavar="KEY=VALUE", help="Experiment tag (repeatable).")
@click.option("--description", "-d", help="Stored as the tag mlflow.note.content.")
@pass_context
def create(ctx: Context, name: str, tags: tuple[str, ...], description: str | None) -> None:
    """Create an experiment and print its id.

    \b
    Example:
        gitexp experiments create nyc-taxi -t project=taxi -d "Trip duration models"
    """
    tag_dict = parse_pairs(tags)
    if description:
        tag_dict["mlflow.note.content"] = description
    click.echo(ctx.client.create_experiment(name, tags=tag_dict))


@experiments.command("rename")
@click.argument("experiment")
@click.argument("new_name")
@pass_context
def rename(ctx: Context, experiment: str, new_name: str) -> None:
    """Rename an experiment (given by id or name).

    \b
    Example:
        gitexp experiments rename nyc-taxi nyc-taxi-2021
    """
    exp = ctx.experiment(experiment)
    ctx.client.rename_experiment(exp.experiment_id, new_name)
    click.echo(f"Renamed experiment {exp.experiment_id}: {exp.name!r} -> {new_name!r}")


@experiments.command("delete")
@click.argument("experiment")
@pass_context
def delete(ctx: Context, experiment: str) -> None:
    """Delete an experiment (its runs count as deleted too; restore brings them back).

    \b
    Example:
        gitexp experiments delete scratch
    """
    exp = ctx.experiment(experiment)
    ctx.client.delete_experiment(exp.experiment_id)
    click.echo(f"Deleted experiment {exp.experiment_id} ({exp.name!r})")


@experiments.command("restore")
@click.argument("experiment")
@pass_context
def restore(ctx: Context, experiment: str) -> None:
    """Restore a deleted experiment.

    \b
    Example:
        gitexp experiments restore scratch
    """
    exp = ctx.experiment(experiment)
    ctx.client.restore_experiment(exp.experiment_id)
    click.echo(f"Restored experiment {exp.experiment_id} ({exp.name!r})")


COMMANDS = [experiments]
