"""Sharing the tracking branch with a remote: fetch, merge, push.

The one implementation behind `gitexp pull/push/sync`, `Client.pull/push/sync`
and the pre-push hook.

Merging never needs a work tree.  When one side contains the other the local
ref fast-forwards; otherwise `git merge-tree --write-tree` (git >= 2.38, with an
in-process three-way tree merge for older git) builds the merged tree, the merge
commit is written in-process, and the local ref moves by the same
compare-and-swap every gitexp writer uses, retried when a local run committed
in between.  By the layout's rule -- one writer per file, every later change a
uniquely named event file -- the merge has no conflicts; if hand edits make one
anyway, nothing moves and MergeConflict names the paths.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from .. import _git as git
from ..exceptions import MergeConflict, SyncError
from .objects import MODE_TREE, TreeEntry

if TYPE_CHECKING:
    from .objects import ObjectDB
    from .repo import Repository
    from .tracking import GitStore

PUSH_ATTEMPTS = 20
FETCH_ATTEMPTS = 5
MERGE_ATTEMPTS = 100
# Rejections that mean "someone else moved the remote branch first": pull, merge, push again.
_RACE_REASONS = ("non-fast-forward", "fetch first", "failed to update ref", "cannot lock ref",
                 "failed to lock", "stale info", "incorrect old value", "already exists")
_SCP_LIKE = re.compile(r"^[\w.\-]+@[\w.\-]+:")


# -- remotes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Remote:
    """Where to sync with: a configured remote (with a remote-tracking ref) or a bare URL/path."""

    name: str
    url: str
    tracking_ref: str | None


def _git(repo: Repository, args: list[str], git_dir: str | None = None) -> subprocess.CompletedProcess[bytes]:
    return git.run(args, git_dir=git_dir or repo.common_dir, cwd=_cwd(repo))


def _cwd(repo: Repository) -> str:
    # Relative remote URLs ("../shared.git") are relative to where git runs: the work tree.
    return repo.work_tree or repo.git_dir


def _config(repo: Repository, key: str, git_dir: str | None = None) -> str | None:
    result = _git(repo, ["config", "--get", key], git_dir)
    value = result.stdout.decode().strip()
    return value or None


def _remote_names(repo: Repository) -> list[str]:
    return _git(repo, ["remote"]).stdout.decode().split()


def default_remote(repo: Repository) -> str:
    """The current branch's upstream remote, else `origin`."""
    head = _git(repo, ["symbolic-ref", "-q", "--short", "HEAD"], repo.git_dir).stdout.decode().strip()
    if head:
        upstream = _config(repo, f"branch.{head}.remote", repo.git_dir)
        if upstream and upstream != ".":
            return upstream
    names = _remote_names(repo)
    if "origin" in names:
        return "origin"
    where = f"the current branch {head!r} has no upstream" if head else "HEAD is not on a branch"
    known = f"; this repository's remotes are: {', '.join(names)}" if names else ""
    raise SyncError(
        f"No remote to sync the tracking branch with: {where} and there is no remote named 'origin'{known}. "
        "Name one (`gitexp sync REMOTE`) or add one: `git remote add origin <url>`.",
        remote=None,
    )


def _looks_like_url(text: str) -> bool:
    return "://" in text or bool(_SCP_LIKE.match(text)) or os.path.isdir(text) or text.startswith((".", "/"))


def resolve_remote(repo: Repository, remote: str | None = None) -> Remote:
    """A configured remote by name (default: see default_remote), or a URL / path of a repository."""
    name = remote or default_remote(repo)
    url = _config(repo, f"remote.{name}.url")
    if url is not None:
        return Remote(name, url, f"refs/remotes/{name}/{repo.branch}")
    if _looks_like_url(name):
        return Remote(name, name, None)
    names = _remote_names(repo)
    raise SyncError(
        f"Unknown remote {name!r}: it is neither a remote of this repository "
        f"({', '.join(names) if names else 'it has none'}) nor a URL or path of a repository. "
        "Check `git remote -v`, or add it with `git remote add NAME URL`.",
        remote=name,
    )


