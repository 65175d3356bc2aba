"""`gitexp init` and `gitexp doctor`."""

from __future__ import annotations

import os

import click

from ..store.repo import git
from ._common import pass_context, progress


@click.command("init")
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--branch", "-b", metavar="NAME",
              help="Name of the tracking branch (default gitexp; saved as git config gitexp.branch).")
@pass_context
def init(ctx, path: str, branch: str | None) -> None:
    """Prepare a repository for tracking (runs `git init` if needed).

    Creates the tracking branch without touching your working tree, index or HEAD.

    \b
    Example:
        gitexp init my-project && cd my-project
    """
    os.makedirs(path, exist_ok=True)
    inside = git(["rev-parse", "--is-inside-work-tree"], cwd=path, check=False).returncode == 0
    bare = git(["rev-parse", "--is-bare-repository"], cwd=path, check=False).stdout.strip() == b"true"
    if not inside and not bare:
        git(["init", "-q"], cwd=path)
        click.echo(f"Initialized an empty git repository in {os.path.abspath(path)}")
    if branch:
        git(["config", "gitexp.branch", branch], cwd=path)
    from ..client import Client, forget_stores

    forget_stores()
    client = Client(os.path.abspath(path))
    store = client._store
    tip = store.branch.ensure()
    click.echo(f"Tracking branch '{store.repo.branch}' is ready at {tip[:12]} in {store.uri}.")
    click.echo("Next: `import gitexp as mlflow` in your code; share runs with "
               f"`git push origin {store.repo.branch}` or `gitexp sync`.")


@click.command("doctor")
@pass_context
def doctor(ctx) -> None:
    """Check the tracking branch and recover runs of crashed processes.

    A process killed mid-run leaves a journal; doctor commits what it holds and
    marks the run KILLED. (Any gitexp write in the repository does this too.)

    \b
    Example:
        gitexp doctor
    """
    store = ctx.client._store
    repo = store.repo
    click.echo(f"repository:      {store.uri}")
    click.echo(f"tracking branch: {repo.branch} ({repo.ref})")
    tip = store.branch.tip()
    if tip is None:
        click.echo("  no tracking branch yet: it is created by the first run (or `gitexp init`)")
    else:
        count = git(["rev-list", "--count", tip], cwd=repo.common_dir).stdout.decode().strip()
        click.echo(f"  tip {tip[:12]}, {count} commits, {len(store.branch.run_trees())} runs, "
                   f"{len([e for e in store.branch.experiments().values() if e.name])} experiments")
        click.echo(f"  storage format {store.branch.format_version(store.branch.tree_of(tip))} "
                   "(format 1 runs are read alongside format 2)")
    recovered = store.recover_dead_journals(
        force=True, progress=lambda paths: progress(paths, "Recovering journals", min_items=5))
    for run_id in recovered:
        click.echo(f"recovered run {run_id} from the journal of a process that died (status KILLED if it was running)")
    live = store.live_journals()
    if live:
        click.echo(f"{len(live)} run(s) are being written by live processes: "
                   + ", ".join(f"{run_id[:8]} (pid {pid})" for run_id, pid in live))
    checkpoints = store.branch.live_commits()
    if checkpoints:
        click.echo(f"{len(checkpoints)} run(s) in progress have checkpoints not yet on the branch "
                   f"(refs/gitexp/live/): {', '.join(r[:8] for r in sorted(checkpoints))}")
    if not recovered:
        click.echo("journals:        nothing to recover")
    click.echo("ok")


COMMANDS = [init, doctor]
