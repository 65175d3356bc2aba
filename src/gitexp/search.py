"""Searching runs and experiments (filter grammar and index arrive with the search issue)."""

from __future__ import annotations

from .entities import LifecycleStage, PagedList
from .exceptions import SearchError


def _page(items: list, max_results: int | None, page_token: str | None) -> PagedList:
    start = int(page_token) if page_token else 0
    if max_results is None:
        return PagedList(items[start:], None)
    end = start + max_results
    return PagedList(items[start:end], str(end) if end < len(items) else None)


def search_runs(store, experiment_ids, filter_string, run_view_type, max_results, order_by, page_token):
    if filter_string or order_by:
        raise SearchError("filter strings and order_by are not supported yet")
    stages = LifecycleStage.view_type_to_stages(run_view_type)
    runs = [store.to_run(s) for s in store.iter_run_states() if s.experiment_id in experiment_ids]
    runs = [r for r in runs if r.info.lifecycle_stage in stages]
    runs.sort(key=lambda r: (-r.info.start_time, r.info.run_id))
    return _page(runs, max_results, page_token)


def search_experiments(experiments, filter_string, order_by, max_results, page_token):
    if filter_string or order_by:
        raise SearchError("filter strings and order_by are not supported yet")
    experiments = sorted(experiments, key=lambda e: (-(e.creation_time or 0), e.experiment_id))
    return _page(experiments, max_results, page_token)


def runs_to_dataframe(runs):
    import pandas as pd

    rows = []
    for r in runs:
        row = {
            "run_id": r.info.run_id,
            "experiment_id": r.info.experiment_id,
            "status": r.info.status,
            "artifact_uri": r.info.artifact_uri,
            "start_time": pd.to_datetime(r.info.start_time, unit="ms", utc=True),
            "end_time": pd.to_datetime(r.info.end_time, unit="ms", utc=True) if r.info.end_time else pd.NaT,
        }
        row.update({f"metrics.{k}": v for k, v in r.data.metrics.items()})
        row.update({f"params.{k}": v for k, v in r.data.params.items()})
        row.update({f"tags.{k}": v for k, v in r.data.tags.items()})
        rows.append(row)
    return pd.DataFrame(rows)