# -- running git with optional progress ----------------------------------------------------------
def want_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _run_transfer(repo: Repository, args: list[str], progress: bool) -> tuple[int, str, str]:
    """Run a fetch or push; with progress, git's progress lines go to stderr as they come."""
    if not progress:
        result = git.run(args, git_dir=repo.common_dir, cwd=_cwd(repo))
        return result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    proc = git.start(args, git_dir=repo.common_dir, cwd=_cwd(repo))
    out: list[bytes] = []
    stdout = git.pipe(proc.stdout)
    stderr = cast(io.BufferedReader, proc.stderr)  # a pipe, buffered (Popen's default bufsize)
    reader = threading.Thread(target=lambda: out.append(stdout.read()), daemon=True)
    reader.start()
    err = bytearray()
    sink = getattr(sys.stderr, "buffer", None)
    while True:
        chunk = stderr.read1(4096)
        if not chunk:
            break
        err += chunk
        try:
            if sink is not None:
                sink.write(chunk)
                sink.flush()
            else:
                sys.stderr.write(chunk.decode(errors="replace"))
                sys.stderr.flush()
        except (OSError, ValueError):
            pass
    reader.join()
    proc.wait()
    return proc.returncode, b"".join(out).decode(errors="replace"), err.decode(errors="replace")


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:", "remote: error", "ERROR"))]
    return " ".join(errors or lines[-3:]) or "git gave no message"


# -- fetching ------------------------------------------------------------------------------------
@contextlib.contextmanager
def fetched(store: GitStore, remote: Remote, progress: bool) -> Iterator[str | None]:
    """Fetch the remote's tracking branch; yields its commit, or None if the remote has none yet."""
    repo = store.repo
    branch = repo.branch
    target = remote.tracking_ref or f"refs/gitexp/fetch/{os.getpid()}-{secrets.token_hex(4)}"
    args = ["fetch", "--no-tags", "--no-write-fetch-head", "--recurse-submodules=no"]
    args += ["--progress"] if progress else []
    args += [remote.name, f"+refs/heads/{branch}:{target}"]
    try:
        for attempt in range(FETCH_ATTEMPTS):
            code, _out, err = _run_transfer(repo, args, progress)
            if code == 0:
                break
            if "couldn't find remote ref" in err:
                yield None
                return
            if "cannot lock ref" in err and attempt + 1 < FETCH_ATTEMPTS:
                time.sleep(random.uniform(0.01, 0.1 * (attempt + 1)))  # another fetch of this repo
                continue
            raise SyncError(
                f"Could not fetch the tracking branch {branch!r} from {remote.name!r} ({remote.url}): "
                f"{_last_error(err)}",
                remote=remote.name,
            )
        yield store.branch.refs.read(target)
    finally:
        if remote.tracking_ref is None:
            _git(repo, ["update-ref", "-d", target])


# -- merging -------------------------------------------------------------------------------------
def is_ancestor(repo: Repository, ancestor: str, descendant: str) -> bool:
    result = _git(repo, ["merge-base", "--is-ancestor", ancestor, descendant])
    if result.returncode not in (0, 1):
        raise SyncError(f"Could not compare commits {ancestor[:12]} and {descendant[:12]}: "
                        f"{result.stderr.decode(errors='replace').strip()}")
    return result.returncode == 0


