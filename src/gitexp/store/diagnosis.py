"""What `gitexp doctor` checks and repairs in one repository, as data for the CLI to print."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import _git
from ..exceptions import RefLocked
from . import protection
from .interface import RepositoryInfo
from .journal import UNKNOWN

if TYPE_CHECKING:
    from .tracking import GitStore


@dataclass
class Diagnosis:
    repository: RepositoryInfo
    # (lock file, removed, its status described, why it was kept or None)
    locks: list[tuple[str, bool, str, str | None]] = field(default_factory=list)
    checked_out_at: str | None = None
    tip: str | None = None
    commits: int = 0
    runs: int = 0
    experiments: int = 0
    format_version: Any = None
    recovered: list[str] = field(default_factory=list)
    recovery_refused: RefLocked | None = None       # recovery stopped at a lock it must not take
    swept: Any = None                                # protection.sweep's result, if anything ran
    live_journals: list[tuple[str, int]] = field(default_factory=list)    # (run id, pid)
    live_checkpoints: list[str] = field(default_factory=list)              # run ids
    unknown_journals: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, header)
    damaged: list[tuple[str, str, str]] = field(default_factory=list)     # (kind, id, where)


def diagnose(store: GitStore, recover_all: bool = False, progress: Callable[..., Any] | None = None) -> Diagnosis:
    """Clear ref locks whose owner is provably dead, describe the branch, recover the journals of
    dead processes (also those not provably dead with recover_all) and list what is left."""
    repo = store.repo
    report = Diagnosis(store.repository_info())
    for lock in protection.ref_lock_files(repo):
        removed, status = protection.clear_abandoned_lock(lock, repo)
        if status is None:
            continue
        why = None if removed else (
            "a running gitexp process holds it" if status.gitexp_holder else
            f"it is younger than {protection.LOCK_MIN_AGE:g} s" if status.age < protection.LOCK_MIN_AGE else
            "a git process is running in this repository" if status.git_processes else
            "its owner cannot be shown dead on this system (no /proc or flock)")
        report.locks.append((lock, removed, status.describe(), why))
    report.checked_out_at = store.branch.checked_out_at()
    report.tip = tip = store.branch.tip()
    if tip is not None:
        count = _git.run(["rev-list", "--count", tip], cwd=repo.common_dir, check=True)
        report.commits = int(count.stdout.decode().strip())
        report.runs = len(store.branch.run_trees())
        report.experiments = len([e for e in store.branch.experiments().values() if e.name])
        report.format_version = store.branch.format_version(store.branch.tree_of(tip))
    try:
        report.recovered = store.recover_dead_journals(force=True, progress=progress or iter,
                                                       include_unknown=recover_all)
    except RefLocked as exc:
        report.recovery_refused = exc
        return report
    report.swept = store.last_sweep
    report.live_journals = store.live_journals()
    report.live_checkpoints = sorted(store.branch.live_commits())
    report.unknown_journals = sorted((path, header or {}) for path, status, header in store.journals()
                                     if status == UNKNOWN)
    report.damaged = store.damaged()
    return report
