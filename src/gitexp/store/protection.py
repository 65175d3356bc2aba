"""Keeping what gitexp wrote safe from git's own housekeeping, and cleaning up after the dead.

Three mechanisms (docs/ARCHITECTURE.md, "Protecting objects" and "Ref locks"):

* **Kept packs** (`ObjectDB.protected`): objects of a commit in progress sit in packs
  with a ``.keep`` file until the ref update that makes them reachable.
* **Pending refs**: artifact blobs are written when logged and linked only by the
  session's next commit.  Meanwhile ``refs/gitexp/pending/<session>`` reaches them:
  a chain of trees, one per logging call, each holding that call's blobs (entries
  named by blob id) and the previous tree as ``prev``.  The session deletes the ref
  right after the commit that links them; `git gc --prune=now` never prunes what a
  ref reaches.
* **Ref locks** carry an flock while gitexp holds them; `lock_status` decides whether
  a lock's owner is provably dead (`gitexp doctor` then removes it).

`sweep` removes what dead processes left: keep files naming a dead process on this
host, and pending refs of sessions whose journal is gone (recovered or closed).  It
runs after journal recovery, so a dead session's blobs stay reachable until its
journal is committed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..exceptions import RefLocked, StoreError
from .objects import KEEP_MAGIC, MODE_BLOB, MODE_TREE, TreeEntry

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]  # no fcntl (Windows): locking falls back

if TYPE_CHECKING:
    from .branch import TrackingBranch
    from .journal import Session
    from .repo import Repository

PENDING_PREFIX = "refs/gitexp/pending/"
# gitexp holds a ref lock for microseconds and git for well under a second (git gives up
# waiting for one after 100 ms): a lock this old that no live gitexp holds is abandoned,
# unless a git process is running in the repository.
LOCK_MIN_AGE = 10.0
_log = logging.getLogger("gitexp")


# -- pending artifact blobs ---------------------------------------------------------------------
def prepare_pending(branch: TrackingBranch, session: Session, shas: list[str]
                    ) -> tuple[str, str | None, list[str], str]:
    """Write (inside the caller's `protected()` and `batch()`) the tree that makes `shas`
    reachable from the session's pending ref; returns (session id, parent, shas, tree)."""
    parent = session.held
    return session.id, parent, shas, _pending_tree(branch, session, shas, parent)


def _pending_tree(branch: TrackingBranch, session: Session, shas: list[str], parent: str | None) -> str:
    """A tree of the blobs (named by id), the previous pending tree as `prev`, and an empty
    file naming the session (so two sessions never write the same tree, hence the same pack).
    Trees, not commits: see branch.LIVE_PREFIX on commit-graphs."""
    odb = branch.odb
    entries = [TreeEntry(MODE_BLOB, sha, sha) for sha in sorted(set(shas))]
    entries.append(TreeEntry(MODE_BLOB, f"session-{session.id}", odb.write_blob(b"")))
    if parent:
        entries.append(TreeEntry(MODE_TREE, "prev", parent))
    return odb.write_tree(entries)


def hold_pending(branch: TrackingBranch, session: Session,
                 prepared: tuple[str, str | None, list[str], str]) -> None:
    """Point the session's pending ref at a prepared tree (with `session.lock` held, inside
    the `protected()` block that wrote it)."""
    if session.closed:
        raise RuntimeError(f"session for run {session.run_id} is closed")
    session_id, parent, shas, tree = prepared
    if session_id != session.id or parent != session.held:  # the ref moved (a commit, another thread)
        with branch.odb.batch():
            tree = _pending_tree(branch, session, shas, session.held)
    ref = PENDING_PREFIX + session.id
    branch.odb.flush()
    if not branch.refs.compare_and_swap(ref, tree, session.held, "gitexp: pending artifacts",
                                        branch._ident(), reflog=False):
        raise StoreError(f"{ref} was moved by another process; the artifact was not logged. "
                         "Log it again.")
    session.held = tree


def release_pending(branch: TrackingBranch, session: Session) -> None:
    """Drop the session's pending ref once a commit links everything it held."""
    if session.held is None:
        return
    try:
        branch.refs.delete(PENDING_PREFIX + session.id, session.held)
    except RefLocked as exc:  # kept: the next commit tries again, the sweep after the session ends
        _log.warning("gitexp: %s", exc)
        return
    session.held = None


# -- what dead processes left behind ----------------------------------------------------------------
def _process_alive(pid: int, start: str | None) -> bool:
    from .journal import process_alive

    return process_alive(pid, start)


def keep_owner(text: str) -> tuple[int, str | None, str] | None:
    """(pid, start, host) of a keep file gitexp wrote, else None."""
    if not text.startswith(KEEP_MAGIC):
        return None
    fields = text.split()
    try:
        info = dict(zip(fields[1::2], fields[2::2], strict=False))
        return int(info["pid"]), (None if info.get("start", "-") == "-" else info["start"]), info.get("host", "")
    except (KeyError, ValueError):
        return None


def dead_keeps(objects_dir: str) -> list[str]:
    """Keep files written by gitexp processes of this host that are no longer running."""
    pack_dir = os.path.join(objects_dir, "pack")
    try:
        names = os.listdir(pack_dir)
    except FileNotFoundError:
        return []
    host = socket.gethostname()
    dead = []
    for name in names:
        if not name.endswith(".keep"):
            continue
        path = os.path.join(pack_dir, name)
        try:
            with open(path, "rb") as fh:
                owner = keep_owner(fh.read(256).decode("utf-8", "replace"))
        except OSError:
            continue
        if owner is None or owner[2] != host:
            continue  # git's own, a user's, or another machine's (not ours to judge)
        if not _process_alive(owner[0], owner[1]):
            dead.append(path)
    return dead


def journal_sessions(journal_dir: str) -> set[str]:
    """Session ids of every journal on disk (live, dead or being recovered)."""
    try:
        names = os.listdir(journal_dir)
    except FileNotFoundError:
        return set()
    return {parts[1] for parts in (name.split(".") for name in names) if len(parts) > 2}


@dataclass
class Swept:
    pending_refs: list[str] = field(default_factory=list)
    keeps: list[str] = field(default_factory=list)


def sweep(branch: TrackingBranch, journal_dir: str) -> Swept:
    """Remove keep files of dead processes and pending refs of sessions without a journal.

    Run after journal recovery: a dead session's pending ref keeps its blobs reachable
    until its journal (which names them) is committed and removed."""
    swept = Swept()
    refs = branch.refs.list_refs(PENDING_PREFIX)  # before listing journals: see below
    if refs:
        # A session creates its journal before its first pending ref and deletes the ref
        # before its journal, so a ref listed first whose journal is gone afterwards is orphaned.
        sessions = journal_sessions(journal_dir)
        for ref, sha in refs.items():
            if ref[len(PENDING_PREFIX):] in sessions:
                continue
            try:
                if branch.refs.delete(ref, sha):
                    swept.pending_refs.append(ref)
            except RefLocked as exc:
                _log.warning("gitexp: %s", exc)
    for keep in dead_keeps(branch.odb.objects_dir):
        try:
            os.unlink(keep)
            swept.keeps.append(keep)
        except FileNotFoundError:
            pass
    return swept


# -- ref locks --------------------------------------------------------------------------------------
@dataclass
class LockStatus:
    path: str
    age: float
    gitexp_holder: bool | None     # a live gitexp process holds it (None: cannot tell)
    git_processes: list[int] | None  # git processes running in the repository (None: cannot tell)

    @property
    def abandoned(self) -> bool:
        """Provably abandoned: see `lock_status`."""
        return (self.gitexp_holder is False and self.age >= LOCK_MIN_AGE
                and self.git_processes is not None and not self.git_processes)

    def describe(self) -> str:
        parts = [f"{self.age:.0f} s old"]
        if self.gitexp_holder:
            parts.append("held by a running gitexp process")
        elif self.gitexp_holder is False:
            parts.append("no running gitexp process holds it")
        if self.git_processes:
            parts.append(f"git process(es) running in this repository: pid {', '.join(map(str, self.git_processes))}")
        elif self.git_processes is not None:
            parts.append("no git process is running in this repository")
        return "; ".join(parts)


def _flock_held(path: str) -> bool | None:
    """Whether some process holds an flock on `path` (gitexp does while it holds a ref lock)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops the probe's flock at once
    return False


def describe_lock(path: str) -> str:
    """A short account of a lock file for error messages (no process scan: cheap)."""
    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return "it is gone now"
    held = _flock_held(path)
    text = f"it is {age:.0f} s old"
    if held:
        return text + " and held by a running gitexp process"
    if held is False:
        return text + " and no running gitexp process holds it"
    return text


def repository_paths(repo: Repository) -> list[str]:
    """Directories whose git processes may hold this repository's locks."""
    paths = {os.path.realpath(repo.common_dir)}
    if repo.work_tree:
        paths.add(os.path.realpath(repo.work_tree))
    worktrees = os.path.join(repo.common_dir, "worktrees")
    try:
        names = os.listdir(worktrees)
    except FileNotFoundError:
        names = []
    for name in names:
        try:
            with open(os.path.join(worktrees, name, "gitdir")) as fh:
                paths.add(os.path.realpath(os.path.dirname(fh.read().strip())))
        except OSError:
            pass
        paths.add(os.path.realpath(os.path.join(worktrees, name)))
    return sorted(paths)


# git commands that never take a ref lock (gitexp keeps a `git cat-file --batch` open for reading).
_READ_ONLY_GIT = frozenset({
    "cat-file", "rev-parse", "rev-list", "log", "show", "diff", "diff-tree", "diff-index", "diff-files",
    "ls-tree", "ls-files", "for-each-ref", "show-ref", "merge-base", "status", "grep", "blame",
    "describe", "name-rev", "version", "var", "check-ignore", "check-attr", "hash-object", "count-objects",
    "cherry", "shortlog", "whatchanged", "config", "help", "fsck", "verify-pack", "show-index",
})
_GIT_OPTIONS_WITH_VALUE = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--super-prefix",
                                     "--config-env", "--exec-path", "--list-cmds", "--attr-source"})


