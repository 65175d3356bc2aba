"""The tracking branch: its tip, reading folded runs and experiments, and commits.

Commits are made with plumbing only (blobs -> trees -> commit) and land by a
compare-and-swap of the branch ref, retried on a new tip when another writer
won.  The working tree, index, HEAD and stash are never touched.

Every read is cached by git object id: a run whose subtree did not change is
never parsed twice, and the caches can never be stale.
"""

from __future__ import annotations

import functools
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import _git as git
from ..exceptions import BranchCheckedOut, DamagedData, InvalidParameterValue, StoreError
from . import histories, layout
from .objects import _LRU, MODE_BLOB, REF_LOCK_TIMEOUT, ObjectDB, RefStore, decode_tree
from .repo import ACTING_AS, Repository, acting_as
from .state import DAMAGED_TAG, ExperimentState, RunState, default_experiment

Changes = dict[str, "tuple[bytes, str] | None"]

# The branch's first commit is the same in every clone (fixed content, author and
# time), so tracking branches started independently share a root and always merge.
_ROOT_IDENT = "gitexp <gitexp@localhost> 0 +0000"
_ROOT_MESSAGE = "gitexp: start the tracking branch\n"
_ROOT_FORMAT = (
    b"format: gitexp\nversion: 1\n"
    b"about: Experiment tracking data written by gitexp (https://pypi.org/project/gitexp/).\n"
)


# What a repository's .tracking/format.yaml says once a format-2 writer touched it.  Every
# gitexp from format 2 on checks the version before reading or writing, and refuses a
# newer one with the release to install (gitexp 0.1 had no such check: see docs/ARCHITECTURE.md).
_FORMAT_DOC = (
    f"format: gitexp\nversion: {layout.FORMAT_VERSION}\nrequires: gitexp>=0.2\n"
    "about: Experiment tracking data written by gitexp (https://pypi.org/project/gitexp/).\n"
).encode()


# The files of a run's own directory that folding reads (see read_own_files).
_OWN_FILES = ("run.yaml", "params.yaml", "tags.yaml", "inputs.yaml", "code.yaml", histories.LATEST_FILE)

# A running run's checkpoints: refs/gitexp/live/<run_id> -> the tree of the run's own
# directory (no events).  Only its writer moves it; it is published to the branch every
# few checkpoints and deleted when the run's last commit lands.  A tree, not a commit:
# `git gc` lists every commit a ref reaches in its commit-graph, and a superseded
# checkpoint commit pruned later (`git repack -a -d`) would make `git fsck` report the
# graph as broken.  (gitexp before this pointed it at a parentless commit; both are read.)
LIVE_PREFIX = "refs/gitexp/live/"


def _lock_timeout(repo: Repository) -> float:
    raw = os.environ.get("GITEXP_REF_LOCK_TIMEOUT") or repo.config.get("gitexp.reflocktimeout")
    if raw is None:
        return REF_LOCK_TIMEOUT
    try:
        return max(float(raw), 0.0)
    except ValueError:
        raise InvalidParameterValue(
            f"gitexp.refLockTimeout must be a number of seconds, got {raw!r} "
            "(from GITEXP_REF_LOCK_TIMEOUT or git config gitexp.refLockTimeout)") from None


