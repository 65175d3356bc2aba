"""`gitexp init` and `gitexp doctor`."""

from __future__ import annotations

import os

import click

from .. import _git
from ._common import pass_context, progress


def _local_repo_path(repo: str | None) -> str | None:
    if not repo:
        return None
    if repo.lower().startswith(("http://", "https://")):
        raise click.UsageError(f"gitexp init prepares a local repository, but --repo (or GITEXP_TRACKING_URI) "
                               f"is the server {repo}; give a PATH")
    from ..store.repo import path_from_uri

    return path_from_uri(repo)


@click.command("init")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--branch", "-b", metavar="NAME",
              help="Name of the tracking branch (default gitexp; saved as git config gitexp.branch).")
@pass_context
def init(ctx, path: str | None, branch: str | None) -> None:
    """Prepare a repository for tracking (runs `git init` if needed).

    Creates the tracking branch without touching your working tree, index or HEAD.
    PATH defaults to --repo (or GITEXP_TRACKING_URI), else the current directory.

    \b
    Example:
        gitexp init my-project && cd my-project
        gitexp --repo ../other init
    """
    if path is None:
        path = _local_repo_path(ctx.repo) or "."
    os.makedirs(path, exist_ok=True)
    inside = _git.run(["rev-parse", "--is-inside-work-tree"], cwd=path).returncode == 0
    bare = _git.run(["rev-parse", "--is-bare-repository"], cwd=path).stdout.strip() == b"true"
    if not inside and not bare:
        _git.run(["init", "-q"], cwd=path, check=True)
        click.echo(f"Initialized an empty git repository in {os.path.abspath(path)}")
    if branch:
        _git.run(["config", "gitexp.branch", branch], cwd=path, check=True)
    from ..client import Client, forget_stores

    forget_stores()
    client = Client(os.path.abspath(path))
    store = client._store
    tip = store.branch.ensure()
    click.echo(f"Tracking branch '{store.repo.branch}' is ready at {tip[:12]} in {store.uri}.")
    click.echo("Next: `import gitexp as mlflow` in your code; share runs with "
               f"`git push origin {store.repo.branch}` or `gitexp sync`.")


@click.command("doctor")
@click.option("--recover-all", is_flag=True,
              help="Also recover the journals doctor cannot prove dead (written on another machine "
                   "sharing this disk, or before a reboot). Only when none of their processes still runs.")
