"""Client (alias MlflowClient): the one object the fluent API, CLI, server and UI use.

Method names, arguments and return types follow ``mlflow.MlflowClient``.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Sequence

from .entities import (
    Experiment,
    Metric,
    PagedList,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from .exceptions import InvalidParameterValue
from .store.repo import open_repository, path_from_uri
from .store.tracking import GitStore, get_store

SEARCH_MAX_RESULTS_DEFAULT = 1000

_ENV_URI = "GITEXP_TRACKING_URI"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI in effect: explicit, else GITEXP_TRACKING_URI, else the current directory."""
    if uri:
        return uri
    return os.environ.get(_ENV_URI) or os.getcwd()


_stores_by_uri: dict[str, GitStore] = {}
_lock = threading.Lock()


def store_for_uri(uri: str | None) -> GitStore:
    uri = resolve_tracking_uri(uri)
    key = uri if "://" in uri else os.path.abspath(uri)
    store = _stores_by_uri.get(key)
    if store is None:
        with _lock:
            store = _stores_by_uri.get(key)
            if store is None:
                store = get_store(open_repository(path_from_uri(uri)))
                _stores_by_uri[key] = store
    return store


def forget_stores() -> None:
    """Drop cached stores (tests, or after the tracking branch config changed)."""
    with _lock:
        _stores_by_uri.clear()
    from .store import repo, tracking

    repo.forget_cached_repositories()
    with tracking._stores_lock:
        tracking._stores.clear()
    index = sys.modules.get("gitexp.search._index")
    if index is not None:
        index.forget_indexes()


