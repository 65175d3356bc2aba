"""The search index: a derived SQLite file, refreshed incrementally from the branch.

``.git/gitexp/index.sqlite`` (WAL mode, shared by every process and worktree of
the repository) holds one row per run -- info, params, tags, latest metrics and
dataset inputs -- plus the ids of the git trees it was built from.  It is never
the truth: delete it and the next search rebuilds it from the branch.

Freshness.  Every search reads the branch tip (one small file) and compares it
with the commit the index reflects.  When the branch moved (a commit by this or
another process, a fetch or pull), the index compares the tree id of each
``.tracking/runs/<xx>`` bucket and then of each run directory in changed
buckets with what it recorded, and folds only the runs whose tree changed
(through ``TrackingBranch.read_run_trees``: the branch's own fold, objects
fetched in pipelined batches).  Runs with changes still pending in this
process (a session's journal not yet committed) are written into the index
inside a transaction that is rolled back when the search is done, so a search
sees everything this process logged a microsecond ago, and nothing it did not.

Concurrency.  Refreshes are write transactions (``BEGIN IMMEDIATE``); a second
process that wanted the same refresh finds it done when it gets the lock.
Readers never wait for writers (WAL).

``as_of`` views copy the index into memory (SQLite's backup API) and refresh
the copy towards the older commit: the same diff, in the other direction.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import threading
from typing import TYPE_CHECKING, Any, Iterator

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
    ViewType,
)
from ..exceptions import SearchError
from ..store import layout
from ._filter import Clause, OrderKey

if TYPE_CHECKING:
    from ..store.state import RunState
    from ..store.tracking import GitStore

SCHEMA_VERSION = 2
_log = logging.getLogger("gitexp")
_BUSY_TIMEOUT_S = 300.0
_CONTEXT_TAG = "mlflow.data.context"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, tree TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
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
    artifact_uri TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment_id, start_time);
CREATE INDEX IF NOT EXISTS runs_by_bucket ON runs (bucket);
CREATE TABLE IF NOT EXISTS metrics (
    rid INTEGER NOT NULL, key TEXT NOT NULL, value REAL, is_nan INTEGER NOT NULL,
    step INTEGER NOT NULL, timestamp INTEGER NOT NULL, PRIMARY KEY (rid, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metrics_by_value ON metrics (key, value, is_nan);
CREATE TABLE IF NOT EXISTS params (
    rid INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (rid, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS params_by_value ON params (key, value);
CREATE TABLE IF NOT EXISTS tags (
    rid INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (rid, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_by_value ON tags (key, value);
CREATE TABLE IF NOT EXISTS inputs (
    rid INTEGER NOT NULL, pos INTEGER NOT NULL, name TEXT, digest TEXT, context TEXT,
    dataset TEXT NOT NULL, tags TEXT NOT NULL, PRIMARY KEY (rid, pos)) WITHOUT ROWID;
"""
_CHILD_TABLES = ("metrics", "params", "tags", "inputs")
_DECODER = json.JSONDecoder()
_SECONDARY_INDEXES = ("runs_by_experiment", "runs_by_bucket", "metrics_by_value", "params_by_value", "tags_by_value")
_RUN_COLUMNS = ("run_id", "experiment_id", "run_name", "user_id", "status", "start_time", "end_time",
                "stage", "artifact_uri")
_ATTRIBUTE_COLUMNS = {"run_id": "run_id", "run_name": "run_name", "status": "status", "user_id": "user_id",
                      "artifact_uri": "artifact_uri", "start_time": "start_time", "end_time": "end_time"}


def _format_fingerprint() -> str:
    # Rebuild the index when how gitexp derives indexed values changes.
    return f"{SCHEMA_VERSION}:{layout.artifact_uri('RUN')}"


