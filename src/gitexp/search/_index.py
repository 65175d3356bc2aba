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
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import secrets
import sqlite3
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from ..entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LifecycleStage,
    Metric,
    Run,
    RunData,
    RunInfo,
    RunInputs,
)
from ..store import layout
from . import _build
from ._columns import _STR, ColumnCache, Columns, _value_type, encode_column, sort_codes
from ._records import ATTR, ATTR_NAMES, DATASET, METRIC, PARAM, TAG, Record, load_doc, record_keys, record_of
from ._filter import Clause, OrderKey

if TYPE_CHECKING:
    from ..store.state import RunState
    from ..store.tracking import GitStore

SCHEMA_VERSION = 3
_log = logging.getLogger("gitexp")
_BUSY_TIMEOUT_S = 300.0
# Rewrite the columns once this many runs changed since they were written: readers apply
# each changed run to every column they read, so this bounds what a fresh process redoes.
COMPACT_AFTER = 1000

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE buckets (name TEXT PRIMARY KEY, tree TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE runs (
    rid INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    bucket TEXT NOT NULL,
    tree TEXT NOT NULL,
    experiment_id TEXT NOT NULL,
    run_name TEXT,
    user_id TEXT,
    status TEXT,
    start_time INTEGER,
    end_time INTEGER,
    stage TEXT NOT NULL,
    doc TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX runs_by_bucket ON runs (bucket);
CREATE INDEX runs_by_seq ON runs (seq);
CREATE TABLE dead (rid INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE columns (kind TEXT NOT NULL, key TEXT NOT NULL, experiments TEXT NOT NULL, data BLOB NOT NULL,
                      PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE VIEW metrics AS SELECT r.rid AS rid, j.key AS key, json_extract(j.value, '$[2]') AS value,
    json_extract(j.value, '$[0]') AS step, json_extract(j.value, '$[1]') AS timestamp
    FROM runs r, json_each(r.doc, '$.m') j;
CREATE VIEW params AS SELECT r.rid AS rid, j.key AS key, j.value AS value FROM runs r, json_each(r.doc, '$.p') j;
CREATE VIEW tags AS SELECT r.rid AS rid, j.key AS key, j.value AS value FROM runs r, json_each(r.doc, '$.t') j;
"""
_RUN_ROW = "rid, run_id, bucket, tree, experiment_id, run_name, user_id, status, start_time, end_time, stage, doc, seq"
_INSERT_RUN = f"INSERT OR REPLACE INTO runs ({_RUN_ROW}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
_ENTITY_ROW = "rid, run_id, experiment_id, run_name, user_id, status, start_time, end_time, stage, doc"


def _format_fingerprint() -> str:
    # Rebuild the index when how gitexp derives indexed values changes.
    return f"{SCHEMA_VERSION}:{layout.artifact_uri('RUN')}"


def _glob(pattern: str) -> str:
    """A LIKE pattern as a GLOB pattern: SQL's case-sensitive LIKE (MLflow's LIKE)."""
    special = {"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}
    return "".join(special.get(c, c) for c in pattern)


@contextlib.contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def _set_meta(conn: sqlite3.Connection, **values: Any) -> None:
    conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in values.items()])


def refresh_to(conn: sqlite3.Connection, store: "GitStore", commit: str | None) -> None:
    """Bring the index in `conn` to the state of `commit` (None: an empty branch)."""
    meta = _meta(conn)
    if meta.get("commit", "") == (commit or ""):
        return
    with _write(conn):
        meta = _meta(conn)  # another process may have done it while we waited for the lock
        if meta.get("commit", "") == (commit or ""):
            return
        branch = store.branch
        root = branch.tree_of(commit) if commit else None
        runs_tree = branch.subtree(root, layout.RUNS) if root else None
        if meta.get("runs_tree", "") != (runs_tree or ""):
            _sync_runs(conn, store, runs_tree, meta)
        # The deleted experiments, kept with the commit they are of, so that a search in a new
        # process on a current index reads nothing from git (no `git cat-file` to start).
        experiments_tree = branch.subtree(root, layout.EXPERIMENTS) if root else None
        if meta.get("experiments_tree") != (experiments_tree or "") or "deleted_experiments" not in meta:
            _set_meta(conn, experiments_tree=experiments_tree or "",
                      deleted_experiments=json.dumps(deleted_experiments(store, root)))
        _set_meta(conn, commit=commit or "", runs_tree=runs_tree or "")


def deleted_experiments(store: "GitStore", root: str | None) -> list[str]:
    experiments = store.branch.experiments(root) if root else {}
    return sorted(e for e, s in experiments.items() if s.lifecycle_stage == LifecycleStage.DELETED)


def _sync_runs(conn: sqlite3.Connection, store: "GitStore", runs_tree: str | None, meta: dict[str, str]) -> None:
    odb = store.branch.odb
    old_buckets = dict(conn.execute("SELECT name, tree FROM buckets").fetchall())
    new_buckets = {e.name: e.sha for e in odb.read_tree(runs_tree) if e.is_tree} if runs_tree else {}
    changed = [name for name, tree in new_buckets.items() if old_buckets.get(name) != tree]
    gone = [name for name in old_buckets if name not in new_buckets]
    if not changed and not gone:
        return
    workers = None
    try:
        # The runs now in the changed buckets...
        if len(changed) > 16:
            from ..store.objects import decode_tree

            objects = odb.read_many_typed([new_buckets[name] for name in changed])
            if not old_buckets:  # an empty index: start the workers of a cold build now, if it is big
                entry = odb.hash_len + 40  # "40000 " + a run id + NUL + object id
                workers = _build.Workers.start(store.branch, sum(len(o[1]) for o in objects.values()) // entry)
            listings = {name: decode_tree(objects[new_buckets[name]][1], odb.hash_len) for name in changed}
        else:
            listings = {name: odb.read_tree(new_buckets[name]) for name in changed}
        _sync_listed(conn, store, meta, new_buckets, changed, gone, listings, workers)
    finally:
        if workers is not None:
            workers.close()


def _sync_listed(conn: sqlite3.Connection, store: "GitStore", meta: dict[str, str], new_buckets: dict[str, str],
                 changed: list[str], gone: list[str], listings: dict, workers: "_build.Workers | None") -> None:
    now: dict[str, tuple[str, str]] = {}
    for name in sorted(listings):
        for entry in listings[name]:
            if entry.is_tree:
                now[entry.name] = (name, entry.sha)
    # ...against what the index holds for them.
    before = {run_id: (rid, tree) for rid, run_id, tree in conn.execute(
        "SELECT rid, run_id, tree FROM runs WHERE bucket IN (SELECT value FROM json_each(?))",
        (json.dumps(changed + gone),))}
    removed = [rid for run_id, (rid, _) in before.items() if run_id not in now]
    to_fold = sorted(run_id for run_id, (_, tree) in now.items() if before.get(run_id, (0, None))[1] != tree)
    seq = int(meta.get("seq", 0)) + 1
    next_rid = int(meta.get("next_rid", 1))
    items = []
    for run_id in to_fold:
        rid = before[run_id][0] if run_id in before else None
        if rid is None:
            rid, next_rid = next_rid, next_rid + 1
        bucket, tree = now[run_id]
        items.append((rid, run_id, bucket, tree))
    cold = not before and conn.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is None
    if removed:
        ids = json.dumps(removed)
        conn.execute("DELETE FROM runs WHERE rid IN (SELECT value FROM json_each(?))", (ids,))
        conn.execute("INSERT OR REPLACE INTO dead SELECT value, ? FROM json_each(?)", (seq, ids))
    if cold:
        _build_columns(conn, store, items, seq, workers)
        cols_seq = seq
    else:
        for _number, rows, _pieces in _build.fold_all(store.branch, items, workers):
            conn.executemany(_INSERT_RUN, [row + (seq,) for row in rows])
        cols_seq = int(meta.get("cols_seq", 0))
        pending = conn.execute("SELECT (SELECT count(*) FROM runs WHERE seq > ?) + "
                               "(SELECT count(*) FROM dead WHERE seq > ?)", (cols_seq, cols_seq)).fetchone()[0]
        if pending >= COMPACT_AFTER:
            _compact(conn, {**meta, "seq": str(seq), "next_rid": str(next_rid)})
            cols_seq = seq
    conn.executemany("INSERT OR REPLACE INTO buckets VALUES (?, ?)", [(n, new_buckets[n]) for n in changed])
    conn.executemany("DELETE FROM buckets WHERE name = ?", [(n,) for n in gone])
    _set_meta(conn, seq=seq, next_rid=next_rid, cols_seq=cols_seq)


def _build_columns(conn: sqlite3.Connection, store: "GitStore", items: list[tuple], seq: int,
                   workers: "_build.Workers | None" = None) -> None:
    """A cold build: fold every run (in worker processes when there are many), insert the
    rows, then write every column at once."""
    # Folding allocates millions of objects and keeps many alive (slices, column pieces,
    # the branch's folded-state cache): with the cyclic GC on, its full collections
    # rescan them again and again (~10% of a 100,000-run build).  Nothing built here is
    # cyclic garbage; the collector is on again afterwards if it was before.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _build_columns_now(conn, store, items, seq, workers)
    finally:
        # The branch's cache of folded states now holds the last 50,000 runs folded here,
        # which nothing is about to read: dropped, so the collector's next full pass (and
        # this process's memory) is not about them.
        store.branch.forget_folded_runs()
        if collecting:
            gc.enable()


def _build_columns_now(conn: sqlite3.Connection, store: "GitStore", items: list[tuple], seq: int,
                       workers: "_build.Workers | None") -> None:
    columns = _Merger()
    # The runs table is empty: its secondary indexes are built once, after the rows.
    conn.execute("DROP INDEX IF EXISTS runs_by_bucket")
    conn.execute("DROP INDEX IF EXISTS runs_by_seq")
    for number, rows, pieces in _build.fold_all(store.branch, items, workers):
        conn.executemany(_INSERT_RUN, [row + (seq,) for row in rows])
        columns.add(number, pieces)
    for statement in _SCHEMA.split(";"):
        if "CREATE INDEX runs_by" in statement:
            conn.execute(statement)
    conn.execute("DELETE FROM columns")
    conn.executemany("INSERT INTO columns VALUES (?, ?, ?, ?)", columns.blobs())
    conn.execute("DELETE FROM dead")


class _Merger:
    """Columns from the pieces of many slices, arriving in any order.  Strings are recoded
    into one dictionary per key as each slice arrives (while the workers still fold)."""

    def __init__(self) -> None:
        self.pieces: dict[tuple[str, str], dict[int, tuple[np.ndarray, Any]]] = {}
        self.positions: dict[tuple[str, str], dict[str, int]] = {}

    def add(self, number: int, pieces: dict) -> None:
        for (kind, key), (rids, values) in pieces.items():
            rids = np.frombuffer(rids, dtype=np.int32)
            if _value_type(kind, key) == _STR:
                codes, distinct = values
                position = self.positions.setdefault((kind, key), {})
                setdefault = position.setdefault
                local = np.fromiter((setdefault(v, len(position)) for v in distinct), dtype=np.int32,
                                    count=len(distinct))
                values = local[np.frombuffer(codes, dtype=np.int32)]
            else:
                values = np.frombuffer(values, dtype=np.float64 if kind == METRIC else np.int64)
            self.pieces.setdefault((kind, key), {})[number] = (rids, values)

    def column(self, kind: str, key: str) -> tuple[np.ndarray, Any]:
        """(rids, values) in row id order; strings as (codes, sorted distinct strings)."""
        numbered = self.pieces[(kind, key)]
        order = sorted(numbered)
        rids = np.concatenate([numbered[n][0] for n in order])
        values: Any = np.concatenate([numbered[n][1] for n in order])
        if _value_type(kind, key) == _STR:
            values = sort_codes(values, list(self.positions[(kind, key)]))
        return rids, values

    def blobs(self) -> list[tuple[str, str, str, bytes]]:
        experiment_codes = np.full(1, -1, dtype=np.int64)
        experiment_names: list[str] = []
        if (ATTR, "experiment_id") in self.pieces:
            rids, (codes, experiment_names) = self.column(ATTR, "experiment_id")
            experiment_codes = np.full(int(rids.max()) + 1, -1, dtype=np.int64)
            experiment_codes[rids] = codes
        out = []
        for kind, key in self.pieces:
            rids, values = self.column(kind, key)
            experiments: list[str] = []
            if kind != ATTR:
                codes = np.unique(experiment_codes[rids])
                experiments = [experiment_names[c] for c in codes.tolist() if c >= 0]
            out.append((kind, key, json.dumps(experiments), encode_column(kind, key, rids, values)))
        return out


def _compact(conn: sqlite3.Connection, meta: dict[str, str]) -> None:
    """Rewrite every column from the stored columns and the runs changed since (inside the refresh)."""
    cache = ColumnCache()
    cache.sync(conn, meta)
    keys = [(kind, key) for kind, key in conn.execute("SELECT kind, key FROM columns")]
    for record in cache.changes.values():
        if record is not None:
            keys.extend(record_keys(record))
    keys.extend((ATTR, name) for name in ATTR_NAMES)
    experiments = cache.column(conn, ATTR, "experiment_id", keep=True)
    blobs, empty = [], []
    for kind, key in dict.fromkeys(keys):
        col = cache.column(conn, kind, key, keep=False)
        rids, values = _sparse(kind, key, col)
        if not len(rids):
            empty.append((kind, key))
            continue
        names: list[str] = []
        if kind != ATTR:
            codes = experiments.codes[rids]
            names = [experiments.uniques[c] for c in np.unique(codes[codes >= 0])]
        blobs.append((kind, key, json.dumps(names), encode_column(kind, key, rids, values)))
    conn.executemany("INSERT OR REPLACE INTO columns VALUES (?, ?, ?, ?)", blobs)
    conn.executemany("DELETE FROM columns WHERE kind = ? AND key = ?", empty)
    conn.execute("DELETE FROM dead")


def _sparse(kind: str, key: str, col: Any) -> tuple[np.ndarray, Any]:
    if kind == DATASET:
        keep = col.codes >= 0
        return col.rids[keep], [col.uniques[c] for c in col.codes[keep].tolist()]
    if _value_type(kind, key) == _STR:
        rids = np.flatnonzero(col.codes >= 0)
        objects = col.objects()
        return rids, objects[col.codes[rids]].tolist()
    rids = np.flatnonzero(col.present)
    return rids, col.values[rids]


# -- the index of one repository --------------------------------------------------------------------------
class RunIndex:
    """The search index of one repository's tracking branch."""

    def __init__(self, store: "GitStore"):
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
            _ensure_schema(conn)
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
            _ensure_schema(conn)
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
    def view(self, as_of: str | None = None) -> Iterator["IndexView"]:
        """A consistent view for one search: the branch tip (with this process's pending
        changes and live runs) or, with `as_of`, the given commit."""
        self._after_fork()
        with self.lock:
            if as_of is not None:
                conn, cache = self._snapshot(as_of)
                with _reading(conn):
                    cache.sync(conn, _meta(conn))
                    yield IndexView(self.store, conn, as_of, Columns(conn, cache, {}), {})
                return
            for attempt in range(2):
                began = False
                try:
                    conn = self.connection()
                    commit, overlay = self._refresh_live(conn)
                    began = _begin_reading(conn)
                    meta = _meta(conn)
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

    def query(self, fn: "Callable[[IndexView], Any]", as_of: str | None = None) -> Any:
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

    def _refresh_live(self, conn: sqlite3.Connection) -> tuple[str | None, list["RunState"]]:
        """Refresh to the tip; the states of runs with pending changes in this process."""
        branch = self.store.branch
        for _ in range(100):
            tip = branch.tip()
            refresh_to(conn, self.store, tip)
            overlay = self._pending_states()
            if branch.tip() == tip:  # nothing was committed while we looked at the sessions
                return tip, overlay
        return tip, overlay

    def _pending_states(self) -> list["RunState"]:
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


def _ensure_schema(conn: sqlite3.Connection) -> None:
    fingerprint = _format_fingerprint()
    try:
        current = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    except sqlite3.OperationalError:
        current = None
    if current is not None and current[0] == fingerprint:
        return
    with _write(conn):
        try:
            current = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except sqlite3.OperationalError:
            current = None
        if current is not None and current[0] == fingerprint:
            return
        objects = conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('view', 'table') "
                               "AND name NOT LIKE 'sqlite_%'").fetchall()
        for kind, name in sorted(objects, key=lambda o: o[0] != "view"):  # views first
            conn.execute(f'DROP {kind.upper()} IF EXISTS "{name}"')
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        _set_meta(conn, format=fingerprint, epoch=secrets.token_hex(8), seq=0, cols_seq=0, next_rid=1)


def _overlay_records(conn: sqlite3.Connection, states: list["RunState"], next_rid: int) -> dict[int, Record]:
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


# -- querying ----------------------------------------------------------------------------------------------
class IndexView:
    """One search's view of the index: filters and orders on columns, entities from documents."""

    def __init__(self, store: "GitStore", conn: sqlite3.Connection, commit: str | None, columns: Columns,
                 overlay: dict[int, Record], deleted: list[str] | None = None):
        self.store = store
        self.conn = conn
        self.commit = commit
        self.cols = columns
        self.overlay = overlay
        if deleted is None:
            deleted = deleted_experiments(store, store.branch.tree_of(commit) if commit else None)
        self.deleted_experiments = deleted

    def select(self, experiment_ids: list[str], clauses: list[Clause], order: list[OrderKey],
               view_type: int, offset: int, limit: int | None) -> list[int]:
        """Row ids of the matching runs, in order, `limit` from `offset`."""
        rids = self.cols.where([str(e) for e in experiment_ids], clauses, view_type, self.deleted_experiments)
        return self.cols.order(rids, order, offset, limit)

    def keys(self, experiment_ids: list[str], view_type: int) -> dict[str, list[str]]:
        """The metric, param and tag keys the selected runs use."""
        rids = self.cols.where([str(e) for e in experiment_ids], [], view_type, self.deleted_experiments)
        out: dict[str, list[str]] = {"metrics": [], "params": [], "tags": []}
        if not len(rids):
            return out
        wanted = set(str(e) for e in experiment_ids)
        group = {METRIC: "metrics", PARAM: "params", TAG: "tags"}
        for (kind, key), experiments in self.cols.keys().items():
            if kind in group and experiments & wanted and self._present(kind, key, rids).any():
                out[group[kind]].append(key)
        for names in out.values():
            names.sort()
        return out

    def _present(self, kind: str, key: str, rids: np.ndarray, keep: bool = False) -> np.ndarray:
        col = self.cols.get(kind, key, keep=keep or (kind, key) in self.cols.cache.columns)
        return (col.present if kind == METRIC else col.codes >= 0)[rids]

    def lifecycle(self, stage: str, experiment_id: str) -> str:
        if stage == LifecycleStage.DELETED or experiment_id in self.deleted_experiments:
            return LifecycleStage.DELETED
        return LifecycleStage.ACTIVE

    # -- reading rows ----------------------------------------------------------------------------------
    def _rows(self, rids: list[int]) -> dict[int, tuple]:
        """rid -> (run_id, experiment_id, run_name, user_id, status, start, end, stage, metrics, params,
        tags, inputs) for committed runs and pending ones (shared: copy before changing)."""
        overlay = self.overlay
        cached = self.cols.cache.rows
        out: dict[int, tuple] = {}
        missing = []
        for rid in rids:
            record = overlay.get(rid) if overlay else None
            if record is not None:
                out[rid] = record[:8] + (dict(sorted(record[8].items())), dict(sorted(record[9].items())),
                                         dict(sorted(record[10].items())), record[11])
                continue
            row = cached.get(rid)
            if row is None:
                missing.append(rid)
            else:
                cached.move_to_end(rid)
                out[rid] = row
        if missing:
            if len(missing) == 1:
                rows = self.conn.execute(f"SELECT {_ENTITY_ROW} FROM runs WHERE rid = ?", (missing[0],)).fetchall()
            else:
                rows = self.conn.execute(f"SELECT {_ENTITY_ROW} FROM runs WHERE rid IN "
                                         "(SELECT value FROM json_each(?))", (json.dumps(missing),)).fetchall()
            for row in rows:
                out[row[0]] = cached[row[0]] = row[1:9] + load_doc(row[9])
            while len(cached) > self.cols.cache.ROWS_KEPT:
                cached.popitem(last=False)
        return out

    def runs(self, rids: list[int]) -> list[Run]:
        """Run entities for row ids, in that order."""
        if not rids:
            return []
        rows = self._rows(rids)
        lifecycle = self.lifecycle
        artifact_uri = layout.artifact_uri
        out = []
        for rid in rids:
            row = rows.get(rid)
            if row is None:
                continue
            run_id, experiment_id, run_name, user_id, status, start, end, stage, metrics, params, tags, inputs = row
            info = RunInfo(run_id, experiment_id, user_id or "", status, start, end, lifecycle(stage, experiment_id),
                           artifact_uri(run_id), run_name)
            data = RunData([Metric(key, value, ts, step, None, None, None, run_id)
                            for key, (step, ts, value) in metrics.items()])
            data._params = dict(params)
            data._tags = dict(tags)
            out.append(Run(info, data, RunInputs([_dataset_input(i.get("dataset") or {}, i.get("tags") or {})
                                                  for i in inputs]) if inputs else RunInputs()))
        return out

    def columns(self, rids: list[int]) -> dict[str, Any]:
        """Column-wise data for a DataFrame of these runs (MLflow's columns), without entities."""
        cols = self.cols
        sel = np.asarray(rids, dtype=np.int64)
        run_ids = cols.get(ATTR, "run_id")
        experiments = cols.get(ATTR, "experiment_id")
        out_run_ids = run_ids.objects()[run_ids.codes[sel]]
        exp_codes = experiments.codes[sel]
        out_experiments = experiments.objects()[exp_codes]
        stage = cols.get(ATTR, "stage")
        deleted = (stage.codes[sel] == stage.code_of(LifecycleStage.DELETED)) if stage.code_of(
            LifecycleStage.DELETED) >= 0 else np.zeros(len(sel), dtype=bool)
        deleted_codes = [experiments.code_of(e) for e in self.deleted_experiments]
        deleted |= np.isin(exp_codes, [c for c in deleted_codes if c >= 0])
        lifecycle = np.where(deleted, LifecycleStage.DELETED, LifecycleStage.ACTIVE).astype(object)

        def strings(name: str) -> np.ndarray:
            col = cols.get(ATTR, name)
            return col.objects()[col.codes[sel]]

        def times(name: str) -> np.ndarray:
            col = cols.get(ATTR, name)
            return np.where(col.present[sel], col.values[sel].astype(np.float64), np.nan)

        artifact_uri = layout.artifact_uri
        data: dict[str, Any] = {
            "run_id": out_run_ids,
            "experiment_id": out_experiments,
            "status": strings("status"),
            "artifact_uri": np.asarray([artifact_uri(r) for r in out_run_ids.tolist()], dtype=object),
            "start_time": times("start_time"),
            "end_time": times("end_time"),
            "lifecycle_stage": lifecycle,
            "run_name": strings("run_name"),
            "metrics": {}, "params": {}, "tags": {},
        }
        if not len(sel):
            return data
        present_experiments = {experiments.uniques[c] for c in np.unique(exp_codes[exp_codes >= 0]).tolist()}
        candidates = [(kind, key) for (kind, key), exps in cols.keys().items()
                      if kind in (METRIC, PARAM, TAG) and exps & present_experiments]
        keep = len(candidates) <= 256
        group = {METRIC: "metrics", PARAM: "params", TAG: "tags"}
        for kind, key in candidates:
            col = cols.get(kind, key, keep=keep or (kind, key) in cols.cache.columns)
            if kind == METRIC:
                if col.present[sel].any():
                    data["metrics"][key] = col.values[sel]
            else:
                codes = col.codes[sel]
                if (codes >= 0).any():
                    data[group[kind]][key] = col.objects()[codes]
        return data


def _dataset_input(dataset: dict, tags: dict) -> DatasetInput:
    return DatasetInput(
        Dataset(name=dataset.get("name", ""), digest=dataset.get("digest", ""),
                source_type=dataset.get("source_type", ""), source=dataset.get("source", ""),
                schema=dataset.get("schema"), profile=dataset.get("profile")),
        [InputTag(k, v) for k, v in tags.items()],
    )


def index_for(store: "GitStore") -> RunIndex:
    """The store's search index (one per store: ``GitStore.search_index``)."""
    return store.search_index
