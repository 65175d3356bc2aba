"""Metric histories on the branch (format 2): write-once chunks and a latest-value summary.

    <run>/latest_metrics.yaml                      # key: [step, timestamp, value] -- the latest point of each metric
    <run>/metrics/<encoded key>/<group>/<chunk>.jsonl   # one chunk per checkpoint: [step, timestamp, value] lines

Why this shape (docs/ARCHITECTURE.md, "Long runs"): a checkpoint writes only the
points logged since the previous one, as a new chunk file that is never rewritten,
so the bytes a run writes grow linearly with its length.  Chunks are grouped 64 to
a directory (``group = chunk // 64``), so the trees a checkpoint rewrites stay a
few kilobytes however long the run is.  Searches read ``latest_metrics.yaml``
only, never a history.  Format 1 runs (``metrics/<encoded key>.jsonl``, a whole
history in one file) are still read.

A chunk line is a JSON array ``[step, timestamp, value]``; non-finite values are
the JSON strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` as in format 1, so every
JSON tool reads the files and ``git show`` stays readable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import layout

if TYPE_CHECKING:
    import numpy as np

    from .objects import ObjectDB

LATEST_FILE = "latest_metrics.yaml"
CHUNKS_PER_GROUP = 64
Point = tuple[int, int, float]  # (step, timestamp, value)

_EXACT = 2 ** 53  # float64 holds every integer below this exactly


def number(value: float) -> str:
    if value != value:
        return '"NaN"'
    if value in (math.inf, -math.inf):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    return repr(float(value))


_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def value_of(raw: Any) -> float:
    return _SPECIAL[raw] if isinstance(raw, str) else float(raw)


# -- chunks ------------------------------------------------------------------------------------------
def chunk_path(key: str, index: int) -> str:
    """A chunk's path relative to the run directory."""
    return f"metrics/{layout.encode_key(key)}/{index // CHUNKS_PER_GROUP:04d}/{index:06d}.jsonl"


def format_chunk(points: Iterable[Point]) -> bytes:
    return "".join(f"[{s}, {t}, {number(v)}]\n" for s, t, v in points).encode()


def next_chunk_index(odb: ObjectDB, metrics_tree: str | None, key: str) -> int:
    """The index of the chunk after the last one stored for `key` (0 when none)."""
    if metrics_tree is None:
        return 0
    entry = odb.tree_dict(metrics_tree).get(layout.encode_key(key))
    if entry is None or not entry.is_tree:
        return 0
    groups = [e for e in odb.read_tree(entry.sha) if e.is_tree and e.name.isdigit()]
    if not groups:
        return 0
    last = max(groups, key=lambda e: int(e.name))
    chunks = [int(e.name.split(".")[0]) for e in odb.read_tree(last.sha) if e.name.split(".")[0].isdigit()]
    return (max(chunks) + 1) if chunks else int(last.name) * CHUNKS_PER_GROUP


def history_paths(odb: ObjectDB, metrics_tree: str | None, key: str) -> list[tuple[str, str]]:
    """(path relative to the run directory, blob id) of each file of `key`'s history, in order."""
    if metrics_tree is None:
        return []
    out: list[tuple[str, str]] = []
    entries = odb.tree_dict(metrics_tree)
    name = layout.encode_key(key)
    old = entries.get(name + ".jsonl")
    if old is not None and not old.is_tree:
        out.append((f"metrics/{name}.jsonl", old.sha))
    entry = entries.get(name)
    if entry is not None and entry.is_tree:
        chunks = []
        for group in odb.read_tree(entry.sha):
            if group.is_tree:
                for chunk in odb.read_tree(group.sha):
                    stem = chunk.name.split(".")[0]
                    if not chunk.is_tree and stem.isdigit():
                        chunks.append((int(stem), f"metrics/{name}/{group.name}/{chunk.name}", chunk.sha))
        out.extend((path, sha) for _, path, sha in sorted(chunks))
    return out


