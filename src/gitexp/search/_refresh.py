"""Maintaining the search index file: its schema, refreshes, cold builds and compaction.

Everything here writes ``index.sqlite`` (``_index`` owns the file and hands out
views; ``_view`` answers queries from it).  ``refresh_to`` brings the index to a
commit: it diffs the ``.tracking/runs/<xx>`` bucket tree ids and then the run
tree ids inside changed buckets against what the index recorded, and folds only
the runs whose tree changed.  A refresh writes the changed runs' rows with a new
``seq`` and leaves the columns alone; once ``COMPACT_AFTER`` runs changed since
the columns were written, it rewrites them (``_compact``).  Into an empty index,
a cold build folds every run (in worker processes when there are many:
``_build``) and writes each column once (``_build_columns``).

Refreshes are write transactions (``BEGIN IMMEDIATE``) that re-check the indexed
commit once they hold the lock, so a second process that wanted the same refresh
finds it done.
"""

from __future__ import annotations

import contextlib
import gc
import json
import secrets
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..entities import LifecycleStage
from ..store import layout
from . import _build
from ._columns import _STR, ColumnCache, _value_type, encode_column, sort_codes
from ._records import ATTR, ATTR_NAMES, DATASET, METRIC, record_keys

if TYPE_CHECKING:
    from ..store.tracking import GitStore

SCHEMA_VERSION = 3
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


def _format_fingerprint() -> str:
    # Rebuild the index when how gitexp derives indexed values changes.
    return f"{SCHEMA_VERSION}:{layout.artifact_uri('RUN')}"


@contextlib.contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def _set_meta(conn: sqlite3.Connection, **values: Any) -> None:
    conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in values.items()])


def refresh_to(conn: sqlite3.Connection, store: GitStore, commit: str | None) -> None:
    """Bring the index in `conn` to the state of `commit` (None: an empty branch)."""
    meta = read_meta(conn)
    if meta.get("commit", "") == (commit or ""):
        return
    with _write(conn):
        meta = read_meta(conn)  # another process may have done it while we waited for the lock
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


def deleted_experiments(store: GitStore, root: str | None) -> list[str]:
    experiments = store.branch.experiments(root) if root else {}
    return sorted(e for e, s in experiments.items() if s.lifecycle_stage == LifecycleStage.DELETED)


def _sync_runs(conn: sqlite3.Connection, store: GitStore, runs_tree: str | None, meta: dict[str, str]) -> None:
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


def _sync_listed(conn: sqlite3.Connection, store: GitStore, meta: dict[str, str], new_buckets: dict[str, str],
                 changed: list[str], gone: list[str], listings: dict[str, Any], workers: _build.Workers | None) -> None:
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


def _build_columns(conn: sqlite3.Connection, store: GitStore, items: list[tuple[Any, ...]], seq: int,
                   workers: _build.Workers | None = None) -> None:
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


def _build_columns_now(conn: sqlite3.Connection, store: GitStore, items: list[tuple[Any, ...]], seq: int,
                       workers: _build.Workers | None) -> None:
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

    def add(self, number: int, pieces: dict[Any, Any]) -> None:
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


def _stored_format(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    except sqlite3.OperationalError:  # no meta table yet
        return None
    return str(row[0]) if row is not None else None


def ensure_schema(conn: sqlite3.Connection) -> None:
    fingerprint = _format_fingerprint()
    if _stored_format(conn) == fingerprint:
        return
    with _write(conn):
        if _stored_format(conn) == fingerprint:  # another process did it while we waited
            return
        objects = conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('view', 'table') "
                               "AND name NOT LIKE 'sqlite_%'").fetchall()
        for kind, name in sorted(objects, key=lambda o: o[0] != "view"):  # views first
            conn.execute(f'DROP {kind.upper()} IF EXISTS "{name}"')
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        _set_meta(conn, format=fingerprint, epoch=secrets.token_hex(8), seq=0, cols_seq=0, next_rid=1)
