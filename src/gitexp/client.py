"""Client (alias MlflowClient): the one object the fluent API, CLI, server and UI use.

Method names, arguments and return types follow ``mlflow.MlflowClient``.
"""

from __future__ import annotations

import os
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
                    order_by: list[str] | None = None, page_token: str | None = None) -> PagedList:
        from .search import search_runs

        if isinstance(experiment_ids, (str, int)):
            experiment_ids = [str(experiment_ids)]
        return search_runs(self._store, [str(e) for e in experiment_ids], filter_string, run_view_type,
                           max_results, order_by, page_token)

    def flush(self, run_id: str | None = None) -> None:
        """Commit pending changes now instead of at the next checkpoint (gitexp addition)."""
        self._store.flush(run_id)

    def get_run_code_diff(self, run_id: str) -> str:
        """The uncommitted diff the run ran with ('' for a clean tree) (gitexp addition)."""
        return self._store.code_patch(run_id).decode("utf-8", "replace")

    # -- sharing and code versions (gitexp additions) ---------------------------------------
    def pull(self, remote: str | None = None, progress: bool | None = None):
        """Fetch the remote's tracking branch and merge it into yours (see docs/sync.md).

        remote: a remote name or URL (default: the current branch's upstream remote, else origin).
        Returns a PullResult (action, before/after commits, number of new runs).
        """
        from .store import sync

        return sync.pull(self._store, remote, progress)

    def push(self, remote: str | None = None, progress: bool | None = None, no_verify: bool = False):
        """Push the tracking branch; if another clone pushed first, merge theirs and retry.

        no_verify skips your pre-push hooks for this push (as `git push --no-verify`).
        """
        from .store import sync

        return sync.push(self._store, remote, progress, no_verify=no_verify)

    def sync(self, remote: str | None = None, progress: bool | None = None):
        """pull() then push(): afterwards you and the remote hold every run of both."""
        from .store import sync

        return sync.sync(self._store, remote, progress)

    def checkout_code(self, run_id: str, directory: str):
        """Recreate the source tree a run ran with in `directory` (commit + uncommitted diff).

        Returns a CodeCheckout (commit, whether a diff was applied, untracked files whose
        content was not recorded).
        """
        from . import code_version

        state = self._store.run_state(run_id)
        return code_version.checkout(self._store.repo, run_id, state.code, self._store.code_patch(run_id),
                                     directory)

    def link_runs_to_commit(self, commit: str = "HEAD", repository: str | None = None) -> list[str]:
        """Tag runs made on uncommitted code that `commit` holds with gitexp.code.committedAs.

        repository: the code's repository when it is not the tracking repository.
        The post-commit hook calls this; the rule is in docs/sync.md ("Linking runs to commits").
        Returns the ids of the runs linked.
        """
        from .store import code_links

        return code_links.link_runs_to_commit(self._store, commit, repository)

    def _run_info(self, run_id: str) -> RunInfo:
        return self.get_run(run_id).info


MlflowClient = Client