def _git_subcommand(argv: list[str]) -> str | None:
    """The subcommand of a git command line (`git -C x -c a=b cat-file --batch` -> cat-file)."""
    name = os.path.basename(argv[0]) if argv else ""
    if name.startswith("git-"):
        return name[4:]
    args = iter(argv[1:])
    for arg in args:
        if arg in _GIT_OPTIONS_WITH_VALUE:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def git_processes(paths: list[str]) -> list[int] | None:
    """Pids of running git processes that work in one of `paths` (working directory, command
    line or GIT_DIR/GIT_COMMON_DIR); None without /proc.  A git process whose details cannot
    be read counts (it cannot be ruled out)."""
    if not os.path.isdir("/proc/self"):
        return None
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        base = f"/proc/{entry}"
        try:
            with open(f"{base}/comm") as fh:
                comm = fh.read().strip()
        except OSError:
            continue
        if comm != "git" and not comm.startswith("git-"):
            continue
        try:
            with open(f"{base}/cmdline", "rb") as fh:
                argv = fh.read().decode("utf-8", "replace").split("\0")[:-1]
            if _git_subcommand(argv) in _READ_ONLY_GIT:
                continue
            cwd = os.readlink(f"{base}/cwd")
            text = " ".join(argv)
            try:
                with open(f"{base}/environ", "rb") as fh:
                    text += " " + " ".join(v for v in fh.read().decode("utf-8", "replace").split("\0")
                                           if v.startswith(("GIT_DIR=", "GIT_COMMON_DIR=", "GIT_WORK_TREE=")))
            except OSError:
                pass
        except FileNotFoundError:
            continue  # it just ended
        except OSError:
            found.append(int(entry))
            continue
        cwd = os.path.realpath(cwd)
        if any(cwd == p or cwd.startswith(p + os.sep) or p in text for p in paths):
            found.append(int(entry))
    return found


