"""A run as the search index stores it: a record, its JSON document, its column values.

No numpy here: worker processes that fold runs import this, not the columns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

# Column kinds: attributes (one per run), metrics, params, tags, datasets (several per run).
ATTR, METRIC, PARAM, TAG, DATASET = "a", "m", "p", "t", "d"
ATTR_NAMES = ("run_id", "experiment_id", "run_name", "user_id", "status", "start_time", "end_time", "stage")
_ATTR_POSITION = {name: i for i, name in enumerate(ATTR_NAMES)}
_ATTR_INTS = ("start_time", "end_time")
_DATASET_KEYS = ("name", "digest", "context")
_CONTEXT_TAG = "mlflow.data.context"

# (run_id, experiment_id, run_name, user_id, status, start_time, end_time, stage,
#  metrics {key: (step, timestamp, value)}, params {key: value}, tags {key: value}, inputs [...])
Record = tuple[Any, ...]

_SPECIAL_OUT = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


_INF, _NINF = math.inf, -math.inf
# One encoder (json.dumps with arguments builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def _json_number(value: float) -> Any:
    # JSON has no NaN or infinities; SQLite's JSON functions would refuse Python's tokens.
    if value != value:
        return "NaN"
    if value == _INF or value == _NINF:
        return "Infinity" if value > 0 else "-Infinity"
    return value


def record_of(state: Any) -> Record:
    """The index's record of a folded run (a RunState)."""
    metrics = {}
    for key, (step, ts, value) in state.latest_metrics().items():
        # A metric value is a REAL in the index, as in MLflow's store (an int 3 reads back as 3.0).
        metrics[key] = (step, ts, float(value))
    return (state.run_id, state.experiment_id, state.run_name, state.user_id, state.status, state.start_time,
            state.end_time, state.lifecycle_stage, metrics, dict(state.params), dict(state.tags),
            [{"dataset": dict(i.get("dataset") or {}), "tags": dict(i.get("tags") or {})} for i in state.inputs])


def doc_of(record: Record) -> str:
    """The JSON document of a record's data (what run entities are built from)."""
    # Keys in SQLite's BINARY order (code points), as the entities have always listed them.
    metrics = {}
    for key in sorted(record[8]):
        step, ts, value = record[8][key]
        metrics[key] = [step, ts, value if value == value and value != _INF and value != _NINF
                        else _json_number(value)]
    doc: dict[str, Any] = {"m": metrics, "p": dict(sorted(record[9].items())), "t": dict(sorted(record[10].items()))}
    if record[11]:
        doc["i"] = record[11]
    return _ENCODER.encode(doc)


def load_doc(text: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[Any]]:
    """(metrics {key: (step, ts, value)}, params, tags, inputs) from a document."""
    doc = json.loads(text)
    special = _SPECIAL_OUT
    metrics = {k: (s, t, special[v] if v.__class__ is str else v) for k, (s, t, v) in doc["m"].items()}
    return metrics, doc["p"], doc["t"], doc.get("i") or []


def record_from_row(row: tuple[Any, ...]) -> Record:
    """A record from a `runs` row: (rid, run_id, experiment_id, run_name, user_id, status,
    start_time, end_time, stage, doc)."""
    metrics, params, tags, inputs = load_doc(row[9])
    return (row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], metrics, params, tags, inputs)


def _dataset_values(inputs: list[Any], key: str) -> list[Any]:
    out = []
    for item in inputs:
        if key == "context":
            out.append((item.get("tags") or {}).get(_CONTEXT_TAG))
        else:
            out.append((item.get("dataset") or {}).get(key))
    return out


def record_keys(record: Record) -> Iterable[tuple[str, str]]:
    for key in record[8]:
        yield METRIC, key
    for key in record[9]:
        yield PARAM, key
    for key in record[10]:
        yield TAG, key
    if record[11]:
        for key in _DATASET_KEYS:
            yield DATASET, key
