"""Keeping what gitexp wrote safe from git's own housekeeping, and cleaning up after the dead.

Mechanisms (docs/ARCHITECTURE.md, "Protecting objects" and "Stale ref locks"):

* **Kept packs** (`ObjectDB.protected`): objects of a commit in progress sit in packs
  with a ``.keep`` file until the ref update that makes them reachable.
* **Session-held keeps**: artifact blobs are written when logged and linked only by the
  session's next commit; the keeps of their packs (``... session <id>``) are handed to
  the session and removed right after that commit moved its ref.  Not a ref per session:
  git's reachability walk reads refs one directory at a time, in directory order, so
  objects moved from one ref to another (update one, delete the other) can be read in
  neither -- the fault soak lost artifacts that way.  A kept pack is never deleted.
* **Live refs are never deleted right after a publish**: they are pointed at the
  published tree, and deleted later (`sweep`) once nothing can be mid-walk: when the ref
  is older than REF_GRACE seconds, or no git process runs in the repository.
* **Ref locks** carry an flock while gitexp holds them; `lock_status` decides whether
  a lock's owner is provably dead (`gitexp doctor` then removes it).

`sweep` removes what is left: keep files of dead processes of this host (a session's
only once its journal, which names the blobs, has been committed), and live refs that
only repeat what the branch has.  It runs after journal recovery.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..exceptions import RefLocked
from .objects import KEEP_MAGIC, encode_tree

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .branch import TrackingBranch
    from .repo import Repository

# gitexp holds a ref lock for microseconds and git for well under a second (git gives up
# waiting for one after 100 ms): a lock this old that no live gitexp holds is abandoned,
# unless a git process is running in the repository.
LOCK_MIN_AGE = 10.0
# How long a live ref outlives the publish that made it redundant: longer than any git
# process takes to read the refs it walks (milliseconds), so no walk can have read the
# branch before that publish and the live ref after its deletion.
REF_GRACE = 10.0
_log = logging.getLogger("gitexp")


# -- what dead processes left behind ----------------------------------------------------------------
def _process_alive(pid: int, start: str | None) -> bool:
    from .journal import process_alive

    return process_alive(pid, start)


def keep_owner(text: str) -> dict[str, str] | None:
    """{pid, start, host[, session]} of a keep file gitexp wrote, else None."""
    if not text.startswith(KEEP_MAGIC):
        return None
    fields = text.split()
    info = dict(zip(fields[1::2], fields[2::2]))
    if not info.get("pid", "").isdigit():
        return None
    return info


def dead_keeps(objects_dir: str, sessions: set[str] | None = None) -> list[str]:
    """Keep files written by gitexp processes of this host that are no longer running, except
    those of a session whose journal is still in `sessions` (its blobs wait for recovery)."""
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
                owner = keep_owner(fh.read(512).decode("utf-8", "replace"))
        except OSError:
            continue
        if owner is None or owner.get("host") != host:
            continue  # git's own, a user's, or another machine's (not ours to judge)
        if sessions is not None and owner.get("session") in sessions:
            continue
        start = owner.get("start")
        if not _process_alive(int(owner["pid"]), None if start in (None, "-") else start):
            dead.append(path)
    return dead


def journal_names(journal_dir: str) -> list[str]:
    try:
        return os.listdir(journal_dir)
    except FileNotFoundError:
        return []


def published_own_tree(branch: "TrackingBranch", run_id: str) -> str | None:
    """The id of the run's own directory as the branch has it (its tree without events/);
    computed, not written."""
    run_tree = branch.run_tree(run_id)
    if run_tree is None:
        return None
    entries = [e for e in branch.odb.read_tree(run_tree) if e.name != "events"]
    return branch.odb.hash_object("tree", encode_tree(entries)) if entries else None


def live_is_published(branch: "TrackingBranch", run_id: str, live: str | None = None) -> bool:
    """Whether a run's live ref holds exactly what the branch has of the run's own files."""
    live = live or branch.live_commit(run_id)
    if live is None:
        return False
    try:
        return branch.tree_of(live) == published_own_tree(branch, run_id)
    except Exception:
        return False


@dataclass
class Swept:
    keeps: list[str] = field(default_factory=list)
    live_refs: list[str] = field(default_factory=list)


def sweep(branch: "TrackingBranch", journal_dir: str, grace: float = REF_GRACE) -> Swept:
    """Remove keep files of dead processes and live refs that only repeat the branch.

    Run after journal recovery: a dead session's kept blobs stay until its journal is
    committed.  A live ref goes only when no journal (live or dead) has its run, its tree
    is what the branch has of the run, and it was last moved over `grace` seconds ago."""
    from .branch import LIVE_PREFIX

    swept = Swept()
    names = journal_names(journal_dir)
    sessions = {parts[1] for parts in (n.split(".") for n in names) if len(parts) > 2}
    journaled_runs = {n.split(".", 1)[0] for n in names}
    for keep in dead_keeps(branch.odb.objects_dir, sessions):
        try:
            os.unlink(keep)
            swept.keeps.append(keep)
        except FileNotFoundError:
            pass
    for run_id, live in branch.live_commits().items():
        if run_id in journaled_runs:
            continue
        age = branch.refs.age(LIVE_PREFIX + run_id)
        if grace > 0 and age is not None and age < grace:
            continue
        if not live_is_published(branch, run_id, live):
            continue  # not on the branch yet: journal recovery publishes it
        try:
            if branch.refs.delete(LIVE_PREFIX + run_id, live):
                swept.live_refs.append(LIVE_PREFIX + run_id)
        except RefLocked as exc:
            _log.warning("gitexp: %s", exc)
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


def repository_paths(repo: "Repository") -> list[str]:
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


def lock_status(path: str, repo: "Repository") -> LockStatus | None:
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


def ref_lock_files(repo: "Repository") -> list[str]:
    """Lock files of refs gitexp updates: its branch, its own refs, packed-refs."""
    common = repo.common_dir
    found = []
    for path in (os.path.join(common, repo.ref + ".lock"), os.path.join(common, "packed-refs.lock")):
        if os.path.exists(path):
            found.append(path)
    for root, _dirs, names in os.walk(os.path.join(common, "refs", "gitexp")):
        found += [os.path.join(root, n) for n in names if n.endswith(".lock")]
    return found


def clear_abandoned_lock(path: str, repo: "Repository") -> tuple[bool, LockStatus | None]:
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