def lock_status(path: str, repo: Repository) -> LockStatus | None:
    """How things stand with one lock file (None if it is gone).

    The rule for "its owner is provably dead" (`LockStatus.abandoned`):
      1. no process holds an flock on it: every gitexp writer holds one from creating the
         lock to renaming it, and the kernel drops it when the process dies (even SIGKILL);
      2. it is at least LOCK_MIN_AGE (10 s) old: older than any gitexp or git process holds
         a ref lock, and past the instant between a gitexp writer's create and flock;
      3. no git process runs in the repository (read from /proc), since git's locks carry
         no flock and a long `git gc` or `git update-ref --stdin` may hold one.
    Without /proc or flock, nothing is provably dead and doctor only reports."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return LockStatus(path, max(0.0, time.time() - st.st_mtime), _flock_held(path),
                      git_processes(repository_paths(repo)))


def ref_lock_files(repo: Repository) -> list[str]:
    """Lock files of refs gitexp updates: its branch, its own refs, packed-refs."""
    common = repo.common_dir
    found = []
    for path in (os.path.join(common, repo.ref + ".lock"), os.path.join(common, "packed-refs.lock")):
        if os.path.exists(path):
            found.append(path)
    for root, _dirs, names in os.walk(os.path.join(common, "refs", "gitexp")):
        found += [os.path.join(root, n) for n in names if n.endswith(".lock")]
    return found


def clear_abandoned_lock(path: str, repo: Repository) -> tuple[bool, LockStatus | None]:
    """Remove a lock file if its owner is provably dead: (removed, status when judged).

    Clearers take turns (an flock on .git/gitexp/lock-clear), and the file is moved aside
    and removed only if it is still the very file judged (same inode and mtime)."""
    os.makedirs(repo.state_dir, exist_ok=True)
    mutex = os.open(os.path.join(repo.state_dir, "lock-clear"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(mutex, fcntl.LOCK_EX)
        status = lock_status(path, repo)
        if status is None or not status.abandoned:
            return False, status
        before = os.stat(path)
        aside = os.path.join(repo.state_dir, f"stale-lock.{os.getpid()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False, status
        after = os.stat(aside)
        if (after.st_ino, after.st_mtime_ns) != (before.st_ino, before.st_mtime_ns):
            try:  # not the file judged: put it back (only if no new lock took its place)
                os.link(aside, path)
            except FileExistsError:
                pass
            os.unlink(aside)
            return False, status
        os.unlink(aside)
        return True, status
    finally:
        os.close(mutex)