def _read_small(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(4096).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _names_branch(git_dir: str, ref: str) -> bool:
    """Whether a worktree's HEAD is `ref`, or a rebase or bisect of `ref` is in progress there
    (as git's own checked-out test: worktree.c, is_worktree_being_rebased/bisected)."""
    if _read_small(os.path.join(git_dir, "HEAD")) == f"ref: {ref}":
        return True
    for state in ("rebase-merge", "rebase-apply"):
        if _read_small(os.path.join(git_dir, state, "head-name")) == ref:
            return True
    bisect = _read_small(os.path.join(git_dir, "BISECT_START"))
    return bool(bisect) and ref == f"refs/heads/{bisect}"


def _checked_out_by_git(common_dir: str, ref: str) -> str | None:
    result = git.run(["worktree", "list", "--porcelain"], git_dir=common_dir, text=True)
    where = None
    for line in result.stdout.splitlines():
        if line.startswith("worktree "):
            where = line[len("worktree "):]
        elif line == f"branch {ref}":
            return where
    return None


def _tz_offset() -> str:
    offset = time.localtime().tm_gmtoff
    sign = "+" if offset >= 0 else "-"
    offset = abs(offset) // 60
    return f"{sign}{offset // 60:02d}{offset % 60:02d}"


class _Queued:
    """One caller's changes in a group commit, and how it ended."""

    __slots__ = ("build", "message", "done", "result", "error", "author")

    def __init__(self, build: Callable[[str | None], Changes], message: str) -> None:
        self.build = build
        self.message = message
        self.author = ACTING_AS.get()  # one commit per author: a group never mixes people
        self.done = False
        self.result: str | None = None
        self.error: BaseException | None = None


class TrackingBranch:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        env = None
        self.odb = ObjectDB(repo.common_dir, repo.object_format, env)
        self.refs = RefStore(repo.common_dir, repo.files_ref_backend, env, _lock_timeout(repo))
        self._commit_trees: _LRU[str, str] = _LRU(4096)
        self._runs: _LRU[Any, RunState] = _LRU(50000)  # by own tree, or (own tree, run tree)
        self._experiments: tuple[str | None, dict[str, ExperimentState]] | None = None
        self._exp_cache: _LRU[str, ExperimentState] = _LRU(10000)
        self._formats: dict[str, int] = {}
        self._lock = threading.Lock()
        # Threads of one process take turns to commit: racing each other through the
        # compare-and-swap would only write packs that lose (other processes still race).
        self._commit_lock = threading.RLock()
        self._queue: list[_Queued] = []  # group commits waiting for the commit lock

    # -- the tip -------------------------------------------------------------------
    @property
    def ref(self) -> str:
        return self.repo.ref

    def forget_folded_runs(self) -> None:
        """Drop the cache of folded run states (after a bulk fold nothing is about to read)."""
        self._runs.clear()

    def tip(self) -> str | None:
        """The branch's commit; created from a remote-tracking branch if only that exists."""
        tip = self.refs.read(self.ref)
        if tip is None:
            remote = self._remote_tip()
            if remote is not None and self.checked_out_at() is None:
                self.refs.compare_and_swap(self.ref, remote, None, "gitexp: start from remote", self._ident(),
                                           check=self.refuse_if_checked_out)
                tip = self.refs.read(self.ref)
        return tip

    # -- is the branch checked out? ----------------------------------------------------
    def checked_out_at(self) -> str | None:
        """The worktree in which the tracking branch is checked out (or being rebased or
        bisected), else None -- what git checks before it moves a branch (`git fetch`,
        `git branch -f`).  Reads HEAD of the main worktree (unless the repository is bare)
        and of every linked worktree: a few small files."""
        common = self.repo.common_dir
        target = self.ref
        if not self.repo.files_ref_backend:
            return _checked_out_by_git(common, target)
        places = []
        if self.repo.config.get("core.bare", "false").lower() != "true":
            places.append((common, self.repo.config.get("core.worktree") or os.path.dirname(common.rstrip("/"))))
        try:
            linked = os.listdir(os.path.join(common, "worktrees"))
        except (FileNotFoundError, NotADirectoryError):
            linked = []
        for name in linked:
            git_dir = os.path.join(common, "worktrees", name)
            where = git_dir
            try:
                with open(os.path.join(git_dir, "gitdir")) as fh:
                    where = os.path.dirname(fh.read().strip())
            except OSError:
                pass
            places.append((git_dir, where))
        for git_dir, where in places:
            if _names_branch(git_dir, target):
                return where
        return None

    def check_writable(self) -> None:
        """Fail now, before a write is accepted, if its commit could not land: the branch is
        checked out (BranchCheckedOut) or its ref lock stays taken (RefLocked)."""
        self.refuse_if_checked_out()
        self.refs.wait_unlocked(self.ref)

    def refuse_if_checked_out(self) -> None:
        """BranchCheckedOut if the tracking branch is checked out in a worktree."""
        where = self.checked_out_at()
        if where is not None:
            raise BranchCheckedOut(
                f"The tracking branch {self.repo.branch!r} is checked out in {where}, so gitexp does not "
                "move it: your index and working tree there would no longer match the branch, and your "
                "next `git commit` would undo gitexp's commits (git refuses to update a checked-out "
                "branch for the same reason). Check out another branch there (e.g. `git -C "
                f"{where} switch -`), or look at runs with `git worktree add --detach <dir> "
                f"{self.repo.branch}`. Nothing logged is lost: changes not yet committed stay in the "
                "journal and are committed once the branch is no longer checked out.",
                worktree=where, branch=self.repo.branch)

    def _remote_tip(self) -> str | None:
        result = git.run(["for-each-ref", "--format=%(refname) %(objectname)", "refs/remotes/"],
                         git_dir=self.repo.common_dir, text=True)
        found = {}
        for line in result.stdout.splitlines():
            name, _, sha = line.partition(" ")
            parts = name.split("/")
            if len(parts) >= 4 and "/".join(parts[3:]) == self.repo.branch:
                found[parts[2]] = sha
        return found.get("origin") or (next(iter(found.values())) if found else None)

    def ensure(self) -> str:
        """The tip, creating the branch (its fixed root commit) if it does not exist."""
        tip = self.tip()
        while tip is None:
            with self.odb.protected():
                self.refs.compare_and_swap(self.ref, self._root_commit(), None, "gitexp: start", self._ident(),
                                           check=self.refuse_if_checked_out)
            tip = self.tip()
        return tip

    def tree_of(self, commit: str | None) -> str | None:
        """The tree of a commit; a tree is its own (live refs point at trees, see LIVE_PREFIX)."""
        if commit is None:
            return None
        tree = self._commit_trees.get_item(commit)
        if tree is None:
            kind, data = self.odb.read(commit)
            if kind == "tree":
                tree = commit
            elif kind == "commit" and data.startswith(b"tree "):
                tree = data[5:data.index(b"\n")].decode()
                self.check_format(tree)
            else:
                raise StoreError(f"Git object {commit} is a {kind}, expected a commit")
            with self._lock:
                self._commit_trees.put(commit, tree)
        return tree

    def format_version(self, root_tree: str | None) -> int:
        entry = self.odb.lookup(root_tree, layout.FORMAT_FILE) if root_tree else None
        if entry is None:
            return layout.FORMAT_VERSION
        cached = self._formats.get(entry.sha)
        if cached is None:
            try:
                doc = layout.load_yaml(self.odb.read_blob(entry.sha)) or {}
                cached = int(doc.get("version", 1))
            except (ValueError, TypeError, AttributeError):
                cached = 1
            self._formats[entry.sha] = cached
        return cached

    def check_format(self, root_tree: str | None) -> None:
        """Refuse a branch written in a storage format newer than this gitexp reads."""
        version = self.format_version(root_tree)
        if version > layout.FORMAT_VERSION:
            from .. import __version__

            entry = self.odb.lookup(root_tree, layout.FORMAT_FILE)
            doc = layout.load_yaml(self.odb.read_blob(entry.sha)) if entry else {}
            needs = (doc or {}).get("requires") or "a newer gitexp"
            raise StoreError(
                f"The tracking branch {self.repo.branch!r} uses gitexp storage format {version}; "
                f"gitexp {__version__} reads formats up to {layout.FORMAT_VERSION}. "
                f"Install {needs} (pip install -U gitexp) to read or write it.")

    def subtree(self, root_tree: str | None, path: str) -> str | None:
        entry = self.odb.lookup(root_tree, path) if root_tree else None
        return entry.sha if entry is not None and entry.is_tree else None

    # -- committing ------------------------------------------------------------------
    def _ident(self, author: bool = False) -> str:
        """A commit's committer line (the repository's own identity), or with author=True its
        author line (whom the current context acts for, see store.repo.ACTING_AS)."""
        name, email = self.repo.identity() if author else self.repo.own_identity()
        name = name.replace("<", "").replace(">", "").replace("\n", " ")
        email = email.replace("<", "").replace(">", "").replace("\n", " ")
        return f"{name} <{email}> {int(time.time())} {_tz_offset()}"

    def _root_commit(self) -> str:
        with self.odb.batch():
            blob = self.odb.write_blob(_ROOT_FORMAT)
            tree = self.odb.edit_tree(None, {layout.FORMAT_FILE: (MODE_BLOB, blob)})
            return self.odb.write_commit(tree, [], _ROOT_MESSAGE, _ROOT_IDENT, _ROOT_IDENT)

    def commit(self, build: Callable[[str | None], Changes], message: str, *, group: bool = False) -> str:
        """Commit the changes `build(root_tree)` returns on top of the tip.

        `build` is called again on the new tip whenever another writer moved the
        branch first, so it can re-check what it depends on (a name being free...).

        group=True (for changes that cannot collide with others', like a run's own
        session): threads of this process that commit at the same time share one
        commit -- whoever gets the commit lock commits everything queued meanwhile.
        """
        if group:
            return self._group_commit(build, message)
        # Every object of every attempt stays in a kept pack until the ref points at it.
        with self.odb.protected():
            return self._commit(build, message)

    def _commit(self, build: Callable[[str | None], Changes], message: str) -> str:
        for attempt in range(1000):
            with self._commit_lock:
                tip = self.tip()
                if tip is None:
                    self.refs.compare_and_swap(self.ref, self._root_commit(), None, "gitexp: start", self._ident(),
                                               check=self.refuse_if_checked_out)
                    continue
                tree = self.tree_of(tip)
                ident, author = self._ident(), self._ident(author=True)
                with self.odb.batch():  # every object of this attempt lands in one pack
                    changes = build(tree)
                    if not changes:
                        return tip
                    if self.format_version(tree) < layout.FORMAT_VERSION:
                        changes = {**changes, layout.FORMAT_FILE: (MODE_BLOB, self.odb.write_blob(_FORMAT_DOC))}
                    new_tree = self.odb.edit_tree(tree, changes)
                    if new_tree == tree:
                        return tip
                    commit = self.odb.write_commit(new_tree, [tip], message, author, ident)
                self.odb.flush()  # (when this commit runs inside an outer batch)
                # The checked-out check runs under the ref lock, right before the ref moves.
                if self.refs.compare_and_swap(self.ref, commit, tip, message, ident,
                                              check=self.refuse_if_checked_out):
                    with self._lock:
                        self._commit_trees.put(commit, new_tree)
                    return commit
            time.sleep(random.uniform(0, min(0.002 * (attempt + 1), 0.05)))
        raise StoreError(f"Could not update {self.ref}: other writers kept moving it for 1000 attempts")

    def _group_commit(self, build: Callable[[str | None], Changes], message: str) -> str:
        mine = _Queued(build, message)
        with self._lock:
            self._queue.append(mine)
        with self._commit_lock:
            if not mine.done:  # nobody committed it while we waited: commit the whole queue
                with self._lock:
                    batch = [q for q in self._queue if q.author == mine.author]
                    self._queue = [q for q in self._queue if q.author != mine.author]
                with acting_as(mine.author):
                    self._commit_batch(batch)
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]  # done without error: the commit's id

    def _commit_batch(self, batch: list[_Queued]) -> None:
        def build_all(tree: str | None) -> Changes:
            changes: Changes = {}
            for queued in batch:
                if queued.error is None:
                    try:
                        changes.update(queued.build(tree) or {})
                    except Exception as exc:  # only that caller fails
                        queued.error = exc
            return changes

        if len(batch) == 1:
            message = batch[0].message
        else:
            message = f"{len(batch)} changes\n\n" + "\n\n".join(q.message.strip() for q in batch) + "\n"
        try:
            commit = self.commit(build_all, message)
        except BaseException as exc:
            for queued in batch:
                queued.error = queued.error or exc
                queued.done = True
            return
        for queued in batch:
            queued.result = commit
            queued.done = True

    def write_event(self, directory: str, ops: list[dict[str, Any]], message: str,
                    extra: dict[str, Any] | None = None) -> str:
        """Commit one immutable event file under `directory/events/`."""
        ns = layout.event_time_ns()
        doc = {"time": ns // 1_000_000, "user": self.repo.identity()[0], **(extra or {}), "ops": ops}
        data = layout.dump_yaml(doc)
        path = f"{directory}/events/{layout.event_name(ns)}"
        return self.commit(lambda _tree: {path: (MODE_BLOB, self.odb.write_blob(data))}, message)

    # -- runs ---------------------------------------------------------------------------
    def run_tree(self, run_id: str, root_tree: str | None = None) -> str | None:
        root = root_tree if root_tree is not None else self.tree_of(self.tip())
        return self.subtree(root, layout.run_dir(run_id))

    def read_run(self, run_id: str, root_tree: str | None = None) -> RunState | None:
        """The folded state of a run (shared, cached: copy before changing it).

        At the tip (root_tree None) a running run's own files come from its live ref
        when it has one: its writer's last checkpoint, newer than the branch's copy.
        """
        tree = self.run_tree(run_id, root_tree)
        live = self.live_tree(run_id) if root_tree is None else None
        if live is not None:
            return self.read_run_tree(run_id, tree, own=live)
        if tree is None:
            return None
        return self.read_run_tree(run_id, tree)

    def read_run_tree(self, run_id: str, tree: str | None, own: str | None = None) -> RunState:
        """Fold a run: own files (of `own`, default `tree`) then the events of `tree`."""
        own = own or tree
        assert own is not None
        key = tree if own == tree else (own, tree)
        cached = self._runs.get_item(key)
        if cached is not None:
            return cached
        state = self.read_own_files(run_id, own)
        events = self.odb.tree_dict(tree).get("events") if tree else None
        if events is not None:
            base = f"{layout.run_dir(run_id)}/events/"

            def damaged(n: str, line: int | None, what: str) -> None:
                state.note_damage(base + n, line, what)

            for name, doc in self.read_events(events.sha, damaged):
                _apply_event(state.apply, doc, functools.partial(damaged, name))
        with self._lock:
            self._runs.put(key, state)
        return state

    # -- live runs ------------------------------------------------------------------------
    def live_commits(self) -> dict[str, str]:
        """run_id -> live checkpoint commit of every run with a live ref."""
        return {name[len(LIVE_PREFIX):]: sha for name, sha in self.refs.list_refs(LIVE_PREFIX).items()}

    def live_commit(self, run_id: str) -> str | None:
        return self.refs.read(LIVE_PREFIX + run_id)

    def live_tree(self, run_id: str) -> str | None:
        commit = self.live_commit(run_id)
        return self.tree_of(commit) if commit else None

    # -- metric histories -------------------------------------------------------------------
    def own_history(self, own_tree: str | None, key: str, run_id: str | None = None) -> tuple[Any, ...]:
        """(steps, timestamps, values) arrays of a metric's history in a run's own files.

        A damaged history file fails this read only, with an error naming the run, the
        metric, the file and the line."""
        try:
            return self._own_history(own_tree, key)
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            raise self._history_error(own_tree, key, run_id, exc) from None

    def _history_error(self, own_tree: str | None, key: str, run_id: str | None, exc: Exception) -> DamagedData:
        entry = self.odb.lookup(own_tree, "metrics") if own_tree else None
        metrics_tree = entry.sha if entry is not None and entry.is_tree else None
        where, line, problem = "its history", None, _problem(exc)[1]
        for path, sha in histories.history_paths(self.odb, metrics_tree, key):
            found = histories.damaged_line(self.odb.read_blob(sha))
            if found is not None:
                line, problem = found
                where = f"{layout.run_dir(run_id)}/{path}" if run_id else path
                break
        return DamagedData(
            f"Cannot read the history of metric {key!r} of run {run_id or '?'}: {where}"
            f"{f' line {line}' if line else ''} is damaged ({problem}). The run's other data is "
            f"unaffected; fix or remove that line on the branch '{self.repo.branch}'.")

    def _own_history(self, own_tree: str | None, key: str) -> tuple[Any, ...]:
        entry = self.odb.lookup(own_tree, "metrics") if own_tree else None
        shas = [sha for _path, sha in histories.history_paths(
            self.odb, entry.sha if entry is not None and entry.is_tree else None, key)]
        if len(shas) <= 32:
            return histories.parse_many([self.odb.read_blob(sha) for sha in shas])
        # A long run: one pipelined read of its chunks, parsed a few MB at a time, so
        # memory holds the arrays and a few batches of text, never the whole history's
        # text.  The reading runs in a thread (ahead by at most ~16 MB), so git inflates
        # the next chunks while this thread parses (numpy's parse holds the GIL; pipe
        # reads release it): ~20% off a 2,000,000-point read.
        parts, batch, size = [], [], 0
        for _sha, data in _read_ahead(self.odb.read_many(shas), 16 << 20):
            batch.append(data)
            size += len(data)
            if size >= 4 << 20:
                parts.append(histories.parse_many(batch))
                batch, size = [], 0
        if batch:
            parts.append(histories.parse_many(batch))
        return histories.combine(parts)

    def own_tree(self, run_id: str) -> str | None:
        """The tree holding a run's own files now: its live checkpoint, else the branch's."""
        return self.live_tree(run_id) or self.run_tree(run_id)

    def read_run_trees(self, items: dict[str, str], chunk: int = 2000) -> Iterator[tuple[str, RunState]]:
        """Fold many runs (run_id -> subtree id), yielding (run_id, state) as each is done.

        The same fold as `read_run_tree`, but the objects of `chunk` runs at a time
        are fetched first with two or three pipelined reads (run trees; their own
        files and sub-trees; event files and format-1 metric histories) instead of
        one round trip each, and the next chunk is fetched while this one is
        folded.  A run with ``latest_metrics.yaml`` (format 2) costs its tree and
        its few small files: its ``metrics/`` tree is never read.  This is what
        makes a cold search-index build of many runs fast.
        """
        todo = []
        for run_id, tree in items.items():
            cached = self._runs.get_item(tree)
            if cached is not None:
                yield run_id, cached
            else:
                todo.append((run_id, tree))
        if len(todo) < 16:
            for run_id, tree in todo:
                yield run_id, self.read_run_tree(run_id, tree)
            return
        from concurrent.futures import ThreadPoolExecutor

        parts = [todo[start:start + chunk] for start in range(0, len(todo), chunk)]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gitexp-prefetch") as pool:
            pending = pool.submit(self._prefetch_runs, parts[0])
            for i, part in enumerate(parts):
                objects, trees = pending.result()
                if i + 1 < len(parts):
                    pending = pool.submit(self._prefetch_runs, parts[i + 1])
                with self.odb.preloaded(objects, trees):
                    for run_id, tree in part:
                        yield run_id, self.read_run_tree(run_id, tree)
                del objects, trees

    def _prefetch_runs(self, part: list[tuple[str, str]]
                       ) -> tuple[dict[str, tuple[str, bytes]], dict[str, list[Any]]]:
        """Every object folding these runs reads, in pipelined batches: (objects, decoded trees).

        1. the run trees; 2. the files in `_OWN_FILES`, the `events/` tree, and the
        `metrics/` tree only of runs without ``latest_metrics.yaml`` (format 1);
        3. the event files and those runs' ``metrics/<key>.jsonl`` histories.
        """
        odb = self.odb
        hash_len = odb.hash_len
        own_files = _OWN_FILES
        latest = histories.LATEST_FILE
        objects: dict[str, tuple[str, bytes]] = {}
        trees: dict[str, list[Any]] = {}
        for sha, kind, data in odb.stream(list(dict.fromkeys(tree for _, tree in part))):
            objects[sha] = (kind, data)
        second: list[str] = []
        subtrees: list[str] = []
        for _, tree in part:
            if tree in trees:
                continue
            kind, data = objects[tree]
            if kind != "tree":
                continue  # read_run_tree raises the usual error
            entries = trees[tree] = decode_tree(data, hash_len)
            names = None
            for entry in entries:
                name = entry.name
                if name in own_files:
                    if not entry.is_tree:
                        second.append(entry.sha)
                elif entry.is_tree and name in ("events", "metrics"):
                    if name == "metrics":
                        if names is None:
                            names = {e.name for e in entries}
                        if latest in names:
                            continue  # format 2: the index reads latest_metrics.yaml only
                    second.append(entry.sha)
                    subtrees.append(entry.sha)
        for sha, kind, data in odb.stream([s for s in dict.fromkeys(second) if s not in objects]):
            objects[sha] = (kind, data)
        third: list[str] = []
        for sha in dict.fromkeys(subtrees):
            kind, data = objects[sha]
            if kind != "tree" or sha in trees:
                continue
            entries = trees[sha] = decode_tree(data, hash_len)
            third.extend(e.sha for e in entries if not e.is_tree and e.name.endswith((".jsonl", ".yaml")))
        for sha, kind, data in odb.stream([s for s in dict.fromkeys(third) if s not in objects]):
            objects[sha] = (kind, data)
        return objects, trees

    def read_own_files(self, run_id: str, tree: str) -> RunState:
        """A run as its creating session wrote it, without later events.

        A file that cannot be read (a hand edit, a truncated line) is folded around: what
        can be read of it is kept (flat maps line by line) and the run is marked damaged
        (RunState.note_damage) with the file and line, instead of failing every read."""
        entries = self.odb.tree_dict(tree)
        state = RunState(run_id, keep_points=False)
        blob = self.odb.read_blob
        damage: list[tuple[str, int | None, str]] = []

        def load(name: str, parse: Callable[[bytes], Any],
                 salvage: Callable[[bytes], Any] | None = None) -> Any:
            data = blob(entries[name].sha)
            try:
                return parse(data)
            except Exception as exc:
                line, problem = _problem(exc)
                doc = None
                if salvage is not None:
                    doc, first = _salvage(data, salvage)
                    if first is not None:
                        line, problem = first
                damage.append((f"{layout.run_dir(run_id)}/{name}", line, problem))
                return doc

        if "run.yaml" in entries:
            info = load("run.yaml", _flat_map, layout.load_flat)
            if info:
                state.load_info_doc(info)
                problem = _check_info(state)
                if problem:
                    damage.append((f"{layout.run_dir(run_id)}/run.yaml", None, problem))
        def strings(name: str) -> dict[str, str]:
            doc = load(name, _flat_map, layout.load_flat) or {}
            out = {str(k): str(v) for k, v in doc.items() if v is not None}
            if len(out) < len(doc):  # gitexp writes no empty values: a line cut after its key
                data = blob(entries[name].sha)
                for k in [k for k, v in doc.items() if v is None]:
                    damage.append((f"{layout.run_dir(run_id)}/{name}", _line_of(data, str(k)), f"{k!r} has no value"))
            return out

        if "params.yaml" in entries:
            state.params = strings("params.yaml")
        if "tags.yaml" in entries:
            state.tags = strings("tags.yaml")
        if "inputs.yaml" in entries:
            state.inputs = load("inputs.yaml", _inputs) or []
        if "code.yaml" in entries:
            state.code = load("code.yaml", _code)
        if histories.LATEST_FILE in entries:
            state.latest = load(histories.LATEST_FILE, histories.load_latest, histories.load_latest) or {}
        elif "metrics" in entries:  # format 1: the latest values come from the whole histories
            for entry in self.odb.read_tree(entries["metrics"].sha):
                if entry.name.endswith(".jsonl") and not entry.is_tree:
                    key = layout.decode_key(entry.name[: -len(".jsonl")])
                    try:
                        points = layout.parse_metric_lines(blob(entry.sha))
                    except Exception:
                        found = histories.damaged_line(blob(entry.sha)) or (None, "cannot be read")
                        damage.append((f"{layout.run_dir(run_id)}/metrics/{entry.name}", *found))
                        continue
                    for step, ts, value in points:
                        if histories.newer((step, ts, value), state.latest.get(key)):
                            state.latest[key] = (step, ts, value)
        for path, line, problem in damage:
            state.note_damage(path, line, problem)
        state.keep_points = True
        return state

    def read_events(self, events_tree: str, damaged: Callable[[str, int | None, str], None] | None = None
                    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(name, document) of each event file in fold order.  With `damaged`, an event that
        cannot be read is reported to it as (name, line, problem) and skipped."""
        for entry in sorted(self.odb.read_tree(events_tree), key=lambda e: e.name):
            if entry.name.endswith(".yaml") and not entry.is_tree:
                if damaged is None:
                    yield entry.name, layout.load_yaml(self.odb.read_blob(entry.sha)) or {}
                    continue
                try:
                    doc = layout.load_yaml(self.odb.read_blob(entry.sha)) or {}
                    if not isinstance(doc, dict):
                        raise ValueError("not an event (a map with time, user and ops)")
                except Exception as exc:
                    damaged(entry.name, *_problem(exc))
                    continue
                yield entry.name, doc

    def run_trees(self, root_tree: str | None = None) -> dict[str, str]:
        """run_id -> subtree id for every run on the branch."""
        root = root_tree if root_tree is not None else self.tree_of(self.tip())
        runs_tree = self.subtree(root, layout.RUNS)
        out: dict[str, str] = {}
        if runs_tree is None:
            return out
        for bucket in self.odb.read_tree(runs_tree):
            if bucket.is_tree:
                for entry in self.odb.read_tree(bucket.sha):
                    if entry.is_tree:
                        out[entry.name] = entry.sha
        return out

    def code_patch(self, run_id: str) -> bytes | None:
        tree = self.own_tree(run_id)  # a live run's checkpoint has it before the branch does
        if tree is None:
            return None
        entry = self.odb.tree_dict(tree).get("code.patch")
        return self.odb.read(entry.sha)[1] if entry is not None else b""

    # -- experiments ------------------------------------------------------------------
    def experiments(self, root_tree: str | None = None) -> dict[str, ExperimentState]:
        """experiment_id -> folded state, including the implicit default experiment."""
        root = root_tree if root_tree is not None else self.tree_of(self.tip())
        exp_tree = self.subtree(root, layout.EXPERIMENTS)
        cached = self._experiments
        if cached is not None and cached[0] == exp_tree:
            return cached[1]
        result = {layout.DEFAULT_EXPERIMENT_ID: default_experiment()}
        if exp_tree is not None:
            for entry in self.odb.read_tree(exp_tree):
                if entry.is_tree:
                    result[entry.name] = self._read_experiment(entry.name, entry.sha)
        self._experiments = (exp_tree, result)
        return result

    def _read_experiment(self, experiment_id: str, tree: str) -> ExperimentState:
        cached = self._exp_cache.get_item(tree)
        if cached is not None:
            return cached
        state = (default_experiment() if experiment_id == layout.DEFAULT_EXPERIMENT_ID
                 else ExperimentState(experiment_id))
        events = self.odb.tree_dict(tree).get("events")
        if events is not None:
            base = f"{layout.experiment_dir(experiment_id)}/events/"
            problems: list[str] = []

            def damaged(name: str, line: int | None, what: str) -> None:
                problems.append(f"{base}{name}{f' line {line}' if line else ''}: {what}")

            for name, doc in self.read_events(events.sha, damaged):
                _apply_event(functools.partial(state.apply, time=doc.get("time")), doc,
                             functools.partial(damaged, name))
            if problems:
                state.tags[DAMAGED_TAG] = "; ".join(problems)[:4000]
        with self._lock:
            self._exp_cache.put(tree, state)
        return state

    def close(self) -> None:
        self.odb.close()


# -- folding around damaged files ----------------------------------------------------------------------------------
def _problem(exc: BaseException) -> tuple[int | None, str]:
    """(line, one-line description) of why a file could not be read."""
    mark = getattr(exc, "problem_mark", None)  # YAML
    line = mark.line + 1 if mark is not None else getattr(exc, "lineno", None)  # JSON
    if not isinstance(line, int):
        line = getattr(exc, "damaged_line", None)
    text = getattr(exc, "problem", None) or getattr(exc, "msg", None) or str(exc) or type(exc).__name__
    if isinstance(exc, (KeyError, TypeError, AttributeError)):
        text = f"{type(exc).__name__}: {exc}"
    return line, " ".join(str(text).split())[:200]


def _salvage(data: bytes, parse_line: Callable[[bytes], object]) -> tuple[dict[str, Any], tuple[int, str] | None]:
    """What a damaged map file still holds, read line by line, and its first bad line."""
    out: dict[str, Any] = {}
    first = None
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip() or raw.lstrip().startswith(b"#"):
            continue
        try:
            doc = parse_line(raw + b"\n")
            if not isinstance(doc, dict) or not doc:
                raise ValueError("not a 'key: value' line")
            out.update(doc)
        except Exception as exc:
            if first is None:
                first = (number, _problem(exc)[1])
    return out, first


def _line_of(data: bytes, key: str) -> int | None:
    for number, line in enumerate(data.decode(errors="replace").splitlines(), 1):
        if line.startswith((f"{key}:", f'"{key}":', f"'{key}':")):
            return number
    return None


def _flat_map(data: bytes) -> dict[str, Any]:
    doc = layout.load_flat(data)
    if not doc and data.strip() and layout.load_yaml(data) not in (None, {}):
        raise ValueError("not a map of 'key: value' lines")
    return doc


def _check_info(state: RunState) -> str | None:
    """What is wrong with run.yaml's values, if anything (and make them usable)."""
    problems = []
    for name in ("start_time", "end_time"):
        value = getattr(state, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(f"{name} is not a whole number ({value!r:.40})")
            setattr(state, name, 0 if name == "start_time" else None)
    for name in ("experiment_id", "user_id", "status"):
        value = getattr(state, name)
        if not isinstance(value, str):
            problems.append(f"{name} is not a string ({value!r:.40})")
            setattr(state, name, str(value))
    if state.run_name is not None and not isinstance(state.run_name, str):
        state.run_name = str(state.run_name)
    return "; ".join(problems) or None


def _inputs(data: bytes) -> list[Any]:
    doc = layout.load_yaml(data) or []
    if not isinstance(doc, list) or not all(
            isinstance(i, dict) and isinstance(i.get("dataset"), dict) and isinstance(i.get("tags") or {}, dict)
            for i in doc):
        raise ValueError("not a list of datasets (each a map with dataset and tags)")
    return doc


def _code(data: bytes) -> dict[str, Any] | None:
    doc = layout.load_yaml(data)
    if doc is not None and not isinstance(doc, dict):
        raise ValueError("not a map")
    return doc


_NUMBER = (int, float)


def _apply_event(apply: Callable[[dict[str, Any]], None], doc: dict[str, Any],
                 damaged: Callable[[int | None, str], None]) -> None:
    """Apply an event's ops, reporting (and skipping) each op that is not a valid op."""
    ops = doc.get("ops") or []
    if not isinstance(ops, list):
        damaged(None, "its ops are not a list")
        return
    for i, op in enumerate(ops, 1):
        try:
            if not isinstance(op, dict) or not isinstance(op.get("op"), str):
                raise ValueError(f"op {i} is not an op ({op!r:.60})")
            if op["op"] == "metric" and not (
                    type(op["step"]) is int and type(op["timestamp"]) is int
                    and (type(op["value"]) in _NUMBER or op["value"] in ("NaN", "Infinity", "-Infinity"))):
                raise ValueError(f"op {i}: a metric needs a whole step and timestamp and a number ({op!r:.80})")
            if op["op"] == "metric" and isinstance(op["value"], str):
                op = {**op, "value": histories.value_of(op["value"])}
            apply(op)
        except Exception as exc:
            line, problem = _problem(exc)
            damaged(None, problem if problem.startswith("op ") else f"op {i}: {problem}")


def _read_ahead(items: Iterator[tuple[str, bytes]], limit: int) -> Iterator[tuple[str, bytes]]:
    """`items`, produced by a thread that stays at most `limit` bytes ahead of the consumer."""
    import queue

    ahead: queue.Queue[Any] = queue.Queue()
    cond = threading.Condition()
    pending = [0]  # bytes read and not yet consumed
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for sha, data in items:
                with cond:
                    while pending[0] > limit and not stop.is_set():
                        cond.wait(0.1)
                    if stop.is_set():
                        return
                    pending[0] += len(data)
                ahead.put((sha, data))
            ahead.put(end)
        except BaseException as exc:
            ahead.put(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a reader left early: let the git reader finish its answer

    thread = threading.Thread(target=produce, daemon=True, name="gitexp-history-read")
    thread.start()
    try:
        while True:
            item = ahead.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            with cond:
                pending[0] -= len(item[1])
                cond.notify()
            yield item
    finally:
        stop.set()
        with cond:
            cond.notify()
        thread.join()