class Client:
    """Experiments, runs and (later) models of one repository.

    >>> client = Client()                     # the repository around the current directory
    >>> exp_id = client.create_experiment("demo")
    >>> run = client.create_run(exp_id)
    >>> client.log_metric(run.info.run_id, "rmse", 0.5)
    >>> client.set_terminated(run.info.run_id)
    """

    def __init__(self, tracking_uri: str | None = None, registry_uri: str | None = None):
        self._tracking_uri = resolve_tracking_uri(tracking_uri)
        self._registry_uri = registry_uri or self._tracking_uri
        self._store_cache: GitStore | None = None

    @property
    def _store(self) -> GitStore:
        store = self._store_cache
        if store is None:
            store = self._store_cache = store_for_uri(self._tracking_uri)
        return store

    @property
    def tracking_uri(self) -> str:
        return self._tracking_uri

    # -- experiments ---------------------------------------------------------------------
    def create_experiment(self, name: str, artifact_location: str | None = None,
                          tags: dict[str, Any] | None = None) -> str:
        return self._store.create_experiment(name, artifact_location, tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self._store.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self._store.get_experiment_by_name(name)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self._store.rename_experiment(experiment_id, new_name)

    def delete_experiment(self, experiment_id: str) -> None:
        self._store.delete_experiment(experiment_id)

    def restore_experiment(self, experiment_id: str) -> None:
        self._store.restore_experiment(experiment_id)

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self._store.set_experiment_tags(experiment_id, {key: value})

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self._store.delete_experiment_tag(experiment_id, key)

    def search_experiments(self, view_type: int = ViewType.ACTIVE_ONLY,
                           max_results: int | None = SEARCH_MAX_RESULTS_DEFAULT,
                           filter_string: str | None = None, order_by: list[str] | None = None,
                           page_token: str | None = None) -> PagedList:
        from .search import search_experiments

        return search_experiments(self._store.list_experiments(view_type), filter_string, order_by,
                                  max_results, page_token)

    # -- runs ----------------------------------------------------------------------------
    def create_run(self, experiment_id: str, start_time: int | None = None,
                   tags: dict[str, Any] | None = None, run_name: str | None = None) -> Run:
        return self._store.create_run(experiment_id, None, start_time, tags, run_name)

    def get_run(self, run_id: str) -> Run:
        return self._store.get_run(run_id)

    def get_parent_run(self, run_id: str) -> Run | None:
        parent = self.get_run(run_id).data.tags.get("mlflow.parentRunId")
        return self.get_run(parent) if parent else None

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self._store.get_metric_history(run_id, key)

    def log_metric(self, run_id: str, key: str, value: float, timestamp: int | None = None,
                   step: int | None = None, synchronous: bool | None = None, dataset_name: str | None = None,
                   dataset_digest: str | None = None, model_id: str | None = None) -> None:
        self._store.log_metric(run_id, key, value, timestamp, step)

    def log_param(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> Any:
        self._store.log_batch(run_id, params=[Param(key, value)])
        return value

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> None:
        self._store.set_tag(run_id, key, value)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._store.delete_tag(run_id, key)

    def log_batch(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
                  tags: Sequence[RunTag] = (), synchronous: bool | None = None) -> None:
        self._store.log_batch(run_id, metrics, params, tags)

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        if status is None and name is None:
            raise InvalidParameterValue("update_run needs a status or a name")
        self._store.update_run_info(run_id, status, None, name)

    def set_terminated(self, run_id: str, status: str | None = None, end_time: int | None = None) -> None:
        self._store.update_run_info(run_id, status or RunStatus.to_string(RunStatus.FINISHED), end_time)

    def delete_run(self, run_id: str) -> None:
        self._store.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        self._store.restore_run(run_id)

    def search_runs(self, experiment_ids: str | list[str], filter_string: str = "",
                    run_view_type: int = ViewType.ACTIVE_ONLY, max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
                    order_by: list[str] | None = None, page_token: str | None = None,
                    as_of: Any = None) -> PagedList:
        """Runs matching an MLflow filter string, ordered and paged (at most 50000 a page).

        ``as_of`` (gitexp addition) searches the store as it was: a commit-ish
        (``"gitexp~3"``, a commit id) or a date/datetime (or ISO string of one).
        """
        from .search import search_runs

        return search_runs(self._store, experiment_ids, filter_string, run_view_type,
                           max_results, order_by, page_token, as_of)

    def search_runs_frame(self, experiment_ids: str | list[str], filter_string: str = "",
                          run_view_type: int = ViewType.ACTIVE_ONLY, max_results: int | None = None,
                          order_by: list[str] | None = None, as_of: Any = None):
        """search_runs as a pandas DataFrame with MLflow's columns, any number of rows (gitexp addition).

        Built column-wise from the search index, without Run entities: the fast
        path behind ``gitexp.search_runs``.
        """
        from .search import search_runs_frame

        return search_runs_frame(self._store, experiment_ids, filter_string, run_view_type,
                                 max_results, order_by, as_of)

    def get_metric_histories(self, run_ids: Any, keys: str | Sequence[str] | None = None) -> list[Metric]:
        """Every logged point of the given metrics (default: all) of many runs (gitexp addition).

        Ordered by run (as given), key, step and timestamp; each Metric carries its run_id.
        """
        from .search import metric_history_metrics

        return metric_history_metrics(self._store, run_ids, keys)

    def metric_history_frame(self, run_ids: Any, keys: str | Sequence[str] | None = None):
        """A tidy pandas DataFrame of metric histories: columns run_id, key, step, timestamp,
        value; one row per logged point (gitexp addition)."""
        from .search import metric_history_frame

        return metric_history_frame(self._store, run_ids, keys)

    def flush(self, run_id: str | None = None) -> None:
        """Commit pending changes now instead of at the next checkpoint (gitexp addition)."""
        self._store.flush(run_id)

    def get_run_code_diff(self, run_id: str) -> str:
        """The uncommitted diff the run ran with ('' for a clean tree) (gitexp addition)."""
        return self._store.code_patch(run_id).decode("utf-8", "replace")

    def _run_info(self, run_id: str) -> RunInfo:
        return self.get_run(run_id).info


MlflowClient = Client
