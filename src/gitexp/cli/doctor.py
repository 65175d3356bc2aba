"""`gitexp init` and `gitexp doctor`."""

from __future__ import annotations

import os
from typing import Any

import click

from .. import _git
from ._common import Context, pass_context, progress


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
def init(ctx: Context, path: str | None, branch: str | None) -> None:
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
    tip = client.create_tracking_branch()
    repo = client.get_repository_info()
    click.echo(f"Tracking branch '{repo.branch}' is ready at {tip[:12]} in {repo.path}.")
    click.echo("Next: `import gitexp as mlflow` in your code; share runs with "
               f"`git push origin {repo.branch}` or `gitexp sync`.")


@click.command("doctor")
@click.option("--recover-all", is_flag=True,
              help="Also recover the journals doctor cannot prove dead (written on another machine "
                   "sharing this disk, or before a reboot). Only when none of their processes still runs.")
@pass_context
def doctor(ctx: Context, recover_all: bool) -> None:
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
    if recover_all:
        click.echo("warning: --recover-all recovers journals whose process may still be running on another "
                   "machine; such a run is marked KILLED and what that process logs afterwards is lost.", err=True)
    report = ctx.client.diagnose(
        recover_all, progress=lambda paths: progress(paths, "Recovering journals", min_items=5))
    repo = report.repository
    click.echo(f"repository:      {repo.path}")
    click.echo(f"tracking branch: {repo.branch} ({repo.ref})")
    problems = 0
    for lock, removed, status, why in report.locks:
        if removed:
            click.echo(f"removed stale lock {lock} ({status}): its owner was killed while updating a ref")
        else:
            problems += 1
            click.echo(f"lock file {lock} is in place ({status}); not removed: {why}. If no git or "
                       "gitexp command is running, delete it and run `gitexp doctor` again.")
    where = report.checked_out_at
    if where is not None:
        problems += 1
        click.echo(f"the tracking branch is checked out in {where}: gitexp cannot commit until you check out "
                   "another branch there (journals are kept until then)")
    if report.tip is None:
        click.echo("  no tracking branch yet: it is created by the first run (or `gitexp init`)")
    else:
        click.echo(f"  tip {report.tip[:12]}, {report.commits} commits, {report.runs} runs, "
                   f"{report.experiments} experiments")
        click.echo(f"  storage format {report.format_version} (format 1 runs are read alongside format 2)")
    if report.recovery_refused is not None:
        click.echo(f"journals:        not recovered: {report.recovery_refused.message}")
        raise click.exceptions.Exit(1)
    for run_id in report.recovered:
        click.echo(f"recovered run {run_id} from the journal of a process that died (status KILLED if it was running)")
    swept = report.swept
    if swept is not None and (swept.keeps or swept.pending_refs):
        click.echo(f"removed what killed processes left: {len(swept.keeps)} pack keep file(s), "
                   f"{len(swept.pending_refs)} pending ref(s) of artifacts")
    live = report.live_journals
    if live:
        click.echo(f"{len(live)} run(s) are being written by live processes: "
                   + ", ".join(f"{run_id[:8]} (pid {pid})" for run_id, pid in live))
    checkpoints = report.live_checkpoints
    if checkpoints:
        click.echo(f"{len(checkpoints)} run(s) in progress have checkpoints not yet on the branch "
                   f"(refs/gitexp/live/): {', '.join(r[:8] for r in checkpoints)}")
    _report_unknown_journals(report.unknown_journals)
    _report_damaged(report.damaged, repo.branch)
    if where is not None:
        click.echo("journals:        left for later: they are committed once the branch is not checked out")
    elif not report.recovered:
        click.echo("journals:        nothing to recover")
    if problems:
        click.echo(f"{problems} problem(s) need you: see above")
        raise click.exceptions.Exit(1)
    click.echo("ok")


def _report_unknown_journals(unknown: list[tuple[str, dict[str, Any]]]) -> None:
    import time

    if not unknown:
        return
    click.echo(f"{len(unknown)} journal(s) of processes doctor cannot prove dead (another machine sharing "
               "this disk, or this one before a reboot):")
    for path, header in unknown:
        try:
            age = f"{(time.time() - os.path.getmtime(path)) / 60:.0f} min"
        except OSError:
            age = "?"
        click.echo(f"  run {header.get('run_id', '?')} ({header.get('mode', '?')}), pid {header.get('pid', '?')} "
                   f"on host {header.get('host', '?')}, last written {age} ago: {path}")
    click.echo("  If none of these processes is still running, recover them with `gitexp doctor --recover-all`.")


def _report_damaged(damaged: list[tuple[str, str, str]], branch: str) -> None:
    if not damaged:
        return
    click.echo(f"damaged:         {len(damaged)} run(s) or experiment(s) have files that cannot be read "
               "(the rest of each is shown; searches tag them gitexp.damaged):")
    for kind, ident, where in damaged:
        for part in where.split("; "):
            click.echo(f"  {kind} {ident}: {part}")
    click.echo(f"  Fix or restore those files on the branch '{branch}' "
               f"(`git log -p {branch} -- <file>` shows what they held).")


COMMANDS = [init, doctor]
