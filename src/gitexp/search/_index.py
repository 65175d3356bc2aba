"""The search index: a derived SQLite file, refreshed incrementally from the branch.

``.git/gitexp/index.sqlite`` (WAL mode, shared by every process and worktree of
the repository) holds one row per run -- its attributes and a JSON document of
its latest metrics, params, tags and dataset inputs -- plus, per key, a column
of that key's values for every run (``_columns``), and the ids of the git trees
it was built from.  It is never the truth: delete it and the next search
rebuilds it from the branch.

Freshness.  Every search reads the branch tip (one small file) and compares it
with the commit the index reflects.  When the branch moved (a commit by this or
another process, a fetch or pull), the index compares the tree id of each
``.tracking/runs/<xx>`` bucket and then of each run directory in changed
buckets with what it recorded, and folds only the runs whose tree changed
(through ``TrackingBranch.read_run_trees``: the branch's own fold, objects
fetched in pipelined batches).  A refresh writes the changed runs' rows with a
new ``seq``; readers apply rows newer than the stored columns on top of them,
and once many runs changed the columns are rewritten (``_compact``).  A cold
build of many runs folds them in worker processes (``_build``) and writes the
columns once, at the end.

Runs with changes still pending in this process (a session's journal not yet
committed) or on a live ref are folded for each search and laid over the
stored runs in memory, so a search sees everything logged a moment ago, and
the file holds only what the branch holds.

Concurrency.  Refreshes are write transactions (``BEGIN IMMEDIATE``); a second
process that wanted the same refresh finds it done when it gets the lock.
Readers never wait for writers (WAL), and each search reads inside one read
transaction, so it sees one state of the index.

``as_of`` views copy the index into memory (SQLite's backup API) and refresh
the copy towards the older commit: the same diff, in the other direction.

This module owns the file's life cycle (``RunIndex``: the connection, reopened
after a fork or when the file is deleted; a damaged file removed and rebuilt; an
index in memory when the file cannot be used) and hands out views.  What writes
the file -- schema, refresh, cold build, compaction -- is ``_refresh``; what
queries it is ``_view`` (``IndexView``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..store import layout
from ._columns import ColumnCache, Columns
from ._records import Record, record_of
from ._refresh import ensure_schema, read_meta, refresh_to
from ._view import IndexView

if TYPE_CHECKING:
    from ..store.state import RunState
    from ..store.tracking import GitStore

_log = logging.getLogger("gitexp")
_BUSY_TIMEOUT_S = 300.0


# -- the index of one repository --------------------------------------------------------------------------
class RunIndex:
    """The search index of one repository's tracking branch."""

    def __init__(self, store: GitStore):
        self.store = store
        name = "index.sqlite" if store.repo.branch == "gitexp" else \
            f"index-{layout.encode_key(store.repo.branch).replace('/', '%2F')}.sqlite"
        self.path = os.path.join(store.repo.state_dir, name)
        self.lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0
        self._conn_inode: tuple[int, int] | None = None
        self._cache = ColumnCache()
        self._snapshots: dict[str, tuple[sqlite3.Connection, ColumnCache]] = {}
        self._pid = os.getpid()

    def _after_fork(self) -> None:
        # A child process shares nothing with its parent's connections or lock holders.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self.lock = threading.RLock()
            self._conn = None
            self._cache = ColumnCache()
            self._snapshots = {}

    # -- the connection --------------------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This process's connection; reopened after fork or when the file was deleted."""
        conn = self._conn
        if conn is not None and self._conn_pid == os.getpid():
            if self._conn_inode is None:  # the in-memory fallback
                return conn
            try:
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._conn_inode:
                    return conn
            except FileNotFoundError:
                pass
        if conn is not None and self._conn_pid == os.getpid():
            conn.close()
        self._conn = None
        try:
            try:
                conn = self._open()
            except sqlite3.DatabaseError as exc:
                if not _damaged(exc):
                    raise
                self._remove_files()  # a damaged index is rebuilt, never trusted
                conn = self._open()
            st = os.stat(self.path)
            inode: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except (OSError, sqlite3.OperationalError) as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            # A read-only repository, a full disk...: search from an index in memory.
            _log.warning("gitexp: cannot use the search index %s (%s); this process keeps one in memory",
                         self.path, exc)
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            ensure_schema(conn)
            inode = None
        self._conn = conn
        self._conn_pid = os.getpid()
        self._conn_inode = inode
        self._cache = ColumnCache()  # a new file: nothing cached belongs to it
        return conn

    def _open(self) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _remove_files(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        with self.lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None
            for snap, _cache in self._snapshots.values():
                snap.close()
            self._snapshots.clear()
            self._cache = ColumnCache()

    # -- views ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def view(self, as_of: str | None = None) -> Iterator[IndexView]:
        """A consistent view for one search: the branch tip (with this process's pending
        changes and live runs) or, with `as_of`, the given commit."""
        self._after_fork()
        with self.lock:
            if as_of is not None:
                conn, cache = self._snapshot(as_of)
                with _reading(conn):
                    cache.sync(conn, read_meta(conn))
                    yield IndexView(self.store, conn, as_of, Columns(conn, cache, {}), {})
                return
            for attempt in range(2):
                began = False
                try:
                    conn = self.connection()
                    commit, overlay = self._refresh_live(conn)
                    began = _begin_reading(conn)
                    meta = read_meta(conn)
                    self._cache.sync(conn, meta)
                    records = _overlay_records(conn, overlay, max(self._cache.n, int(meta.get("next_rid", 1))))
                    break
                except sqlite3.DatabaseError as exc:
                    if began:
                        conn.execute("COMMIT")
                    if attempt or not _damaged(exc):
                        raise
                    self.close()  # a damaged index is rebuilt, never trusted
                    self._remove_files()
            try:
                deleted = (json.loads(meta["deleted_experiments"])
                           if meta.get("commit", "") == (commit or "") and "deleted_experiments" in meta else None)
                yield IndexView(self.store, conn, commit, Columns(conn, self._cache, records), records, deleted)
            finally:
                if began:
                    conn.execute("COMMIT")

    def query(self, fn: Callable[[IndexView], Any], as_of: str | None = None) -> Any:
        """fn(view) on a view; if the index turns out damaged while fn reads it (columns are read
        on demand), the index is rebuilt and fn runs once more."""
        try:
            with self.view(as_of) as view:
                return fn(view)
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc) or as_of is not None:
                raise
            with self.lock:
                self.close()
                self._remove_files()
        with self.view(as_of) as view:
            return fn(view)

    def _refresh_live(self, conn: sqlite3.Connection) -> tuple[str | None, list[RunState]]:
        """Refresh to the tip; the states of runs with pending changes in this process."""
        branch = self.store.branch
        for _ in range(100):
            tip = branch.tip()
            refresh_to(conn, self.store, tip)
            overlay = self._pending_states()
            if branch.tip() == tip:  # nothing was committed while we looked at the sessions
                return tip, overlay
        return tip, overlay

    def _pending_states(self) -> list[RunState]:
        from ..exceptions import ResourceDoesNotExist

        states = []
        wanted = self.store.pending_run_ids()
        # Runs in progress in any process: their last checkpoint is on their live ref.
        wanted += [run_id for run_id in self.store.branch.live_commits() if run_id not in wanted]
        for run_id in wanted:
            try:
                states.append(self.store.run_state(run_id))
            except ResourceDoesNotExist:
                continue
        return states

    def _snapshot(self, commit: str) -> tuple[sqlite3.Connection, ColumnCache]:
        found = self._snapshots.get(commit)
        if found is None:
            live = self.connection()
            refresh_to(live, self.store, self.store.branch.tip())
            snap = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            live.backup(snap)
            refresh_to(snap, self.store, commit)
            while self._snapshots:  # one past state at a time: each is a copy of the index
                self._snapshots.pop(next(iter(self._snapshots)))[0].close()
            found = self._snapshots[commit] = (snap, ColumnCache())
        return found

    def rebuild(self) -> None:
        """Drop the index and build it again from the branch."""
        with self.lock:
            self.close()
            self._remove_files()
            refresh_to(self.connection(), self.store, self.store.branch.tip())