def damaged_line(data: bytes) -> tuple[int, str] | None:
    """(line number, problem) of the first line of a history file that is not a point."""
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        return data[:exc.start].count(b"\n") + 1, "not UTF-8"
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if isinstance(record, dict):  # format 1 may hold {"step":..., "timestamp":..., "value":...} lines
                record = [record.get("step", 0), record.get("timestamp", 0), record["value"]]
            if not isinstance(record, list) or len(record) != 3:
                raise ValueError("not a [step, timestamp, value] line")
            step, ts, value = record
            if type(step) is not int or type(ts) is not int:
                raise ValueError("step and timestamp must be whole numbers")
            value_of(value)
        except (ValueError, TypeError, KeyError) as exc:
            if number == len(lines) and not data.endswith(b"\n"):
                return number, f"truncated line ({exc})"
            return number, str(getattr(exc, "msg", None) or exc)
    return None


_STRIP = bytes.maketrans(b'[]"\n', b"   ,")


def parse(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, timestamps, values) of a chunk or a format-1 history file, as numpy arrays.

    The common case is one C-level parse of the whole text; anything unusual
    (format-1 dict lines, hand edits, integers beyond 2**53) takes the exact path.
    """
    import numpy as np

    if not data.strip():
        return _empty()
    if data[:1] == b"[":
        flat = np.fromstring(data.translate(_STRIP), sep=",")
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        if flat.size == 3 * lines and _three_a_line(data):
            table = flat.reshape(-1, 3)
            steps, times = table[:, 0], table[:, 1]
            if (len(steps) == 0 or (np.abs(steps).max() < _EXACT and np.abs(times).max() < _EXACT)) \
                    and np.array_equal(steps, np.trunc(steps)):
                return steps.astype(np.int64), times.astype(np.int64), table[:, 2].copy()
        points = _exact_arrays(data)
    else:
        points = layout.parse_metric_lines(data)
    return arrays(points)


def _three_a_line(data: bytes) -> bool:
    """Each line holds two commas (three numbers): three numbers a line on average is not
    enough (a four-number line next to a two-number one would be read as two points)."""
    import numpy as np

    buf = np.frombuffer(data, np.uint8)
    commas = np.flatnonzero(buf == 44)
    ends = np.flatnonzero(buf == 10)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(buf))
    return (len(commas) == 2 * len(ends) and bool((commas[1::2] < ends).all())
            and bool((commas[2::2] > ends[:-1]).all()))


def parse_many(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One history from its files in order (chunks are parsed together, in one pass)."""
    if len(blobs) > 1 and all(b[:1] == b"[" and b.endswith(b"\n") for b in blobs):
        return combine([parse(b"".join(blobs))])
    return combine([parse(b) for b in blobs])


def _exact_arrays(data: bytes) -> list[Point]:
    out = []
    for line in data.decode().splitlines():
        if line.strip():
            step, ts, value = json.loads(line)
            out.append((int(step), int(ts), value_of(value)))
    return out


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import numpy as np

    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)