def merge_trees(store: GitStore, ours: str, theirs: str, label: str) -> str:
    """The tree of merging commit `theirs` into `ours`; MergeConflict if paths conflict."""
    result = _git(store.repo, ["merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs])
    if result.returncode in (0, 1) and result.stdout:
        lines = result.stdout.decode(errors="surrogateescape").splitlines()
        if result.returncode == 0:
            return lines[0].strip()
        raise _conflict(store, label, sorted({p for p in lines[1:] if p}))
    stderr = result.stderr.decode(errors="replace")
    if "--write-tree" in stderr or "usage:" in stderr or result.returncode == 129:
        return merge_trees_in_process(store, ours, theirs, label)  # git older than 2.38
    raise SyncError(f"git merge-tree failed merging {label}: {stderr.strip()}")


def merge_trees_in_process(store: GitStore, ours: str, theirs: str, label: str) -> str:
    """A three-way merge of trees without rename detection: what the layout guarantees is enough.

    Each path is taken from the side that changed it; a path both sides changed to
    different contents is a conflict.  Only subtrees that differ are read, and the
    new trees are written as one pack.  Several merge bases (criss-cross merges,
    common when many clones merge each other's tips) are first merged into one
    virtual base, as git's recursive strategies do.
    """
    branch = store.branch
    with branch.odb.batch():
        base_tree = _base_tree(store, ours, theirs)
        conflicts: list[str] = []
        tree = _merge_tree_level(branch.odb, base_tree, branch.tree_of(ours), branch.tree_of(theirs), "",
                                 conflicts)
        if conflicts:
            raise _conflict(store, label, conflicts)
        return tree or branch.odb.write_tree([])


def _base_tree(store: GitStore, ours: str, theirs: str, depth: int = 0) -> str | None:
    bases = _git(store.repo, ["merge-base", "--all", ours, theirs]).stdout.decode().split()
    if not bases:
        return None
    branch = store.branch
    tree = branch.tree_of(bases[0])
    for other in bases[1:]:
        below = _base_tree(store, bases[0], other, depth + 1) if depth < 8 else None
        ignored: list[str] = []  # a conflict inside a virtual base keeps the first side, like git
        tree = _merge_tree_level(branch.odb, below, tree, branch.tree_of(other), "", ignored) \
            or branch.odb.write_tree([])
    return tree


def _merge_tree_level(odb: ObjectDB, base: str | None, ours: str | None, theirs: str | None, prefix: str,
                      conflicts: list[str]) -> str | None:
    if ours == theirs or theirs == base:
        return ours
    if ours == base:
        return theirs
    b, o, t = odb.tree_dict(base), odb.tree_dict(ours), odb.tree_dict(theirs)
    merged: list[TreeEntry] = []
    for name in sorted(set(o) | set(t)):
        eb, eo, et = b.get(name), o.get(name), t.get(name)
        if eo == et or et == eb:
            chosen = eo
        elif eo == eb:
            chosen = et
        elif eo is not None and et is not None and eo.is_tree and et.is_tree:
            sub = _merge_tree_level(odb, eb.sha if eb is not None and eb.is_tree else None,
                                    eo.sha, et.sha, f"{prefix}{name}/", conflicts)
            chosen = TreeEntry(MODE_TREE, name, sub) if sub else None
        else:
            conflicts.append(prefix + name)
            chosen = eo
        if chosen is not None:
            merged.append(chosen)
    return odb.write_tree(merged) if merged else None


def _conflict(store: GitStore, label: str, paths: list[str]) -> MergeConflict:
    shown = ", ".join(paths[:8]) + (f" and {len(paths) - 8} more" if len(paths) > 8 else "")
    branch = store.repo.branch
    return MergeConflict(
        f"Cannot merge {label} into {branch!r}: both sides changed {len(paths)} path(s) differently: {shown}. "
        "gitexp never writes one file from two clones, so these were edited by hand or by another tool. "
        f"Your branch is unchanged. Resolve in a scratch worktree: `git worktree add /tmp/gitexp-merge {branch}`, "
        f"then `git merge {label}` there, fix and commit.",
        paths=paths,
    )


def merge_into_local(store: GitStore, other: str, label: str) -> tuple[str, str | None, str]:
    """Bring commit `other` into the local tracking branch: (action, before, after).

    action is "up to date", "created", "fast-forward" or "merged".
    """
    with store.branch.odb.protected():  # the merge's objects are kept until the ref has them
        return _merge_into_local(store, other, label)


def _merge_into_local(store: GitStore, other: str, label: str) -> tuple[str, str | None, str]:
    branch = store.branch
    ref = branch.ref
    check = branch.refuse_if_checked_out
    before: str | None = None
    for attempt in range(MERGE_ATTEMPTS):
        local = branch.refs.read(ref)
        if before is None:
            before = local
        ident = branch._ident()
        if local is None:
            if branch.refs.compare_and_swap(ref, other, None, f"gitexp: pull {label}", ident, check=check):
                return "created", None, other
            continue
        if local == other or is_ancestor(store.repo, other, local):
            return "up to date", before, local
        if is_ancestor(store.repo, local, other):
            if branch.refs.compare_and_swap(ref, other, local, f"gitexp: fast-forward to {label}", ident,
                                            check=check):
                return "fast-forward", before, other
            continue
        tree = merge_trees(store, local, other, label)
        message = f"gitexp: merge {label}\n\nMerged {other} into {ref}.\n"
        commit = branch.odb.write_commit(tree, [local, other], message, ident, ident)
        branch.odb.flush()
        if branch.refs.compare_and_swap(ref, commit, local, f"gitexp: merge {label}", ident, check=check):
            return "merged", before, commit
        time.sleep(random.uniform(0, min(0.002 * (attempt + 1), 0.05)))  # a local run committed: redo
    raise SyncError(f"Could not merge {label}: local writers kept moving {ref} for {MERGE_ATTEMPTS} attempts")


# -- results ---------------------------------------------------------------------------------------
@dataclass
class PullResult:
    remote: str
    branch: str
    action: str                 # "up to date", "created", "fast-forward", "merged", "remote has no tracking branch"
    before: str | None = None   # local tip before
    after: str | None = None    # local tip after
    remote_tip: str | None = None
    new_runs: int = 0

    def __str__(self) -> str:
        if self.remote_tip is None:
            return f"{self.remote} has no {self.branch!r} branch yet: nothing to pull"
        span = f"{(self.before or '')[:9]}..{(self.after or '')[:9]}" if self.before else (self.after or "")[:9]
        runs = f", {self.new_runs} new run(s)" if self.new_runs else ""
        if self.action == "up to date":
            return f"{self.branch} is up to date with {self.remote}"
        return f"Pulled {self.remote}/{self.branch}: {self.action} {span}{runs}"


@dataclass
class PushResult:
    remote: str
    branch: str
    action: str                 # "pushed", "up to date", "nothing to push"
    tip: str | None = None
    attempts: int = 0
    merges: list[PullResult] = field(default_factory=list)

    def __str__(self) -> str:
        if self.action == "nothing to push":
            return f"No tracking branch {self.branch!r} here yet: nothing to push"
        if self.action == "up to date":
            return f"{self.remote} already has {self.branch} at {(self.tip or '')[:9]}"
        retried = f" after merging {len(self.merges)} newer remote tip(s)" if self.merges else ""
        return f"Pushed {self.branch} to {self.remote} at {(self.tip or '')[:9]}{retried}"


@dataclass
class SyncResult:
    pull: PullResult
    push: PushResult

    def __str__(self) -> str:
        return f"{self.pull}\n{self.push}"


# -- the operations --------------------------------------------------------------------------------
def _count_new_runs(store: GitStore, before: str | None, after: str | None) -> int:
    if after is None or after == before:
        return 0
    branch = store.branch
    old = set(branch.run_trees(branch.tree_of(before))) if before else set()
    return len(set(branch.run_trees(branch.tree_of(after))) - old)


def pull(store: GitStore, remote: str | None = None, progress: bool | None = None,
         flush: bool = True) -> PullResult:
    """Fetch the remote's tracking branch and merge it into the local one."""
    target = resolve_remote(store.repo, remote)
    if flush:
        store.flush()
    branch_name = store.repo.branch
    label = f"{target.name}/{branch_name}" if target.tracking_ref else f"{branch_name} of {target.url}"
    with fetched(store, target, want_progress(progress)) as remote_tip:
        if remote_tip is None:
            local = store.branch.refs.read(store.branch.ref)
            return PullResult(target.name, branch_name, "remote has no tracking branch", local, local, None)
        action, before, after = merge_into_local(store, remote_tip, label)
    return PullResult(target.name, branch_name, action, before, after, remote_tip,
                      _count_new_runs(store, before, after))


def _push_status(stdout: str, ref: str) -> tuple[str, str] | None:
    """(flag, summary) of our ref in `git push --porcelain` output."""
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1].endswith(":" + ref):
            return parts[0], parts[2]
    return None


def push(store: GitStore, remote: str | None = None, progress: bool | None = None,
         no_verify: bool = False, attempts: int = PUSH_ATTEMPTS) -> PushResult:
    """Push the tracking branch; when another clone pushed first, pull, merge and push again."""
    target = resolve_remote(store.repo, remote)
    store.flush()
    show = want_progress(progress)
    branch_name = store.repo.branch
    ref = store.branch.ref
    if store.branch.tip() is None:
        return PushResult(target.name, branch_name, "nothing to push")
    merges: list[PullResult] = []
    args = ["push", "--porcelain"] + (["--no-verify"] if no_verify else []) + (["--progress"] if show else [])
    args += [target.name, f"{ref}:{ref}"]
    for attempt in range(1, attempts + 1):
        tip = store.branch.refs.read(ref)
        code, out, err = _run_transfer(store.repo, args, show)
        status = _push_status(out, ref)
        if status is not None and status[0] in (" ", "+", "*", "-", "="):
            action = "up to date" if status[0] == "=" else "pushed"
            return PushResult(target.name, branch_name, action, tip, attempt, merges)
        if status is None or status[0] != "!":
            raise SyncError(f"Could not push {branch_name!r} to {target.name!r} ({target.url}): {_last_error(err)}",
                            remote=target.name)
        reason = status[1]
        if not any(r in reason for r in _RACE_REASONS):
            raise SyncError(
                f"{target.name!r} refused the tracking branch {branch_name!r}: {reason} {_last_error(err)}. "
                "If the branch is protected on the server, allow pushes to it (it only ever moves forward).",
                remote=target.name, reason=reason,
            )
        if attempt == attempts:
            break
        # Another clone won the race: wait a little (more each time), merge its tip, try again.
        time.sleep(random.uniform(0, min(0.05 * 2 ** min(attempt, 6), 2.0)))
        merges.append(pull(store, target.name, progress=show, flush=False))
    raise SyncError(
        f"Could not push {branch_name!r} to {target.name!r}: other clones pushed first {attempts} times in a row. "
        "Your runs are safe locally (merged with theirs); run `gitexp push` again.",
        remote=target.name,
    )


def sync(store: GitStore, remote: str | None = None, progress: bool | None = None) -> SyncResult:
    """Pull then push."""
    pulled = pull(store, remote, progress)
    pushed = push(store, remote, progress)
    return SyncResult(pulled, pushed)