def _glob(pattern: str) -> str:
    """A LIKE pattern as a GLOB pattern: SQL's case-sensitive LIKE (MLflow's LIKE)."""
    special = {"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}
    return "".join(special.get(c, c) for c in pattern)


# -- building rows from folded runs ---------------------------------------------------------------------
class _Rows:
    """Rows of the child tables, collected for executemany."""

    def __init__(self) -> None:
        self.runs: list[tuple] = []
        self.metrics: list[tuple] = []
        self.params: list[tuple] = []
        self.tags: list[tuple] = []
        self.inputs: list[tuple] = []

    def add(self, rid: int, state: "RunState", bucket: str, tree: str) -> None:
        self.runs.append((rid, state.run_id, bucket, tree, state.experiment_id, state.run_name, state.user_id,
                          state.status, state.start_time, state.end_time, state.lifecycle_stage,
                          layout.artifact_uri(state.run_id)))
        for key, (step, ts, value) in state.latest_metrics().items():
            nan = math.isnan(value)
            self.metrics.append((rid, key, None if nan else value, 1 if nan else 0, step, ts))
        self.params.extend((rid, k, v) for k, v in state.params.items())
        self.tags.extend((rid, k, v) for k, v in state.tags.items())
        for pos, item in enumerate(state.inputs):
            dataset, tags = item.get("dataset") or {}, item.get("tags") or {}
            self.inputs.append((rid, pos, dataset.get("name"), dataset.get("digest"), tags.get(_CONTEXT_TAG),
                                json.dumps(dataset, default=str), json.dumps(tags, default=str)))

    def __len__(self) -> int:
        return len(self.runs)

    def write(self, conn: sqlite3.Connection) -> None:
        conn.executemany("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", self.runs)
        conn.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?)", self.metrics)
        conn.executemany("INSERT INTO params VALUES (?,?,?)", self.params)
        conn.executemany("INSERT INTO tags VALUES (?,?,?)", self.tags)
        conn.executemany("INSERT INTO inputs VALUES (?,?,?,?,?,?,?)", self.inputs)
        self.__init__()  # type: ignore[misc]


def _delete_runs(conn: sqlite3.Connection, rids: list[int]) -> None:
    if not rids:
        return
    ids = json.dumps(rids)
    for table in _CHILD_TABLES + ("runs",):
        conn.execute(f"DELETE FROM {table} WHERE rid IN (SELECT value FROM json_each(?))", (ids,))


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


def _set_meta(conn: sqlite3.Connection, **values: str) -> None:
    conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))


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
            _sync_runs(conn, store, runs_tree)
        _set_meta(conn, commit=commit or "", runs_tree=runs_tree or "")