@pass_context
def doctor(ctx, recover_all: bool) -> None:
    """Check the tracking branch and recover runs of crashed processes.

    A process killed mid-run leaves a journal; doctor commits what it holds and
    marks the run KILLED. (Any gitexp write in the repository does this too.)
    A journal is recovered only when its process is proven dead: its lock is free
    and it was written on this machine (in any container). Journals of other
    machines are listed; --recover-all recovers them too (never one whose lock
    is held). Doctor also lists runs and experiments with files that cannot be
    read (file and line), which searches tag gitexp.damaged.
    It also removes what killed processes left: ref lock files whose owner is
    provably dead, keep files of packs and pending refs (refs/gitexp/pending/).

    \b
    Example:
        gitexp doctor
        gitexp doctor --recover-all
    """
    from ..exceptions import RefLocked
    from ..store import protection

    store = ctx.client._store
    repo = store.repo
    click.echo(f"repository:      {store.uri}")
    click.echo(f"tracking branch: {repo.branch} ({repo.ref})")
    problems = 0
    for lock in protection.ref_lock_files(repo):
        removed, status = protection.clear_abandoned_lock(lock, repo)
        if status is None:
            continue
        if removed:
            click.echo(f"removed stale lock {lock} ({status.describe()}): its owner was killed while updating a ref")
        else:
            problems += 1
            why = ("a running gitexp process holds it" if status.gitexp_holder else
                   f"it is younger than {protection.LOCK_MIN_AGE:g} s" if status.age < protection.LOCK_MIN_AGE else
                   "a git process is running in this repository" if status.git_processes else
                   "its owner cannot be shown dead on this system (no /proc or flock)")
            click.echo(f"lock file {lock} is in place ({status.describe()}); not removed: {why}. If no git or "
                       "gitexp command is running, delete it and run `gitexp doctor` again.")
    where = store.branch.checked_out_at()
    if where is not None:
        problems += 1
        click.echo(f"the tracking branch is checked out in {where}: gitexp cannot commit until you check out "
                   "another branch there (journals are kept until then)")
    tip = store.branch.tip()
    if tip is None:
        click.echo("  no tracking branch yet: it is created by the first run (or `gitexp init`)")
    else:
        count = _git.run(["rev-list", "--count", tip], cwd=repo.common_dir, check=True).stdout.decode().strip()
        click.echo(f"  tip {tip[:12]}, {count} commits, {len(store.branch.run_trees())} runs, "
                   f"{len([e for e in store.branch.experiments().values() if e.name])} experiments")
        click.echo(f"  storage format {store.branch.format_version(store.branch.tree_of(tip))} "
                   "(format 1 runs are read alongside format 2)")
    if recover_all:
        click.echo("warning: --recover-all recovers journals whose process may still be running on another "
                   "machine; such a run is marked KILLED and what that process logs afterwards is lost.", err=True)
    try:
        recovered = store.recover_dead_journals(
            force=True, progress=lambda paths: progress(paths, "Recovering journals", min_items=5),
            include_unknown=recover_all)
    except RefLocked as exc:
        click.echo(f"journals:        not recovered: {exc.message}")
        raise click.exceptions.Exit(1)
    for run_id in recovered:
        click.echo(f"recovered run {run_id} from the journal of a process that died (status KILLED if it was running)")
    swept = store.last_sweep
    if swept is not None and (swept.keeps or swept.pending_refs):
        click.echo(f"removed what killed processes left: {len(swept.keeps)} pack keep file(s), "
                   f"{len(swept.pending_refs)} pending ref(s) of artifacts")
    live = store.live_journals()
    if live:
        click.echo(f"{len(live)} run(s) are being written by live processes: "
                   + ", ".join(f"{run_id[:8]} (pid {pid})" for run_id, pid in live))
    checkpoints = store.branch.live_commits()
    if checkpoints:
        click.echo(f"{len(checkpoints)} run(s) in progress have checkpoints not yet on the branch "
                   f"(refs/gitexp/live/): {', '.join(r[:8] for r in sorted(checkpoints))}")
    _report_unknown_journals(store)
    _report_damaged(store)
    if where is not None:
        click.echo("journals:        left for later: they are committed once the branch is not checked out")
    elif not recovered:
        click.echo("journals:        nothing to recover")
    if problems:
        click.echo(f"{problems} problem(s) need you: see above")
        raise click.exceptions.Exit(1)
    click.echo("ok")


def _report_unknown_journals(store) -> None:
    import time

    from ..store.journal import UNKNOWN

    unknown = [(path, header) for path, status, header in store.journals() if status == UNKNOWN]
    if not unknown:
        return
    click.echo(f"{len(unknown)} journal(s) of processes doctor cannot prove dead (another machine sharing "
               "this disk, or this one before a reboot):")
    for path, header in sorted(unknown):
        header = header or {}
        try:
            age = f"{(time.time() - os.path.getmtime(path)) / 60:.0f} min"
        except OSError:
            age = "?"
        click.echo(f"  run {header.get('run_id', '?')} ({header.get('mode', '?')}), pid {header.get('pid', '?')} "
                   f"on host {header.get('host', '?')}, last written {age} ago: {path}")
    click.echo("  If none of these processes is still running, recover them with `gitexp doctor --recover-all`.")


def _report_damaged(store) -> None:
    damaged = store.damaged()
    if not damaged:
        return
    click.echo(f"damaged:         {len(damaged)} run(s) or experiment(s) have files that cannot be read "
               "(the rest of each is shown; searches tag them gitexp.damaged):")
    for kind, ident, where in damaged:
        for part in where.split("; "):
            click.echo(f"  {kind} {ident}: {part}")
    click.echo(f"  Fix or restore those files on the branch '{store.repo.branch}' "
               f"(`git log -p {store.repo.branch} -- <file>` shows what they held).")


COMMANDS = [init, doctor]