def arrays(points: list[Point]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import numpy as np

    if not points:
        return _empty()
    return (np.fromiter((p[0] for p in points), np.int64, len(points)),
            np.fromiter((p[1] for p in points), np.int64, len(points)),
            np.fromiter((p[2] for p in points), np.float64, len(points)))


def combine(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One history from its parts: ordered by step, then time (stable), exact duplicates dropped."""
    import numpy as np

    parts = [p for p in parts if len(p[0])]
    if not parts:
        return _empty()
    if len(parts) == 1:
        steps, times, values = parts[0]
    else:
        steps = np.concatenate([p[0] for p in parts])
        times = np.concatenate([p[1] for p in parts])
        values = np.concatenate([p[2] for p in parts])
    if len(steps) > 1:
        ordered = bool(np.all((steps[1:] > steps[:-1]) | ((steps[1:] == steps[:-1]) & (times[1:] >= times[:-1]))))
        if not ordered:
            order = np.lexsort((times, steps))
            steps, times, values = steps[order], times[order], values[order]
        same = (steps[1:] == steps[:-1]) & (times[1:] == times[:-1])
        if same.any():
            steps, times, values = _drop_duplicates(steps, times, values)
    return steps, times, values


def _drop_duplicates(steps: np.ndarray, times: np.ndarray, values: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import numpy as np

    keep = np.ones(len(steps), dtype=bool)
    seen: set[Any] = set()
    group: tuple[int, int] | None = None
    for i in range(len(steps)):
        ident = (int(steps[i]), int(times[i]))
        if ident != group:
            group, seen = ident, set()
        v = float(values[i])
        token = "nan" if v != v else v
        if token in seen:
            keep[i] = False
        seen.add(token)
    return steps[keep], times[keep], values[keep]


# -- the latest-value summary ----------------------------------------------------------------------------
def dump_latest(latest: dict[str, Point]) -> bytes:
    """``key: [step, timestamp, value]`` per line (YAML flow sequences that are also JSON)."""
    return "".join(f"{layout.flat_key(k)}: [{s}, {t}, {number(v)}]\n"
                   for k, (s, t, v) in sorted(latest.items())).encode()


# dump_latest's lines, checked for a whole file in one scan (anything else is read line by line).
_FAST_LATEST = re.compile(
    f"(?:{layout.FAST_KEY}: \\[-?[0-9]+, -?[0-9]+, (?:-?[0-9][0-9.eE+-]*|\"(?:NaN|Infinity|-Infinity)\")\\]\n)*")
_FAST_POINT = re.compile(
    f"({layout.FAST_KEY}): \\[(-?[0-9]+), (-?[0-9]+), (-?[0-9][0-9.eE+-]*|\"(?:NaN|Infinity|-Infinity)\")\\]\n")
_QUOTED = {'"NaN"': math.nan, '"Infinity"': math.inf, '"-Infinity"': -math.inf}


def load_latest(data: bytes) -> dict[str, Point]:
    out: dict[str, Point] = {}
    try:
        text = data.decode()
        if _FAST_LATEST.fullmatch(text):
            quoted, words = _QUOTED, layout.YAML_WORDS
            for key, step, ts, value in _FAST_POINT.findall(text):
                if key[0] == '"':
                    key = key[1:-1]
                elif key in words:
                    raise ValueError(key)
                out[key] = (int(step), int(ts), quoted[value] if value[0] == '"' else float(value))
            return out
        for line in text.splitlines():
            if not line.strip():
                continue
            head, sep, rest = line.rpartition(": [")
            if not sep:
                raise ValueError(line)
            key = layout.load_flat_key(head)
            step, ts, value = json.loads("[" + rest)
            out[key] = (int(step), int(ts), value_of(value))
    except (ValueError, TypeError, UnicodeDecodeError):
        loaded = layout.load_yaml(data) or {}
        out = {str(k): (int(v[0]), int(v[1]), value_of(v[2])) for k, v in loaded.items()}
    return out


def newer(point: Point, than: Point | None) -> bool:
    """MLflow's latest-metric rule: the larger (step, timestamp, value), NaN counting as 0."""
    if than is None:
        return True
    a = (point[0], point[1], 0.0 if point[2] != point[2] else point[2])
    b = (than[0], than[1], 0.0 if than[2] != than[2] else than[2])
    return a > b


# -- sampled reads (MLflow's get-history-bulk-interval) --------------------------------------------------
def bulk_interval(runs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], max_results: int,
                  start_step: int | None, end_step: int | None) -> list[tuple[str, int, int, float]]:
    """MLflow's sampling for charts of many runs, as its SQL store does it: (run_id, step,
    timestamp, value) rows.  For each run, its points with steps in [start_step, end_step]
    (all when both are None) in (step, timestamp, value) order are cut into `max_results`
    near-equal consecutive buckets (SQL's NTILE) and the first point of each is kept; the
    run's last point is always included (replacing the last sample when the page is full)."""
    import numpy as np

    out: list[tuple[str, int, int, float]] = []
    for run_id, (steps, times, values) in runs.items():
        if start_step is not None and end_step is not None:
            keep = (steps >= start_step) & (steps <= end_step)
            steps, times, values = steps[keep], times[keep], values[keep]
        n = len(steps)
        if not n:
            continue
        nan = np.isnan(values)
        order = np.lexsort((nan, np.where(nan, 0.0, values), times, steps))
        if n <= max_results:
            picks = order
        else:
            q, r = divmod(n, max_results)
            b = np.arange(max_results)
            first = np.where(b < r, b * (q + 1), r * (q + 1) + (b - r) * q)
            picks = order[first]
            if picks[-1] != order[-1]:
                picks = picks.copy()
                picks[-1] = order[-1]
        out.extend(zip([run_id] * len(picks), steps[picks].tolist(), times[picks].tolist(), values[picks].tolist(),
                       strict=True))
    return out