def _sync_runs(conn: sqlite3.Connection, store: "GitStore", runs_tree: str | None) -> None:
    odb = store.branch.odb
    old_buckets = dict(conn.execute("SELECT name, tree FROM buckets").fetchall())
    new_buckets = {e.name: e.sha for e in odb.read_tree(runs_tree) if e.is_tree} if runs_tree else {}
    changed = [name for name, tree in new_buckets.items() if old_buckets.get(name) != tree]
    gone = [name for name in old_buckets if name not in new_buckets]
    if not changed and not gone:
        return
    # The runs now in the changed buckets...
    if len(changed) > 16:
        objects = odb.read_many_typed([new_buckets[name] for name in changed])
        from ..store.objects import decode_tree

        listings = {name: decode_tree(objects[new_buckets[name]][1], odb.hash_len) for name in changed}
    else:
        listings = {name: odb.read_tree(new_buckets[name]) for name in changed}
    now: dict[str, tuple[str, str]] = {}
    for name, entries in listings.items():
        for entry in entries:
            if entry.is_tree:
                now[entry.name] = (name, entry.sha)
    # ...against what the index holds for them.
    before = {run_id: (rid, tree) for rid, run_id, tree in conn.execute(
        "SELECT rid, run_id, tree FROM runs WHERE bucket IN (SELECT value FROM json_each(?))",
        (json.dumps(changed + gone),))}
    removed = [rid for run_id, (rid, _) in before.items() if run_id not in now]
    # A cold build fills empty tables: build the secondary indexes once, at the end.
    bulk = len(now) > 1000 and conn.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is None
    if bulk:
        for name in _SECONDARY_INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
    to_fold = {run_id: tree for run_id, (_, tree) in now.items() if before.get(run_id, (0, None))[1] != tree}
    replaced = [before[run_id][0] for run_id in to_fold if run_id in before]
    _delete_runs(conn, removed + replaced)
    next_rid = (conn.execute("SELECT coalesce(max(rid), 0) FROM runs").fetchone()[0] or 0) + 1
    rows = _Rows()
    for run_id, state in store.branch.read_run_trees(to_fold):
        if run_id in before:
            rid = before[run_id][0]
        else:
            rid, next_rid = next_rid, next_rid + 1
        bucket, tree = now[run_id]
        rows.add(rid, state, bucket, tree)
        if len(rows) >= 2000:
            rows.write(conn)
    rows.write(conn)
    if bulk:
        for statement in _SCHEMA.split(";"):
            if "CREATE INDEX" in statement:
                conn.execute(statement)
    conn.executemany("INSERT OR REPLACE INTO buckets VALUES (?, ?)", [(n, new_buckets[n]) for n in changed])
    conn.executemany("DELETE FROM buckets WHERE name = ?", [(n,) for n in gone])


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
        self._snapshots: dict[str, sqlite3.Connection] = {}
        self._pid = os.getpid()

    def _after_fork(self) -> None:
        # A child process shares nothing with its parent's connections or lock holders.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self.lock = threading.RLock()
            self._conn = None
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
            for snap in self._snapshots.values():
                snap.close()
            self._snapshots.clear()

    # -- views ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def view(self, as_of: str | None = None) -> Iterator["IndexView"]:
        """A consistent view for one search: the branch tip (with this process's pending
        changes) or, with `as_of`, the given commit."""
        self._after_fork()
        with self.lock:
            if as_of is not None:
                yield self._snapshot_view(as_of)
                return
            try:
                conn = self.connection()
                commit, overlay = self._refresh_live(conn)
            except sqlite3.DatabaseError as exc:
                if not _damaged(exc):
                    raise
                self.close()
                self._remove_files()
                conn = self.connection()
                commit, overlay = self._refresh_live(conn)
            if not overlay:
                yield IndexView(self.store, conn, commit)
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                _write_overlay(conn, overlay)
                yield IndexView(self.store, conn, commit)
            finally:
                conn.execute("ROLLBACK")

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
        from ..store.tracking import SESSIONS

        common = self.store.repo.common_dir
        states = []
        wanted = [run_id for (where, run_id), session in list(SESSIONS.by_run.items())
                  if where == common and session.pending]
        # Runs in progress in any process: their last checkpoint is on their live ref.
        wanted += [run_id for run_id in self.store.branch.live_commits() if run_id not in wanted]
        for run_id in wanted:
            try:
                states.append(self.store.run_state(run_id))
            except ResourceDoesNotExist:
                continue
        return states

    def _snapshot_view(self, commit: str) -> "IndexView":
        snap = self._snapshots.get(commit)
        if snap is None:
            live = self.connection()
            refresh_to(live, self.store, self.store.branch.tip())
            snap = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            live.backup(snap)
            refresh_to(snap, self.store, commit)
            while self._snapshots:  # one past state at a time: each is a copy of the index
                self._snapshots.pop(next(iter(self._snapshots))).close()
            self._snapshots[commit] = snap
        return IndexView(self.store, snap, commit)

    def rebuild(self) -> None:
        """Drop the index and build it again from the branch."""
        with self.lock:
            self.close()
            self._remove_files()
            refresh_to(self.connection(), self.store, self.store.branch.tip())


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
        for table in ("meta", "buckets", "runs") + _CHILD_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        _set_meta(conn, format=fingerprint)


def _write_overlay(conn: sqlite3.Connection, states: list["RunState"]) -> None:
    ids = json.dumps([s.run_id for s in states])
    existing = dict(conn.execute(
        "SELECT run_id, rid FROM runs WHERE run_id IN (SELECT value FROM json_each(?))", (ids,)).fetchall())
    # New rows are numbered above every current one (taken before the delete: a deleted run
    # keeps its rid below, and the largest rid may be one of them).
    next_rid = (conn.execute("SELECT coalesce(max(rid), 0) FROM runs").fetchone()[0] or 0) + 1
    _delete_runs(conn, list(existing.values()))
    rows = _Rows()
    for state in states:
        rid = existing.get(state.run_id)
        if rid is None:
            rid, next_rid = next_rid, next_rid + 1
        rows.add(rid, state, state.run_id[:2], "")
    rows.write(conn)