def _begin_reading(conn: sqlite3.Connection) -> bool:
    """Start one read transaction, so every statement of a search sees the same state of the
    index; False inside one already (a view inside a view)."""
    if conn.in_transaction:
        return False
    conn.execute("BEGIN")
    return True


@contextlib.contextmanager
def _reading(conn: sqlite3.Connection) -> Iterator[None]:
    began = _begin_reading(conn)
    try:
        yield
    finally:
        if began:
            conn.execute("COMMIT")


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    """A damaged file (rebuild it), as opposed to a busy or locked one (wait or report)."""
    return not isinstance(exc, sqlite3.OperationalError) or "malformed" in str(exc) or "not a database" in str(exc)


def _overlay_records(conn: sqlite3.Connection, states: list[RunState], next_rid: int) -> dict[int, Record]:
    """Row id -> record of each run with pending changes (new runs get row ids past the index's)."""
    if not states:
        return {}
    ids = json.dumps([s.run_id for s in states])
    existing = dict(conn.execute(
        "SELECT run_id, rid FROM runs WHERE run_id IN (SELECT value FROM json_each(?))", (ids,)).fetchall())
    out: dict[int, Record] = {}
    for state in states:
        rid = existing.get(state.run_id)
        if rid is None:
            rid, next_rid = next_rid, next_rid + 1
        out[rid] = record_of(state)
    return out


def index_for(store: GitStore) -> RunIndex:
    """The store's search index (one per store: ``GitStore.search_index``)."""
    return store.search_index
