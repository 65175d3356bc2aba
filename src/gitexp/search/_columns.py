"""The columns of the search index: one array per key, and the queries that run on them.

The index file (``_index``) keeps each run as one row (its attributes and a JSON
document of its latest metrics, params, tags and datasets) plus, per key, one
*column*: the values of that key for every run that has it, as packed arrays in
a BLOB (``columns`` table).  Runs that changed since the columns were last
written are applied on top when the columns are read (``runs.seq`` says which),
so a refresh writes only the changed runs' rows and a cold build writes a few
BLOBs instead of millions of rows.

A search reads the columns it needs (once per process; afterwards only changed
runs are applied), turns each filter clause into a boolean mask over row ids
with numpy, and orders the matches with a partial sort -- instead of a SQL
statement that visits one index entry and a few B-tree probes per run.  String
comparisons keep SQLite's semantics exactly: values are dictionary-encoded in
SQLite's BINARY order (code point order = UTF-8 byte order), and LIKE/ILIKE/
GLOB run in SQLite over the distinct values.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
import struct
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, cast

import numpy as np

from ..entities import ViewType
from ..exceptions import SearchError
from ..store import layout
from ._filter import Clause, OrderKey
from ._records import (
    _ATTR_INTS,
    _ATTR_POSITION,
    ATTR,
    DATASET,
    METRIC,
    PARAM,
    TAG,
    Record,
    _dataset_values,
    record_from_row,
    record_keys,
)

_ENTITY_KIND = {"metric": METRIC, "param": PARAM, "tag": TAG}

_MAGIC = b"GXC1"
_HEADER = struct.Struct("<4sBIII")  # magic, value type, entries, bytes of values, bytes of uniques
_FLOAT, _INT, _STR = 0, 1, 2


# -- packed columns (the BLOBs) ------------------------------------------------------------------------
def _value_type(kind: str, key: str) -> int:
    if kind == METRIC:
        return _FLOAT
    if kind == ATTR and key in _ATTR_INTS:
        return _INT
    return _STR


def encode_column(kind: str, key: str, rids: np.ndarray, values: Any) -> bytes:
    """A column as bytes: row ids (int32, ascending), then the values (float64 / int64 /
    int32 codes into the sorted distinct strings, stored as JSON).  Strings come as a
    list, or already encoded as (codes, sorted distinct strings)."""
    vtype = _value_type(kind, key)
    rids = np.ascontiguousarray(rids, dtype=np.int32)
    if vtype == _FLOAT:
        body, uniques = np.asarray(values, dtype=np.float64).tobytes(), b""
    elif vtype == _INT:
        body, uniques = np.asarray(values, dtype=np.int64).tobytes(), b""
    else:
        codes, distinct = values if isinstance(values, tuple) else _encode_strings(values)
        body, uniques = np.asarray(codes, dtype=np.int32).tobytes(), json.dumps(distinct, ensure_ascii=False).encode()
    return _HEADER.pack(_MAGIC, vtype, len(rids), len(body), len(uniques)) + rids.tobytes() + body + uniques


def decode_column(data: bytes, raw_strings: bool = False) -> tuple[int, np.ndarray, np.ndarray, Any]:
    """(value type, rids, values or codes, distinct strings) of an encoded column; with
    `raw_strings` the distinct strings come as their undecoded JSON (bytes)."""
    try:
        magic, vtype, n, body_len, uniques_len = _HEADER.unpack_from(data)
    except struct.error:
        magic = b""
    if magic != _MAGIC or len(data) != _HEADER.size + 4 * n + body_len + uniques_len:
        raise sqlite3.DatabaseError("malformed column in the search index")
    at = _HEADER.size
    rids = np.frombuffer(data, dtype=np.int32, count=n, offset=at)
    at += 4 * n
    if vtype == _FLOAT:
        return vtype, rids, np.frombuffer(data, dtype=np.float64, count=n, offset=at), None
    if vtype == _INT:
        return vtype, rids, np.frombuffer(data, dtype=np.int64, count=n, offset=at), None
    codes = np.frombuffer(data, dtype=np.int32, count=n, offset=at)
    at += body_len
    raw = data[at:at + uniques_len]
    return vtype, rids, codes, raw if raw_strings else json.loads(raw.decode())


def _encode_strings(values: list[Any]) -> tuple[np.ndarray, list[Any]]:
    index: dict[str, Any] = {}
    setdefault = index.setdefault
    codes = np.fromiter((setdefault(v, len(index)) for v in values), dtype=np.int32, count=len(values))
    return sort_codes(codes, list(index))


def sort_codes(codes: np.ndarray, distinct: list[Any]) -> tuple[np.ndarray, list[Any]]:
    """Codes into `distinct` recoded so the distinct strings are in sorted order."""
    if distinct != sorted(distinct):
        order = sorted(range(len(distinct)), key=distinct.__getitem__)
        remap = np.empty(len(distinct), dtype=np.int32)
        remap[np.asarray(order, dtype=np.int64)] = np.arange(len(distinct), dtype=np.int32)
        codes = remap[codes]
        distinct = [distinct[i] for i in order]
    return codes, distinct


# -- columns in memory ----------------------------------------------------------------------------------
class FloatColumn:
    """A metric: value per row id (NaN where absent), and whether the run has the metric."""

    __slots__ = ("values", "present")

    def __init__(self, n: int) -> None:
        self.values = np.full(n, np.nan)
        self.present = np.zeros(n, dtype=bool)

    def fill(self, rids: np.ndarray, values: np.ndarray) -> None:
        self.values[rids] = values
        self.present[rids] = True

    def grow(self, n: int) -> None:
        if n > len(self.present):
            self.values = np.concatenate([self.values, np.full(n - len(self.values), np.nan)])
            self.present = np.concatenate([self.present, np.zeros(n - len(self.present), dtype=bool)])

    def set(self, rids: list[int], values: list[Any]) -> None:
        for rid, value in zip(rids, values, strict=False):
            if value is None:
                self.values[rid] = np.nan
                self.present[rid] = False
            else:
                self.values[rid] = value
                self.present[rid] = True

    def copy(self) -> FloatColumn:
        other = FloatColumn.__new__(FloatColumn)
        other.values, other.present = self.values.copy(), self.present.copy()
        return other


class IntColumn:
    """start_time / end_time: an int64 per row id and whether it is set (NULL otherwise)."""

    __slots__ = ("values", "present")

    def __init__(self, n: int) -> None:
        self.values = np.zeros(n, dtype=np.int64)
        self.present = np.zeros(n, dtype=bool)

    fill = FloatColumn.fill

    def grow(self, n: int) -> None:
        if n > len(self.present):
            self.values = np.concatenate([self.values, np.zeros(n - len(self.values), dtype=np.int64)])
            self.present = np.concatenate([self.present, np.zeros(n - len(self.present), dtype=bool)])

    def set(self, rids: list[int], values: list[Any]) -> None:
        for rid, value in zip(rids, values, strict=False):
            if value is None:
                self.values[rid] = 0
                self.present[rid] = False
            else:
                self.values[rid] = value
                self.present[rid] = True

    def copy(self) -> IntColumn:
        other = IntColumn.__new__(IntColumn)
        other.values, other.present = self.values.copy(), self.present.copy()
        return other


class StrColumn:
    """Strings as codes (-1: absent) into the distinct values, sorted in SQLite's BINARY order.

    Codes are ranks, so ordering needs only them: the distinct strings themselves (a
    column of run ids holds one per run) are decoded when first asked for.
    """

    __slots__ = ("codes", "_uniques", "_raw", "_objects")

    def __init__(self, n: int) -> None:
        self.codes = np.full(n, -1, dtype=np.int32)
        self._uniques: list[str] | None = []
        self._raw: bytes | None = None
        self._objects: np.ndarray | None = None

    @property
    def uniques(self) -> list[str]:
        if self._uniques is None:
            self._uniques = json.loads(self._raw.decode()) if self._raw else []
            self._raw = None
        return self._uniques

    @uniques.setter
    def uniques(self, value: list[str]) -> None:
        self._uniques, self._raw = value, None

    @property
    def present(self) -> np.ndarray:
        return self.codes >= 0

    def fill_codes(self, rids: np.ndarray, codes: np.ndarray, uniques: list[str] | bytes) -> None:
        self.codes[rids] = codes
        if isinstance(uniques, bytes):
            self._uniques, self._raw = None, uniques
        else:
            self.uniques = uniques
        self._objects = None

    def grow(self, n: int) -> None:
        if n > len(self.codes):
            self.codes = np.concatenate([self.codes, np.full(n - len(self.codes), -1, dtype=np.int32)])

    def code_of(self, value: str) -> int:
        i = bisect.bisect_left(self.uniques, value)
        return i if i < len(self.uniques) and self.uniques[i] == value else -1

    def objects(self) -> np.ndarray:
        """The distinct values as an object array, with None at the end (code -1)."""
        if self._objects is None:
            objects = np.empty(len(self.uniques) + 1, dtype=object)
            objects[:-1] = self.uniques
            self._objects = objects
        return self._objects

    def set(self, rids: list[int], values: list[Any]) -> None:
        if all(v is None for v in values):
            for rid in rids:
                self.codes[rid] = -1
            return
        new = sorted({v for v in values if v is not None and self.code_of(v) < 0})
        if len(new) > 64:
            self._recode(new)
        else:
            for value in new:  # each new distinct value shifts the codes after it
                i = bisect.bisect_left(self.uniques, value)
                self.uniques.insert(i, value)
                if i < len(self.uniques) - 1:
                    self.codes[self.codes >= i] += 1
        if new:
            self._objects = None
        for rid, value in zip(rids, values, strict=False):
            self.codes[rid] = -1 if value is None else self.code_of(value)

    def _recode(self, new: list[str]) -> None:
        merged = sorted(set(self.uniques).union(new))
        position = {v: i for i, v in enumerate(merged)}
        remap = np.asarray([position[v] for v in self.uniques] + [-1], dtype=np.int32)
        self.codes = remap[self.codes]  # -1 indexes the appended -1
        self.uniques = merged

    def copy(self) -> StrColumn:
        other = StrColumn.__new__(StrColumn)
        other.codes, other._objects = self.codes.copy(), self._objects
        other._uniques, other._raw = list(self.uniques), None  # decoded here once, for both
        return other


class MultiColumn:
    """A dataset field: (row id, code) pairs, several per run, sorted by row id."""

    __slots__ = ("rids", "codes", "uniques")

    def __init__(self) -> None:
        self.rids = np.zeros(0, dtype=np.int64)
        self.codes = np.zeros(0, dtype=np.int32)
        self.uniques: list[str | None] = []

    def grow(self, n: int) -> None:
        pass

    def set(self, rids: list[int], values: list[Any]) -> None:
        keep = ~np.isin(self.rids, np.asarray(rids, dtype=np.int64))
        pairs = list(zip(self.rids[keep].tolist(), (self.uniques[c] for c in self.codes[keep].tolist()), strict=True))
        for rid, items in zip(rids, values, strict=False):
            pairs.extend((rid, v) for v in items or ())
        self._load([p[0] for p in pairs], [p[1] for p in pairs])

    def _load(self, rids: list[int], values: list[Any]) -> None:
        order = sorted(range(len(rids)), key=rids.__getitem__)
        self.rids = np.asarray([rids[i] for i in order], dtype=np.int64)
        distinct = sorted({v for v in values if v is not None})
        position = {v: i for i, v in enumerate(distinct)}
        self.codes = np.asarray([position.get(values[i], -1) for i in order], dtype=np.int32)
        self.uniques = distinct

    def copy(self) -> MultiColumn:
        other = MultiColumn()
        other.rids, other.codes, other.uniques = self.rids.copy(), self.codes.copy(), list(self.uniques)
        return other


Column = "FloatColumn | IntColumn | StrColumn | MultiColumn"


def _empty_column(kind: str, key: str, n: int) -> Any:
    if kind == DATASET:
        return MultiColumn()
    vtype = _value_type(kind, key)
    return FloatColumn(n) if vtype == _FLOAT else IntColumn(n) if vtype == _INT else StrColumn(n)


def column_from_blob(kind: str, key: str, data: bytes | None, n: int) -> Any:
    col = _empty_column(kind, key, n)
    if data is None:
        return col
    vtype, rids, values, uniques = decode_column(data, raw_strings=kind != DATASET)
    if kind == DATASET:
        col.rids = rids.astype(np.int64)
        col.codes = values.copy()
        col.uniques = uniques
    elif vtype == _STR:
        col.fill_codes(rids, values, uniques)
    else:
        col.fill(rids, values)
    return col


def _values_for(kind: str, key: str, records: dict[int, Record | None]) -> tuple[list[int], list[Any]]:
    """The value of (kind, key) in each changed record (None: absent or run gone)."""
    rids: list[int] = []
    values: list[Any] = []
    for rid, record in records.items():
        rids.append(rid)
        if record is None:
            values.append([] if kind == DATASET else None)
        elif kind == ATTR:
            values.append(record[_ATTR_POSITION[key]])
        elif kind == METRIC:
            point = record[8].get(key)
            values.append(None if point is None else point[2])
        elif kind == PARAM:
            values.append(record[9].get(key))
        elif kind == TAG:
            values.append(record[10].get(key))
        else:
            values.append(_dataset_values(record[11], key))
    return rids, values


def apply_records(col: Any, kind: str, key: str, records: dict[int, Record | None]) -> None:
    if records:
        rids, values = _values_for(kind, key, records)
        col.set(rids, values)


# -- the columns of one index connection, kept across searches -------------------------------------------
class ColumnCache:
    """The columns of one index connection as of a `seq` of the index, read on demand.

    `changes` holds the runs changed since the stored columns were written (row
    id -> record, None for a run that is gone); every column read from a BLOB gets
    them applied, and every column already in memory gets each new change once.
    `rows` keeps the decoded rows of runs recently turned into entities (a run that
    changes is dropped from it), so paging through results decodes each run once.
    """

    ROWS_KEPT = 10000

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.seq = -1
        self.cols_seq = -1
        self.n = 0  # the length of every column: at least the index's next row id
        self.columns: dict[tuple[str, str], Any] = {}
        self.changes: dict[int, Record | None] = {}
        self.key_experiments: dict[tuple[str, str], set[str]] | None = None
        self.rows: OrderedDict[int, tuple[Any, ...]] = OrderedDict()

    def sync(self, conn: sqlite3.Connection, meta: dict[str, str]) -> None:
        """Bring the cache to the index's committed state (call inside a read transaction)."""
        epoch, seq, cols_seq = meta.get("epoch"), int(meta.get("seq", 0)), int(meta.get("cols_seq", 0))
        n = int(meta.get("next_rid", 1))
        if epoch != self.epoch or cols_seq != self.cols_seq:
            # A new index, or its columns were rewritten (with the changes we hold): start again.
            self.__init__()  # type: ignore[misc]  # reset in place: others hold this cache
            self.epoch, self.cols_seq, self.seq = epoch, cols_seq, cols_seq
        if seq == self.seq and n <= self.n:
            return
        changed: dict[int, Record | None] = {}
        if seq != self.seq:
            for row in conn.execute("SELECT rid, run_id, experiment_id, run_name, user_id, status, start_time, "
                                    "end_time, stage, doc FROM runs WHERE seq > ?", (self.seq,)):
                changed[row[0]] = record_from_row(row)
            for (rid,) in conn.execute("SELECT rid FROM dead WHERE seq > ?", (self.seq,)):
                if rid not in changed:
                    changed[rid] = None
        if n > self.n:
            # Room for a few more runs, so a refresh that adds one does not copy every column.
            self.n = max(n, self.n + self.n // 8 + 64) if self.n else n
            for col in self.columns.values():
                col.grow(self.n)
        for (kind, key), col in self.columns.items():
            apply_records(col, kind, key, changed)
        self.changes.update(changed)
        for rid in changed:
            self.rows.pop(rid, None)
        self.seq = seq
        if changed:
            self.key_experiments = None

    def column(self, conn: sqlite3.Connection, kind: str, key: str, keep: bool = True) -> Any:
        """The column of (kind, key) with every change applied (an empty one if no run has it)."""
        found = self.columns.get((kind, key))
        if found is not None:
            return found
        row = conn.execute("SELECT data FROM columns WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        col = column_from_blob(kind, key, row[0] if row else None, self.n)
        apply_records(col, kind, key, self.changes)
        if keep:
            self.columns[(kind, key)] = col
        return col

    def keys(self, conn: sqlite3.Connection) -> dict[tuple[str, str], set[str]]:
        """(kind, key) -> experiments that may have runs with it (a superset)."""
        if self.key_experiments is None:
            found: dict[tuple[str, str], set[str]] = {}
            for kind, key, experiments in conn.execute("SELECT kind, key, experiments FROM columns"):
                if kind != ATTR:
                    found[(kind, key)] = set(json.loads(experiments))
            for record in self.changes.values():
                if record is not None:
                    for kind_key in record_keys(record):
                        found.setdefault(kind_key, set()).add(record[1])
            self.key_experiments = found
        return self.key_experiments


# -- one search's columns: the cache plus this process's pending runs ------------------------------------------
class Columns:
    """What a search reads: cached columns, with pending (overlay) runs applied to copies."""

    def __init__(self, conn: sqlite3.Connection, cache: ColumnCache, overlay: dict[int, Record]) -> None:
        self.conn = conn
        self.cache = cache
        self.overlay = overlay
        self.n = max([cache.n] + [rid + 1 for rid in overlay])
        self._patched: dict[tuple[str, str], Any] = {}

    def get(self, kind: str, key: str, keep: bool = True) -> Any:
        col = self._patched.get((kind, key))
        if col is not None:
            return col
        col = self.cache.column(self.conn, kind, key, keep)
        if self.overlay:
            if keep:
                col = col.copy()  # the cache holds committed runs only
            col.grow(self.n)
            apply_records(col, kind, key, self.overlay)  # type: ignore[arg-type]  # dict is invariant: no None here
        self._patched[(kind, key)] = col
        return col

    def keys(self) -> dict[tuple[str, str], set[str]]:
        found = self.cache.keys(self.conn)
        if not self.overlay:
            return found
        found = {k: set(v) for k, v in found.items()}
        for record in self.overlay.values():
            for kind_key in record_keys(record):
                found.setdefault(kind_key, set()).add(record[1])
        return found

    # -- filters ----------------------------------------------------------------------------------------
    def where(self, experiment_ids: list[str], clauses: list[Clause], view_type: int,
              deleted_experiments: list[str]) -> np.ndarray:
        """Row ids of the runs in these experiments, of this view type, matching every clause."""
        experiments = self.get(ATTR, "experiment_id")
        wanted = _codes(experiments, experiment_ids)
        mask = np.isin(experiments.codes, wanted) if len(wanted) != 1 else experiments.codes == wanted[0]
        if view_type in (ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY):
            stage = self.get(ATTR, "stage")
            deleted = np.isin(experiments.codes, _codes(experiments, deleted_experiments))
            if view_type == ViewType.ACTIVE_ONLY:
                mask &= _equals(stage, "active") & ~deleted
            else:
                mask &= _equals(stage, "deleted") | deleted
        for clause in clauses:
            if not mask.any():
                break
            mask &= self._clause(clause)
        return np.flatnonzero(mask)

    def _clause(self, clause: Clause) -> np.ndarray:
        op, value, entity = clause.op, clause.value, clause.entity
        if entity == "metric":
            col = self.get(METRIC, clause.key)
            number = float(value)  # type: ignore[arg-type]  # a metric clause's value is a number
            nan = np.isnan(col.values)
            with np.errstate(invalid="ignore"):
                if op == "!=":
                    # NaN differs from every number; like MLflow, it never satisfies another comparison.
                    return cast(np.ndarray, col.present & ((col.values != number) | nan))
                return cast(np.ndarray, col.present & ~nan & _compare(col.values, op, number))
        if entity in ("param", "tag"):
            col = self.get(_ENTITY_KIND[entity], clause.key)
            if op == "IS NULL":
                return cast(np.ndarray, col.codes < 0)
            if op == "IS NOT NULL":
                return cast(np.ndarray, col.codes >= 0)
            return _code_mask(col.codes, _matching_codes(self.conn, col.uniques, op, value), len(col.uniques))
        if entity == "attribute":
            if clause.key in _ATTR_INTS:
                col = self.get(ATTR, clause.key)
                return cast(np.ndarray, col.present & _compare(col.values, op, value))
            col, uniques = self._string_attribute(clause.key)
            return _code_mask(col.codes, _matching_codes(self.conn, uniques, op, value), len(uniques))
        if entity == "dataset":
            col = self.get(DATASET, clause.key)
            hits = np.isin(col.codes, _matching_codes(self.conn, col.uniques, op, value))
            mask = np.zeros(self.n, dtype=bool)
            mask[col.rids[hits]] = True
            return mask
        raise SearchError(f"Cannot search runs by {clause.name}")

    def _string_attribute(self, key: str) -> tuple[StrColumn, list[Any]]:
        if key == "artifact_uri":  # derived from the run id (runs:/<id>), not stored
            col = self.get(ATTR, "run_id")
            return col, [layout.artifact_uri(u) for u in col.uniques]
        col = self.get(ATTR, key)
        return col, col.uniques

    # -- order ------------------------------------------------------------------------------------------
    def order(self, rids: np.ndarray, order: list[OrderKey], offset: int, limit: int | None) -> list[int]:
        """`limit` row ids from `offset` in MLflow's order: the order_by keys (NULLs last, for
        metrics numbers then NaN then absent), then start_time DESC, then run_id."""
        if not len(rids):
            return []
        keys: list[np.ndarray] = []
        orders_start_time = False
        for key in order:
            desc = not key.ascending
            if key.entity == "attribute":
                orders_start_time = orders_start_time or key.key == "start_time"
                if key.key in _ATTR_INTS:
                    col = self.get(ATTR, key.key)
                    present, values = col.present[rids], col.values[rids]
                else:
                    col, uniques = self._string_attribute(key.key)
                    codes = col.codes[rids]
                    if key.key == "artifact_uri":
                        codes = _rank(uniques)[codes]
                    present, values = codes >= 0, codes.astype(np.int64)
                keys.append((~present).view(np.int8))
                values = np.where(present, values, 0)
                keys.append(-values if desc else values)
            elif key.entity == "metric":
                col = self.get(METRIC, key.key)
                present, values = col.present[rids], col.values[rids]
                nan = np.isnan(values)
                keys.append(np.where(present, np.where(nan, 1, 0), 2).astype(np.int8))
                values = np.where(present & ~nan, values, 0.0)
                keys.append(-values if desc else values)
            else:
                col = self.get(_ENTITY_KIND[key.entity], key.key)
                codes = col.codes[rids].astype(np.int64)
                keys.append((codes < 0).view(np.int8))
                codes = np.where(codes >= 0, codes, 0)
                keys.append(-codes if desc else codes)
        if not orders_start_time:
            col = self.get(ATTR, "start_time")
            keys.append((~col.present[rids]).astype(np.int8))
            keys.append(-np.where(col.present[rids], col.values[rids], 0))
        keys.append(self.get(ATTR, "run_id").codes[rids])
        end = None if limit is None else offset + limit
        if end is None or end >= len(rids) or len(rids) <= 4096:
            ordered = rids[np.lexsort(keys[::-1])]
        else:
            chosen = _first_k(keys, end)
            ordered = rids[chosen][np.lexsort([k[chosen] for k in keys][::-1])]
        return cast("list[int]", ordered[offset:end].tolist())


def _first_k(keys: list[np.ndarray], k: int) -> np.ndarray:
    """Indices of the first k positions in lexicographic order of `keys` (the last key is unique)."""
    taken: list[np.ndarray] = []
    candidates = np.arange(len(keys[0]))
    for key in keys:
        if k <= 0:
            break
        if len(candidates) <= k:
            taken.append(candidates)
            k = 0
            break
        values = key[candidates]
        kth = np.partition(values, k - 1)[k - 1]
        below = values < kth
        taken.append(candidates[below])
        k -= int(below.sum())
        candidates = candidates[values == kth]
    if k > 0:
        taken.append(candidates[:k])
    return np.concatenate(taken)


def _rank(values: list[str]) -> np.ndarray:
    """Position of each value in sorted order, with -1 mapped to -1."""
    order = sorted(range(len(values)), key=values.__getitem__)
    rank = np.empty(len(values) + 1, dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(values))
    rank[-1] = -1
    return rank


def _equals(col: StrColumn, value: str) -> np.ndarray:
    code = col.code_of(value)
    return col.codes == code if code >= 0 else np.zeros(len(col.codes), dtype=bool)


def _codes(col: StrColumn, values: Iterable[str]) -> np.ndarray:
    codes = [c for c in (col.code_of(str(v)) for v in values) if c >= 0]
    return np.asarray(codes, dtype=np.int32)


def _code_mask(codes: np.ndarray, matching: np.ndarray, distinct: int) -> np.ndarray:
    """codes in `matching` (never the absent code -1); `distinct`: the number of codes."""
    if len(matching) == 0:
        return np.zeros(len(codes), dtype=bool)
    if len(matching) == 1:
        return cast(np.ndarray, codes == matching[0])
    lookup = np.zeros(distinct + 1, dtype=bool)  # the last entry answers for -1
    lookup[matching] = True
    return cast(np.ndarray, lookup[codes])


_NUMERIC_OPS = {"=": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
                ">=": np.greater_equal}


def _compare(values: np.ndarray, op: str, number: Any) -> np.ndarray:
    fn = _NUMERIC_OPS.get(op)
    if fn is None:
        raise SearchError(f"Invalid comparator {op!r} for a number")
    if isinstance(number, int) and values.dtype == np.float64:
        number = float(number)
    return cast(np.ndarray, fn(values, number))


def _matching_codes(conn: sqlite3.Connection, uniques: list[Any], op: str, value: Any) -> np.ndarray:
    """Codes of the distinct values satisfying `op value`, by SQLite's own rules."""
    if not uniques:
        return np.zeros(0, dtype=np.int32)
    if op == "=":
        i = bisect.bisect_left(uniques, value)
        found = i < len(uniques) and uniques[i] == value
        return np.asarray([i] if found else [], dtype=np.int32)
    if op == "IN":
        position = {v: i for i, v in enumerate(uniques)}
        return np.asarray(sorted({position[v] for v in value if v in position}), dtype=np.int32)
    if op == "LIKE":
        cond, arg = "j.value GLOB ?", _glob(value)
    elif op == "ILIKE":
        # SQLite's LIKE ignores ASCII case only -- as lower() LIKE lower() in MLflow's sqlite store.
        cond, arg = "j.value LIKE ?", value
    elif op in ("NOT IN",):
        cond, arg = "j.value NOT IN (SELECT value FROM json_each(?))", json.dumps(list(value))
    elif op in ("!=", "<", "<=", ">", ">="):
        cond, arg = f"j.value {op} ?", value
    else:
        raise SearchError(f"Invalid comparator {op!r} for a string")
    rows = conn.execute(f"SELECT j.key FROM json_each(?) j WHERE {cond}",
                        (json.dumps(uniques, ensure_ascii=False), arg)).fetchall()
    return np.asarray([r[0] for r in rows], dtype=np.int32)


def _glob(pattern: str) -> str:
    """A LIKE pattern as a GLOB pattern: SQL's case-sensitive LIKE (MLflow's LIKE)."""
    special = {"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}
    return "".join(special.get(c, c) for c in pattern)