# -- querying ----------------------------------------------------------------------------------------------
class IndexView:
    """One search's view of the index: compiles filters and order_by to SQL."""

    def __init__(self, store: "GitStore", conn: sqlite3.Connection, commit: str | None):
        self.store = store
        self.conn = conn
        self.commit = commit
        root = store.branch.tree_of(commit) if commit else None
        experiments = store.branch.experiments(root) if root else {}
        self.deleted_experiments = sorted(e for e, s in experiments.items()
                                          if s.lifecycle_stage == LifecycleStage.DELETED)

    def _where(self, experiment_ids: list[str], clauses: list[Clause], view_type: int) -> tuple[list[str], list]:
        where, args = _experiment_condition(experiment_ids)
        deleted = json.dumps(self.deleted_experiments)
        if view_type == ViewType.ACTIVE_ONLY:
            where.append("r.stage = 'active' AND r.experiment_id NOT IN (SELECT value FROM json_each(?))")
            args.append(deleted)
        elif view_type == ViewType.DELETED_ONLY:
            where.append("(r.stage = 'deleted' OR r.experiment_id IN (SELECT value FROM json_each(?)))")
            args.append(deleted)
        for clause in clauses:
            sql, values = _clause_sql(clause)
            where.append(sql)
            args.extend(values)
        return where, args

    def select(self, experiment_ids: list[str], clauses: list[Clause], order: list[OrderKey],
               view_type: int, offset: int, limit: int | None) -> list[int]:
        """Row ids of the matching runs, in order, `limit` from `offset`."""
        where, args = self._where(experiment_ids, clauses, view_type)
        if len(order) == 1:
            return self._select_by_one_key(where, args, order[0], offset, limit)
        joins: list[str] = []
        join_args: list[Any] = []
        order_sql: list[str] = []
        orders_start_time = False
        for i, key in enumerate(order):
            direction = "" if key.ascending else " DESC"
            if key.entity == "attribute":
                column = f"r.{_ATTRIBUTE_COLUMNS[key.key]}"
                order_sql += [f"{column} IS NULL", column + direction]
                orders_start_time = orders_start_time or key.key == "start_time"
                continue
            table = {"metric": "metrics", "param": "params", "tag": "tags"}[key.entity]
            joins.append(f"LEFT JOIN {table} o{i} ON o{i}.rid = r.rid AND o{i}.key = ?")
            join_args.append(key.key)
            if key.entity == "metric":
                # MLflow's order: numbers, then NaN, then runs without the metric (either direction).
                order_sql += [f"CASE WHEN o{i}.is_nan = 1 THEN 1 WHEN o{i}.rid IS NULL THEN 2 ELSE 0 END",
                              f"o{i}.value{direction}"]
            else:
                order_sql += [f"o{i}.rid IS NULL", f"o{i}.value{direction}"]
        if not orders_start_time:
            order_sql.append("r.start_time DESC")
        order_sql.append("r.run_id")
        sql = (f"SELECT r.rid FROM runs r {' '.join(joins)} WHERE {' AND '.join(where)} "
               f"ORDER BY {', '.join(order_sql)} LIMIT ? OFFSET ?")
        rows = self.conn.execute(sql, join_args + args + [-1 if limit is None else limit, offset]).fetchall()
        return [r[0] for r in rows]

    def _select_by_one_key(self, where: list[str], args: list, key: OrderKey, offset: int,
                           limit: int | None) -> list[int]:
        """The same order as `select`'s general query, for one order_by key, as consecutive parts:
        runs with a value (numbers for metrics) in value order, then NaN metrics, then runs
        without the key, each part by start_time DESC, run_id.

        The first part walks the (key, value) index in order and stops at the page's end, so a
        first page sorted by a metric at 100,000 runs reads ~100 index entries instead of
        joining and sorting every run; later parts are read only when a page reaches them.
        """
        direction = "" if key.ascending else " DESC"
        ties = ["r.run_id"] if key.key == "start_time" and key.entity == "attribute" else ["r.start_time DESC",
                                                                                             "r.run_id"]
        base = " AND ".join(where)
        parts: list[tuple[str, list]] = []

        def part(join: str, join_args: list, condition: str, condition_args: list, order_sql: list[str]) -> None:
            parts.append((f"SELECT r.rid FROM runs r {join} WHERE {base} AND {condition} "
                          f"ORDER BY {', '.join(order_sql)}", join_args + args + condition_args))

        if key.entity == "attribute":
            column = f"r.{_ATTRIBUTE_COLUMNS[key.key]}"
            part("", [], f"{column} IS NOT NULL", [], [column + direction] + ties)
            part("", [], f"{column} IS NULL", [], ties)
        else:
            table = {"metric": "metrics", "param": "params", "tag": "tags"}[key.entity]
            join = f"JOIN {table} o ON o.rid = r.rid AND o.key = ?"
            if key.entity == "metric":
                part(join, [key.key], "o.is_nan = 0", [], [f"o.value{direction}"] + ties)
                part(join, [key.key], "o.is_nan = 1", [], ties)
            else:
                part(join, [key.key], "1", [], [f"o.value{direction}"] + ties)
            part("", [], f"NOT EXISTS (SELECT 1 FROM {table} x WHERE x.rid = r.rid AND x.key = ?)", [key.key], ties)
        out: list[int] = []
        skip = offset
        for sql, params in parts:
            want = -1 if limit is None else limit - len(out)
            if limit is not None and want <= 0:
                break
            rows = self.conn.execute(f"{sql} LIMIT ? OFFSET ?", params + [want, skip]).fetchall()
            out.extend(r[0] for r in rows)
            if rows:
                skip = 0  # the page started inside this part: the next part starts at its top
            elif skip:
                skip = max(0, skip - self.conn.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0])
        return out

    def keys(self, experiment_ids: list[str], view_type: int) -> dict[str, list[str]]:
        """The metric, param and tag keys the selected runs use.

        Distinct keys are found by a loose index scan (one seek per key on the
        (key, value) indexes), then each key is kept if one selected run has it,
        so the cost follows the number of keys, not of runs.
        """
        where, args = self._where(experiment_ids, [], view_type)
        out: dict[str, list[str]] = {}
        for group, table in (("metrics", "metrics"), ("params", "params"), ("tags", "tags")):
            sql = (f"WITH RECURSIVE k(key) AS (SELECT min(key) FROM {table} UNION ALL "
                   f"SELECT (SELECT min(key) FROM {table} WHERE key > k.key) FROM k WHERE k.key IS NOT NULL) "
                   f"SELECT k.key FROM k WHERE k.key IS NOT NULL AND EXISTS (SELECT 1 FROM {table} t "
                   f"JOIN runs r ON r.rid = t.rid WHERE t.key = k.key AND {' AND '.join(where)})")
            out[group] = [row[0] for row in self.conn.execute(sql, args)]
        return out

    # -- reading rows ----------------------------------------------------------------------------------
    # Params and tags come back as one JSON object per run (json_group_object: exact for
    # strings, and far fewer rows to hand to Python); metrics as rows, because SQLite's
    # JSON would round doubles to 15 digits.  A large selection scans the tables once
    # instead of seeking run by run.
    def _scan_all(self, rids: list[int]) -> bool:
        if len(rids) < 256:
            return False
        total = self.conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        return len(rids) * 3 > total

    def _objects(self, table: str, ids: str, scan: bool) -> Iterator[tuple[int, dict[str, str]]]:
        where = "" if scan else "WHERE rid IN (SELECT value FROM json_each(?))"
        cursor = self.conn.execute(f"SELECT rid, json_group_object(key, value) FROM {table} {where} GROUP BY rid",
                                   () if scan else (ids,))
        decode = _DECODER.raw_decode
        for rid, doc in cursor:
            yield rid, decode(doc)[0]

    def _metric_rows(self, columns: str, ids: str, scan: bool) -> list[tuple]:
        if scan:
            return self.conn.execute(f"SELECT rid, {columns} FROM metrics").fetchall()
        return self.conn.execute(
            f"SELECT rid, {columns} FROM metrics WHERE rid IN (SELECT value FROM json_each(?))", (ids,)).fetchall()

    def _info(self, ids: str) -> list[tuple]:
        return self.conn.execute(
            f"SELECT r.rid, {', '.join('r.' + c for c in _RUN_COLUMNS)} FROM json_each(?) j "
            "JOIN runs r ON r.rid = j.value ORDER BY j.key", (ids,)).fetchall()

    def lifecycle(self, stage: str, experiment_id: str) -> str:
        if stage == LifecycleStage.DELETED or experiment_id in self.deleted_experiments:
            return LifecycleStage.DELETED
        return LifecycleStage.ACTIVE

    def runs(self, rids: list[int]) -> list[Run]:
        """Run entities for row ids, in that order."""
        if not rids:
            return []
        ids = json.dumps(rids)
        scan = self._scan_all(rids)
        info_rows = self._info(ids)
        run_ids = {row[0]: row[1] for row in info_rows}
        metrics: dict[int, list[Metric]] = {}
        nan = math.nan
        for rid, key, value, is_nan, step, ts in self._metric_rows("key, value, is_nan, step, timestamp", ids, scan):
            run_id = run_ids.get(rid)
            if run_id is not None:
                metrics.setdefault(rid, []).append(Metric(key, nan if is_nan else value, ts, step, run_id=run_id))
        params = {rid: doc for rid, doc in self._objects("params", ids, scan) if rid in run_ids}
        tags = {rid: doc for rid, doc in self._objects("tags", ids, scan) if rid in run_ids}
        inputs: dict[int, list[DatasetInput]] = {}
        for rid, _pos, dataset_json, tags_json in self.conn.execute(
                "SELECT rid, pos, dataset, tags FROM inputs WHERE rid IN (SELECT value FROM json_each(?)) "
                "ORDER BY rid, pos", (ids,)):
            inputs.setdefault(rid, []).append(_dataset_input(json.loads(dataset_json), json.loads(tags_json)))
        out = []
        for rid, run_id, experiment_id, run_name, user_id, status, start, end, stage, artifact_uri in info_rows:
            info = RunInfo(run_id=run_id, experiment_id=experiment_id, user_id=user_id or "", status=status,
                           start_time=start, end_time=end, lifecycle_stage=self.lifecycle(stage, experiment_id),
                           artifact_uri=artifact_uri, run_name=run_name)
            out.append(Run(info, _run_data(metrics.get(rid), params.get(rid), tags.get(rid)),
                           RunInputs(inputs.get(rid))))
        return out

    def columns(self, rids: list[int]) -> dict[str, Any]:
        """Column-wise data for a DataFrame of these runs (MLflow's columns), without entities."""
        import numpy as np

        ids = json.dumps(rids)
        scan = self._scan_all(rids)
        info_rows = self._info(ids)
        n = len(info_rows)
        position = {row[0]: i for i, row in enumerate(info_rows)}
        metrics: dict[str, Any] = {}
        for rid, key, value in self._metric_rows("key, value", ids, scan):
            i = position.get(rid)
            if i is None:
                continue
            column = metrics.get(key)
            if column is None:
                column = metrics[key] = np.full(n, np.nan)
            if value is not None:  # None is NaN (SQLite stores NaN as NULL)
                column[i] = value
        groups: dict[str, dict[str, list]] = {"params": {}, "tags": {}}
        for table, columns in groups.items():
            for rid, doc in self._objects(table, ids, scan):
                i = position.get(rid)
                if i is None:
                    continue
                for key, value in doc.items():
                    column = columns.get(key)
                    if column is None:
                        column = columns[key] = [None] * n
                    column[i] = value
        return {
            "run_id": [r[1] for r in info_rows],
            "experiment_id": [r[2] for r in info_rows],
            "status": [r[5] for r in info_rows],
            "artifact_uri": [r[9] for r in info_rows],
            "start_time": np.array([r[6] if r[6] is not None else np.nan for r in info_rows], dtype="float64"),
            "end_time": np.array([r[7] if r[7] is not None else np.nan for r in info_rows], dtype="float64"),
            "lifecycle_stage": [self.lifecycle(r[8], r[2]) for r in info_rows],
            "run_name": [r[3] for r in info_rows],
            "metrics": metrics,
            "params": groups["params"],
            "tags": groups["tags"],
        }


