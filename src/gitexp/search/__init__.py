"""Searching runs and experiments with MLflow's filter grammar, over a derived index.

    search_runs(store, ...)          PagedList of Run entities, with a page token
    search_runs_frame(store, ...)    a pandas DataFrame with MLflow's columns, built
                                     column-wise straight from the index
    search_experiments(...)          PagedList of Experiment entities
    metric_histories(store, ...)     every (run, key, step, timestamp, value) point

The grammar lives in ``_filter``, the SQLite index in ``_index``, ``as_of``
resolution in ``_asof``.  The Client is the only caller.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..entities import Experiment, Metric, PagedList, Run, ViewType
from ..exceptions import InvalidParameterValue, SearchError
from ._filter import EXPERIMENTS, RUNS, Clause, compare, parse_filter, parse_order_by

if TYPE_CHECKING:
    import pandas

    from ..store.interface import TrackingStore
    from ..store.state import RunState
    from ..store.tracking import GitStore
    from ._view import IndexView

SEARCH_MAX_RESULTS_THRESHOLD = 50000

__all__ = [
    "SEARCH_MAX_RESULTS_THRESHOLD",
    "metric_histories",
    "metric_history_frame",
    "parse_filter",
    "parse_order_by",
    "run_keys",
    "search_experiments",
    "search_runs",
    "search_runs_frame",
]


# -- arguments -----------------------------------------------------------------------------------------
def check_max_results(max_results: Any, limit: int | None = SEARCH_MAX_RESULTS_THRESHOLD) -> int | None:
    if max_results is None:
        return None
    if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
        raise InvalidParameterValue(
            f"max_results must be a positive integer, got {max_results!r}", max_results=max_results)
    if limit is not None and max_results > limit:
        raise InvalidParameterValue(
            f"max_results={max_results} is more than the {limit} one page may hold; "
            "ask for fewer and follow the page token, or use gitexp.search_runs for a DataFrame of any size",
            max_results=max_results)
    return max_results


def check_view_type(view_type: Any) -> int:
    if isinstance(view_type, str):
        return ViewType.from_string(view_type.lower())
    if view_type not in (ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL):
        raise InvalidParameterValue(
            f"Unknown view type {view_type!r}; use ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY or ViewType.ALL",
            view_type=view_type)
    return int(view_type)


def experiment_id_list(experiment_ids: Any) -> list[str]:
    if experiment_ids is None:
        return []
    if isinstance(experiment_ids, (str, int)):
        experiment_ids = [experiment_ids]
    out = []
    for e in experiment_ids:
        if isinstance(e, bool) or not isinstance(e, (str, int)):
            raise InvalidParameterValue(f"Experiment ids must be strings, got {e!r} ({type(e).__name__})")
        out.append(str(e))
    return out


# -- page tokens ---------------------------------------------------------------------------------------------
def _fingerprint(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _make_token(offset: int, fingerprint: str) -> str:
    return base64.b64encode(json.dumps({"offset": offset, "search": fingerprint}).encode()).decode()


def _token_offset(token: str | bytes | None, fingerprint: str) -> int:
    """The offset a page token holds (MLflow's base64 JSON, plus which search it belongs to)."""
    if not token:
        return 0
    try:
        raw = base64.b64decode(token, validate=True)
        doc = json.loads(raw)
        offset = int(doc["offset"])
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise SearchError(f"Invalid page token {token!r}: pass the token a previous page returned",
                          page_token=token) from None
    if offset < 0:
        raise SearchError(f"Invalid page token {token!r}: negative offset", page_token=token)
    if doc.get("search") not in (None, fingerprint):
        raise SearchError(
            "This page token belongs to a different search (other experiments, filter, order or view); "
            "repeat the search that returned it to get the next page", page_token=token)
    return offset


# -- runs ----------------------------------------------------------------------------------------------------
def _resolve(store: GitStore, as_of: Any) -> str | None:
    if as_of is None:
        return None
    from ._asof import resolve_as_of

    return resolve_as_of(store, as_of)


def search_runs(store: GitStore, experiment_ids: Any, filter_string: str | None = "",
                run_view_type: Any = ViewType.ACTIVE_ONLY, max_results: int | None = 1000,
                order_by: list[str] | None = None, page_token: str | None = None,
                as_of: Any = None) -> PagedList[Any]:
    """Runs matching a filter, ordered and paged as MLflow's search_runs."""
    ids = experiment_id_list(experiment_ids)
    view_type = check_view_type(run_view_type)
    max_results = check_max_results(max_results)
    clauses = parse_filter(filter_string, RUNS)
    order = parse_order_by(order_by, RUNS)
    commit = _resolve(store, as_of)
    fingerprint = _fingerprint(sorted(ids), filter_string or "", list(order_by or []), view_type, commit)
    offset = _token_offset(page_token, fingerprint)
    def query(view: IndexView) -> tuple[list[Run], bool]:
        limit = None if max_results is None else max_results + 1
        rids = view.select(ids, clauses, order, view_type, offset, limit)
        more = max_results is not None and len(rids) > max_results
        return view.runs(rids[:max_results] if max_results is not None else rids), more

    runs, more = store.search_index.query(query, commit)
    return PagedList(runs, _make_token(offset + len(runs), fingerprint) if more else None)


def run_keys(store: GitStore, experiment_ids: Any, run_view_type: Any = ViewType.ACTIVE_ONLY
             ) -> dict[str, list[str]]:
    """{"metrics": [...], "params": [...], "tags": [...]}: the keys the experiments' runs use."""
    ids = experiment_id_list(experiment_ids)
    view_type = check_view_type(run_view_type)
    keys: dict[str, list[str]] = store.search_index.query(lambda view: view.keys(ids, view_type))
    return keys


def search_runs_frame(store: GitStore, experiment_ids: Any, filter_string: str | None = "",
                      run_view_type: Any = ViewType.ACTIVE_ONLY, max_results: int | None = None,
                      order_by: list[str] | None = None, as_of: Any = None,
                      extra_columns: bool = False) -> pandas.DataFrame:
    """MLflow's search_runs DataFrame, built column by column from the index.

    `extra_columns` adds run_name and lifecycle_stage after end_time (the CLI uses them).
    """
    ids = experiment_id_list(experiment_ids)
    view_type = check_view_type(run_view_type)
    max_results = check_max_results(max_results, limit=None)
    clauses = parse_filter(filter_string, RUNS)
    order = parse_order_by(order_by, RUNS)
    commit = _resolve(store, as_of)
    columns = store.search_index.query(
        lambda view: view.columns(view.select(ids, clauses, order, view_type, 0, max_results)), commit)
    return _frame(columns, extra_columns)


_TIME_UNIT: list[str] = []


def _time_unit() -> str:
    """The resolution MLflow's DataFrame gets for its time columns with this pandas
    ("ns" with pandas 2, "us" with pandas 3): a column of pd.to_datetime(ms) scalars."""
    if not _TIME_UNIT:
        import pandas as pd

        column = pd.Series([pd.to_datetime(0, unit="ms", utc=True), pd.to_datetime(None, unit="ms", utc=True)])
        _TIME_UNIT.append(getattr(column.dtype, "unit", "ns"))
    return _TIME_UNIT[0]


def _frame(columns: dict[str, Any], extra_columns: bool) -> pandas.DataFrame:
    import pandas as pd

    data: dict[str, Any] = {
        "run_id": pd.array(columns["run_id"], dtype=object),
        "experiment_id": pd.array(columns["experiment_id"], dtype=object),
        "status": pd.array(columns["status"], dtype=object),
        "artifact_uri": pd.array(columns["artifact_uri"], dtype=object),
        "start_time": pd.to_datetime(columns["start_time"], unit="ms", utc=True).as_unit(_time_unit()),
        "end_time": pd.to_datetime(columns["end_time"], unit="ms", utc=True).as_unit(_time_unit()),
    }
    if extra_columns:
        data["run_name"] = pd.array(columns["run_name"], dtype=object)
        data["lifecycle_stage"] = pd.array(columns["lifecycle_stage"], dtype=object)
    for group in ("metrics", "params", "tags"):
        for key in sorted(columns[group]):
            values = columns[group][key]
            data[f"{group}.{key}"] = values if group == "metrics" else pd.array(values, dtype=object)
    return pd.DataFrame(data)


# -- experiments ---------------------------------------------------------------------------------------------
def search_experiments(experiments: list[Experiment], filter_string: str | None, order_by: list[str] | None,
                       max_results: int | None, page_token: str | None) -> PagedList[Any]:
    """Experiments matching a filter, ordered (MLflow's defaults) and paged."""
    max_results = check_max_results(max_results)
    clauses = parse_filter(filter_string, EXPERIMENTS)
    order = parse_order_by(order_by, EXPERIMENTS)
    fingerprint = _fingerprint(filter_string or "", list(order_by or []))
    offset = _token_offset(page_token, fingerprint)
    matched = [e for e in experiments if all(_experiment_matches(e, c) for c in clauses)]
    keys = [(k.key, k.ascending) for k in order] or [("creation_time", False), ("experiment_id", True)]
    if not any(key == "experiment_id" for key, _ in keys):
        keys.append(("experiment_id", False))
    # SQL order (MLflow's sqlite store): NULL is the smallest value; sort by the last key first.
    for key, ascending in reversed(keys):
        matched.sort(key=functools.partial(_experiment_sort_key, key=key), reverse=not ascending)
    end = len(matched) if max_results is None else offset + max_results
    page = matched[offset:end]
    return PagedList(page, _make_token(end, fingerprint) if end < len(matched) else None)


def _experiment_sort_key(experiment: Experiment, key: str) -> tuple[Any, ...]:
    return _null_first(_experiment_value(experiment, key))


def _null_first(value: Any) -> tuple[Any, ...]:
    return (value is not None, value)


def _experiment_value(experiment: Experiment, key: str) -> Any:
    value = getattr(experiment, key)
    if key == "experiment_id" and isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _experiment_matches(experiment: Experiment, clause: Clause) -> bool:
    if clause.entity == "tag":
        if clause.op == "IS NULL":
            return clause.key not in experiment.tags
        if clause.op == "IS NOT NULL":
            return clause.key in experiment.tags
        return compare(clause.op, experiment.tags.get(clause.key), clause.value)
    return compare(clause.op, getattr(experiment, clause.key), clause.value)


# -- metric histories ------------------------------------------------------------------------------------------
def run_id_list(run_ids: Any) -> list[str]:
    """Run ids from a string, an iterable of ids or Runs, or a DataFrame with a run_id column."""
    if isinstance(run_ids, str):
        return [run_ids]
    if hasattr(run_ids, "columns") and "run_id" in run_ids.columns:
        run_ids = run_ids["run_id"]
    out: list[str] = []
    for item in run_ids:
        if isinstance(item, Run):
            item = item.info.run_id
        if not isinstance(item, str):
            raise InvalidParameterValue(f"Run ids must be strings, got {item!r} ({type(item).__name__})")
        out.append(item)
    return list(dict.fromkeys(out))


def _run_states(store: GitStore, run_ids: list[str]) -> dict[str, RunState]:
    states: dict[str, RunState] = {}
    trees: dict[str, str] = {}
    root = store.branch.tree_of(store.branch.tip())
    live = store.branch.live_commits()
    for run_id in run_ids:
        if run_id in live or store.has_session(run_id):
            states[run_id] = store.run_state(run_id)
            continue
        tree = store.branch.run_tree(run_id, root) if root else None
        if tree is None:
            store.run_state(run_id)  # raises the store's "run not found" error
        else:
            trees[run_id] = tree
    states.update(store.branch.read_run_trees(trees))
    return states


def metric_histories(store: TrackingStore, run_ids: Any, keys: str | Iterable[str] | None = None
                     ) -> list[tuple[str, str, int, int, float]]:
    """(run_id, key, step, timestamp, value) of every logged point, by run, key, step and time."""
    ids = run_id_list(run_ids)
    wanted = [keys] if isinstance(keys, str) else None if keys is None else list(keys)
    return store.metric_histories(ids, wanted)


def local_metric_histories(store: GitStore, ids: list[str], wanted: list[str] | None
                           ) -> list[tuple[str, str, int, int, float]]:
    """metric_histories of a git store: histories read from the branch as arrays."""
    states = _run_states(store, ids)
    rows: list[tuple[str, str, int, int, float]] = []
    for run_id in ids:
        state = states[run_id]
        for key in sorted(state.latest) if wanted is None else wanted:
            steps, times, values = store.metric_history_arrays(run_id, key, state)
            rows.extend((run_id, key, step, ts, value)
                        for step, ts, value in zip(steps.tolist(), times.tolist(), values.tolist(), strict=True))
    return rows


def metric_history_metrics(store: TrackingStore, run_ids: Any, keys: Any = None) -> list[Metric]:
    return [Metric(key, value, ts, step, run_id=run_id)
            for run_id, key, step, ts, value in metric_histories(store, run_ids, keys)]


def metric_history_frame(store: TrackingStore, run_ids: Any, keys: Any = None) -> pandas.DataFrame:
    """A tidy frame: one row per (run_id, key, step, timestamp) with its value."""
    import numpy as np
    import pandas as pd

    rows = metric_histories(store, run_ids, keys)
    return pd.DataFrame({
        "run_id": pd.array([r[0] for r in rows], dtype=object),
        "key": pd.array([r[1] for r in rows], dtype=object),
        "step": np.array([r[2] for r in rows], dtype="int64"),
        "timestamp": np.array([r[3] for r in rows], dtype="int64"),
        "value": np.array([r[4] for r in rows], dtype="float64"),
    })


def runs_to_dataframe(runs: list[Run]) -> pandas.DataFrame:
    """MLflow's DataFrame for Run entities already in hand (e.g. from Client.search_runs)."""
    import numpy as np

    n = len(runs)
    metrics: dict[str, Any] = {}
    params: dict[str, list[Any]] = {}
    tags: dict[str, list[Any]] = {}
    for i, run in enumerate(runs):
        for key, value in run.data.metrics.items():
            metrics.setdefault(key, np.full(n, np.nan))[i] = value
        for key, value in run.data.params.items():
            params.setdefault(key, [None] * n)[i] = value
        for key, value in run.data.tags.items():
            tags.setdefault(key, [None] * n)[i] = value
    columns = {
        "run_id": [r.info.run_id for r in runs],
        "experiment_id": [r.info.experiment_id for r in runs],
        "status": [r.info.status for r in runs],
        "artifact_uri": [r.info.artifact_uri for r in runs],
        "start_time": np.array([r.info.start_time for r in runs], dtype="float64"),
        "end_time": np.array([np.nan if r.info.end_time is None else r.info.end_time for r in runs], dtype="float64"),
        "run_name": [r.info.run_name for r in runs],
        "lifecycle_stage": [r.info.lifecycle_stage for r in runs],
        "metrics": metrics, "params": params, "tags": tags,
    }
    return _frame(columns, extra_columns=False)