def _experiment_condition(experiment_ids: list[str]) -> tuple[list[str], list[Any]]:
    # One experiment (the usual case) as an equality: SQLite then walks the
    # (experiment_id, start_time) index in order and a first page at 100,000 runs
    # takes well under a millisecond instead of sorting every run.
    if len(experiment_ids) == 1:
        return ["r.experiment_id = ?"], [str(experiment_ids[0])]
    return ["r.experiment_id IN (SELECT value FROM json_each(?))"], [json.dumps([str(e) for e in experiment_ids])]


def _run_data(metrics: list[Metric] | None, params: dict[str, str] | None, tags: dict[str, str] | None) -> RunData:
    # RunData keeps params and tags as plain dicts: hand it ours instead of building a
    # Param and a RunTag per value only for it to unpack them again.
    data = RunData(metrics=metrics)
    data._params = params or {}
    data._tags = tags or {}
    return data


def _dataset_input(dataset: dict, tags: dict) -> DatasetInput:
    return DatasetInput(
        Dataset(name=dataset.get("name", ""), digest=dataset.get("digest", ""),
                source_type=dataset.get("source_type", ""), source=dataset.get("source", ""),
                schema=dataset.get("schema"), profile=dataset.get("profile")),
        [InputTag(k, v) for k, v in tags.items()],
    )


def _clause_sql(clause: Clause) -> tuple[str, list[Any]]:
    op, value, entity = clause.op, clause.value, clause.entity
    if entity == "metric":
        number = float(value)  # type: ignore[arg-type]
        if op == "!=":
            # NaN differs from every number; like MLflow, it never satisfies another comparison.
            cond = "(value != ? OR is_nan = 1)"
        else:
            cond = f"value {op} ? AND is_nan = 0"
        return f"r.rid IN (SELECT rid FROM metrics WHERE key = ? AND {cond})", [clause.key, number]
    if entity in ("param", "tag"):
        table = "params" if entity == "param" else "tags"
        if op == "IS NULL":
            return f"r.rid NOT IN (SELECT rid FROM {table} WHERE key = ?)", [clause.key]
        if op == "IS NOT NULL":
            return f"r.rid IN (SELECT rid FROM {table} WHERE key = ?)", [clause.key]
        cond, arg = _string_condition("value", op, value)
        return f"r.rid IN (SELECT rid FROM {table} WHERE key = ? AND {cond})", [clause.key, arg]
    if entity == "attribute":
        column = "r." + _ATTRIBUTE_COLUMNS[clause.key]
        if clause.key in ("start_time", "end_time"):
            return f"{column} {op} ?", [value]
        cond, arg = _string_condition(column, op, value)
        return cond, [arg]
    if entity == "dataset":
        column = {"name": "name", "digest": "digest", "context": "context"}[clause.key]
        cond, arg = _string_condition(column, op, value)
        return f"r.rid IN (SELECT rid FROM inputs WHERE {cond})", [arg]
    raise SearchError(f"Cannot search runs by {clause.name}")


def _string_condition(column: str, op: str, value: Any) -> tuple[str, Any]:
    if op == "LIKE":
        return f"{column} GLOB ?", _glob(value)
    if op == "ILIKE":
        # SQLite's LIKE ignores ASCII case only -- as lower() LIKE lower() in MLflow's sqlite store.
        return f"{column} LIKE ?", value
    if op in ("IN", "NOT IN"):
        return f"{column} {op} (SELECT value FROM json_each(?))", json.dumps(list(value))
    return f"{column} {op} ?", value


# -- one index per repository and branch, per process ---------------------------------------------------
_indexes: dict[tuple[str, str], RunIndex] = {}
_indexes_lock = threading.Lock()


def index_for(store: "GitStore") -> RunIndex:
    key = (store.repo.common_dir, store.repo.ref)
    with _indexes_lock:
        index = _indexes.get(key)
        if index is None or index.store is not store:
            if index is not None:
                index.close()
            index = _indexes[key] = RunIndex(store)
        return index


def forget_indexes() -> None:
    with _indexes_lock:
        for index in _indexes.values():
            index.close()
        _indexes.clear()

