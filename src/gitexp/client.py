"""Client (alias MlflowClient): the one object the fluent API, CLI, server and UI use.

Method names, arguments and return types follow ``mlflow.MlflowClient``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

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
from .store.interface import RepositoryInfo, RunRecord, TrackingStore, lazy_attribute
from .store.repo import acting_as as acting_as  # re-exported: the server names the author with it
from .store.repo import open_repository, parse_tracking_uri

if TYPE_CHECKING:
    import pandas as pd

    from .code_version import CodeCheckout, CodeDiff
    from .entities.logged_model import LoggedModel
    from .entities.model_registry import ModelHistoryEntry, ModelVersion, RegisteredModel
    from .store.artifacts import RunArtifacts
    from .store.diagnosis import Diagnosis
    from .store.history import CommitDetail
    from .store.logged_models import LoggedModels
    from .store.registry import ModelRegistry
    from .store.rest import RestArtifacts, RestLoggedModels, RestRegistry
    from .store.sync import PullResult, PushResult, SyncResult

SEARCH_MAX_RESULTS_DEFAULT = 1000

_ENV_URI = "GITEXP_TRACKING_URI"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI in effect: explicit, else GITEXP_TRACKING_URI, else the current directory."""
    if uri:
        return uri
    return os.environ.get(_ENV_URI) or os.getcwd()


# The one process-wide cache: a store per tracking URI, so that Client(path) created again
# and again reuses one store (its sessions, caches, registry and search index).  Two paths in
# one repository share the store of that repository and tracking branch.
_stores_by_uri: dict[str, TrackingStore] = {}
_lock = threading.Lock()


def store_for_uri(uri: str | None) -> TrackingStore:
    uri = resolve_tracking_uri(uri)
    key = uri if "://" in uri else os.path.abspath(uri)
    store = _stores_by_uri.get(key)
    if store is None:
        with _lock:
            store = _stores_by_uri.get(key)
            if store is None:
                store = _stores_by_uri[key] = _open_store(uri)
    return store


def _open_store(uri: str) -> TrackingStore:
    if uri.lower().startswith(("http://", "https://")):
        from .store.rest import RestStore  # a `gitexp server` (or any MLflow server)

        return RestStore(uri)
    from .store.tracking import GitStore

    repo = open_repository(*parse_tracking_uri(uri))
    for known in _stores_by_uri.values():
        if isinstance(known, GitStore) and known.repo.common_dir == repo.common_dir and known.repo.ref == repo.ref:
            return known
    return GitStore(repo)


def forget_stores() -> None:
    """Drop cached stores (tests, or after the tracking branch config changed)."""
    with _lock:
        stores = list({id(s): s for s in _stores_by_uri.values()}.values())
        _stores_by_uri.clear()
    for store in stores:
        store.close()


class Client:
    """Experiments, runs and registered models of one repository.

    >>> client = Client()                     # the repository around the current directory
    >>> exp_id = client.create_experiment("demo")
    >>> run = client.create_run(exp_id)
    >>> client.log_metric(run.info.run_id, "rmse", 0.5)
    >>> client.set_terminated(run.info.run_id)

    Everything above the store (the fluent API, CLI, server, UI) goes through these
    methods; the store itself (``_store``) is for this module only.
    """

    def __init__(self, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        self._tracking_uri = resolve_tracking_uri(tracking_uri)
        self._registry_uri = registry_uri or self._tracking_uri

    @lazy_attribute
    def _store(self) -> TrackingStore:
        # Opened on first use, then a plain instance attribute (no property call, no __getattr__
        # hook slowing every attribute read): log_metric goes Client -> store with nothing between.
        return store_for_uri(self._tracking_uri)

    @property
    def tracking_uri(self) -> str:
        return self._tracking_uri

    # -- the repository (gitexp additions; a tracking server's store raises RepositoryRequired) ----
    def get_repository_info(self) -> RepositoryInfo:
        """Where the runs are: the repository's path, git directory and tracking branch."""
        return self._store.repository_info()

    def get_tracking_tip(self) -> str | None:
        """The tracking branch's current commit id (None before the first run)."""
        return self._store.tracking_tip()

    def create_tracking_branch(self) -> str:
        """Create the tracking branch if it does not exist (`gitexp init`); its commit id."""
        return self._store.ensure_branch()

    def diagnose(self, recover_all: bool = False, progress: Any = None) -> Diagnosis:
        """What `gitexp doctor` does: clear ref locks of dead processes, recover their journals
        (also those not provably dead with recover_all), and report what is left."""
        return self._store.diagnose(recover_all, progress)

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
                           page_token: str | None = None) -> PagedList[Any]:
        from .search import search_experiments

        return search_experiments(self._store.list_experiments(view_type), filter_string, order_by,
                                  max_results, page_token)

    def list_experiments(self, view_type: int = ViewType.ACTIVE_ONLY, max_results: int | None = None,
                         page_token: str | None = None) -> PagedList[Any]:
        """MLflow 1.x's name for search_experiments() without a filter (older tutorials use it)."""
        return self.search_experiments(view_type, max_results, page_token=page_token)

    # -- runs ----------------------------------------------------------------------------
    def create_run(self, experiment_id: str, start_time: int | None = None,
                   tags: dict[str, Any] | None = None, run_name: str | None = None, *,
                   user_id: str | None = None) -> Run:
        """A new RUNNING run. ``user_id`` (gitexp addition, used by the REST server) defaults to the
        tag mlflow.user, else your git identity."""
        return self._store.create_run(experiment_id, user_id, start_time, tags, run_name)

    def get_run(self, run_id: str) -> Run:
        return self._store.get_run(run_id)

    def get_parent_run(self, run_id: str) -> Run | None:
        parent = self.get_run(run_id).data.tags.get("mlflow.parentRunId")
        return self.get_run(parent) if parent else None

    def get_metric_history(self, run_id: str, key: str) -> Sequence[Metric]:
        """Every logged value of a metric, by step then time: a `MetricHistory` (a read-only
        sequence of Metric entities backed by arrays; `list(...)` for a real list)."""
        return self._store.get_metric_history(run_id, key)

    def metric_history_arrays(self, run_id: str, key: str) -> tuple[Any, ...]:
        """A metric's history as numpy arrays (steps, timestamps, values): a long history
        without a Python object per point."""
        return self._store.metric_history_arrays(run_id, key)

    def get_metric_history_bulk_interval(self, run_ids: Sequence[str], metric_key: str,
                                         start_step: int | None = None, end_step: int | None = None,
                                         max_results: int = 2500) -> list[Metric]:
        """MLflow's bulk-interval read (what its charts use): the steps of `metric_key` in
        [start_step, end_step] across the runs (default: 0 to the largest step), sampled to
        about `max_results` evenly spaced ones plus each run's first and last; for each run,
        its points at those steps, by step then time.  Same sampling as MLflow's stores."""
        from .store.histories import bulk_interval

        run_ids = list(run_ids)
        if not 1 <= len(run_ids) <= 100:
            raise InvalidParameterValue(f"Give between 1 and 100 run ids, got {len(run_ids)}")
        if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= 2500:
            raise InvalidParameterValue(f"max_results must be between 1 and 2500, got {max_results!r}")
        if (start_step is None) != (end_step is None):
            raise InvalidParameterValue("Give both start_step and end_step, or neither "
                                        f"(got start_step={start_step!r}, end_step={end_step!r})")
        if start_step is not None and end_step is not None and start_step > end_step:
            raise InvalidParameterValue(f"end_step must be greater than start_step "
                                        f"(got start_step={start_step}, end_step={end_step})")
        histories = {run_id: self.metric_history_arrays(run_id, metric_key) for run_id in run_ids}
        return [Metric(metric_key, value, ts, step, run_id=run_id)
                for run_id, step, ts, value in bulk_interval(histories, max_results, start_step, end_step)]

    def log_metric(self, run_id: str, key: str, value: float, timestamp: int | None = None,
                   step: int | None = None, synchronous: bool | None = None, dataset_name: str | None = None,
                   dataset_digest: str | None = None, model_id: str | None = None) -> None:
        """Log one metric point to the run; with ``model_id`` (MLflow 3) it is also recorded as a
        metric of that logged model, on the dataset named by dataset_name/dataset_digest."""
        if model_id is None:
            self._store.log_metric(run_id, key, value, timestamp, step)
            return
        from .store.layout import now_ms

        self._store.log_batch(run_id, [Metric(key, value, now_ms() if timestamp is None else timestamp, step or 0,
                                              model_id, dataset_name, dataset_digest)])

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
                    as_of: Any = None) -> PagedList[Any]:
        """Runs matching an MLflow filter string, ordered and paged (at most 50000 a page).

        ``as_of`` (gitexp addition) searches the store as it was: a commit-ish
        (``"gitexp~3"``, a commit id) or a date/datetime (or ISO string of one).
        """
        return self._store.search_runs(experiment_ids, filter_string, run_view_type, max_results, order_by,
                                       page_token, as_of)

    def search_runs_frame(self, experiment_ids: str | list[str], filter_string: str = "",
                          run_view_type: int = ViewType.ACTIVE_ONLY, max_results: int | None = None,
                          order_by: list[str] | None = None, as_of: Any = None) -> pd.DataFrame:
        """search_runs as a pandas DataFrame with MLflow's columns, any number of rows (gitexp addition).

        Built column-wise from the search index, without Run entities: the fast
        path behind ``gitexp.search_runs``.
        """
        return self._store.search_runs_frame(experiment_ids, filter_string, run_view_type, max_results,
                                             order_by, as_of)

    def get_metric_histories(self, run_ids: Any, keys: str | Sequence[str] | None = None) -> list[Metric]:
        """Every logged point of the given metrics (default: all) of many runs (gitexp addition).

        Ordered by run (as given), key, step and timestamp; each Metric carries its run_id.
        """
        from .search import metric_history_metrics

        return metric_history_metrics(self._store, run_ids, keys)

    def metric_history_frame(self, run_ids: Any, keys: str | Sequence[str] | None = None) -> pd.DataFrame:
        """A tidy pandas DataFrame of metric histories: columns run_id, key, step, timestamp,
        value; one row per logged point (gitexp addition)."""
        from .search import metric_history_frame

        return metric_history_frame(self._store, run_ids, keys)

    def flush(self, run_id: str | None = None) -> None:
        """Commit pending changes now instead of at the next checkpoint (gitexp addition)."""
        self._store.flush(run_id)

    def put_runs(self, records: Sequence[RunRecord]) -> dict[str, str]:
        """Write whole runs of another store -- ids, users, names and times kept -- in one commit
        of the tracking branch (`gitexp import`, gitexp addition).  A run already there gets only
        what the record adds.  Returns run id -> "created", "updated" or "unchanged"."""
        return self._store.put_runs(records)

    def get_run_code_diff(self, run_id: str) -> str:
        """The uncommitted diff the run ran with ('' for a clean tree) (gitexp addition)."""
        return self._store.code_patch(run_id).decode("utf-8", "replace")

    def resolve_run_id(self, ref: str) -> str:
        """A full run id from itself or a unique prefix of at least 4 characters, like a short
        git hash (gitexp addition)."""
        return self._store.resolve_run_id(ref)

    def record_code(self, run_id: str, code: dict[str, Any], tags: dict[str, str] | None = None) -> None:
        """Record the code version a run ran with (code.yaml: commit, branch, dirty, diff...;
        code_version.capture() makes one) and its mlflow.source.git.* tags (gitexp addition)."""
        self._store.record_code(run_id, code, tags or {})

    def capture_code(self, run_id: str) -> None:
        """Capture the code version of the working tree around this process and record it for the
        run (what start_run does). With a git store it runs in a thread the run waits for before
        it ends; never raises: a failure is a logged warning (gitexp addition)."""
        from . import code_version

        def capture() -> None:
            try:
                info = code_version.capture()
                if info is not None:
                    self.record_code(run_id, info, code_version.tags_for(info))
            except Exception as exc:  # code capture must never break the user's run
                import logging

                logging.getLogger("gitexp").warning("gitexp: could not record the code version of run %s: %s",
                                                    run_id, exc)

        self._store.capture_code(run_id, capture)

    # -- sharing and code versions (gitexp additions) ---------------------------------------
    def pull(self, remote: str | None = None, progress: bool | None = None) -> PullResult:
        """Fetch the remote's tracking branch and merge it into yours (see docs/sync.md).

        remote: a remote name or URL (default: the current branch's upstream remote, else origin).
        Returns a PullResult (action, before/after commits, number of new runs).
        """
        return self._store.pull(remote, progress)

    def push(self, remote: str | None = None, progress: bool | None = None, no_verify: bool = False) -> PushResult:
        """Push the tracking branch; if another clone pushed first, merge theirs and retry.

        no_verify skips your pre-push hooks for this push (as `git push --no-verify`).
        """
        return self._store.push(remote, progress, no_verify=no_verify)

    def sync(self, remote: str | None = None, progress: bool | None = None) -> SyncResult:
        """pull() then push(): afterwards you and the remote hold every run of both."""
        return self._store.sync(remote, progress)

    def checkout_code(self, run_id: str, directory: str) -> CodeCheckout:
        """Recreate the source tree a run ran with in `directory` (commit + uncommitted diff).

        Returns a CodeCheckout (commit, whether a diff was applied, untracked files whose
        content was not recorded).
        """
        return self._store.checkout_code(run_id, directory)

    def link_runs_to_commit(self, commit: str = "HEAD", repository: str | None = None) -> list[str]:
        """Tag runs made on uncommitted code that `commit` holds with gitexp.code.committedAs.

        repository: the code's repository when it is not the tracking repository.
        The post-commit hook calls this; the rule is in docs/sync.md ("Linking runs to commits").
        Returns the ids of the runs linked.
        """
        return self._store.link_runs_to_commit(commit, repository)

    def _run_info(self, run_id: str) -> RunInfo:
        info: RunInfo = self.get_run(run_id).info
        return info

    # -- model registry (store logic: store/registry/) ------------------------------------
    @property
    def _registry(self) -> ModelRegistry | RestRegistry:
        return self._store.registry

    def create_registered_model(self, name: str, tags: dict[str, Any] | None = None,
                                description: str | None = None,
                                deployment_job_id: str | None = None) -> RegisteredModel:
        return self._registry.create_registered_model(name, tags, description)

    def get_registered_model(self, name: str) -> RegisteredModel:
        return self._registry.get_registered_model(name)

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        return self._registry.rename_registered_model(name, new_name)

    def update_registered_model(self, name: str, description: str | None = None,
                                deployment_job_id: str | None = None) -> RegisteredModel:
        return self._registry.update_registered_model(name, description)

    def delete_registered_model(self, name: str) -> None:
        self._registry.delete_registered_model(name)

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        self._registry.set_registered_model_tag(name, key, value)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._registry.delete_registered_model_tag(name, key)

    def search_registered_models(self, filter_string: str | None = None, max_results: int = 100,
                                 order_by: list[str] | None = None, page_token: str | None = None) -> PagedList[Any]:
        from .search._objects import search_registered_models

        return search_registered_models(self._registry.list_registered_models(), filter_string, max_results,
                                        order_by, page_token)

    def list_registered_models(self, max_results: int = 100, page_token: str | None = None) -> PagedList[Any]:
        """MLflow 1.x's name for search_registered_models() without a filter (older tutorials use it)."""
        return self.search_registered_models(max_results=max_results, page_token=page_token)

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        """The highest version in each of `stages` (default: every stage, None included)."""
        return self._registry.get_latest_versions(name, stages)

    def create_model_version(self, name: str, source: str, run_id: str | None = None,
                             tags: dict[str, Any] | None = None, run_link: str | None = None,
                             description: str | None = None, await_creation_for: int = 300,
                             model_id: str | None = None) -> ModelVersion:
        """Register `source` (runs:/<run_id>/<path>, models:/..., or a path) as the next version of `name`.

        Versions are READY at once, so `await_creation_for` has nothing to wait for.
        A logged model's URI (models:/m-<id>) registers the files it names (its runs:/ location).
        """
        from .store.logged_models import model_id_from_uri

        logged = model_id_from_uri(source)
        if logged is not None:
            found = self.get_logged_model(logged)
            source, model_id = found.artifact_location, model_id or logged
            run_id = run_id or found.source_run_id
        return self._registry.create_model_version(name, source, run_id, tags, run_link, description, model_id)

    def copy_model_version(self, src_model_uri: str, dst_name: str) -> ModelVersion:
        """Register the version `src_model_uri` (models:/...) names as a new version of `dst_name`."""
        from .exceptions import ResourceAlreadyExists

        src = self._registry.resolve(src_model_uri)
        try:
            self.create_registered_model(dst_name)
        except ResourceAlreadyExists:
            pass
        return self.create_model_version(dst_name, f"models:/{src.name}/{src.version}", run_id=src.run_id,
                                         tags=src.tags, description=src.description)

    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        return self._registry.get_model_version(name, version)

    def update_model_version(self, name: str, version: str | int, description: str | None = None) -> ModelVersion:
        return self._registry.update_model_version(name, version, description)

    def delete_model_version(self, name: str, version: str | int) -> None:
        self._registry.delete_model_version(name, version)

    def search_model_versions(self, filter_string: str | None = None, max_results: int = 10_000,
                              order_by: list[str] | None = None, page_token: str | None = None) -> PagedList[Any]:
        from .search._objects import search_model_versions

        return search_model_versions(self._registry.list_model_versions(), filter_string, max_results,
                                     order_by, page_token)

    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        """Where the version's files are: its source (runs:/<run_id>/<path> or a path)."""
        return self._registry.get_model_version_download_uri(name, version)

    def get_model_version_stages(self, name: str, version: str | int) -> list[str]:
        from .entities.model_registry import ModelVersionStages

        self.get_model_version(name, version)
        return list(ModelVersionStages.ALL)

    def transition_model_version_stage(self, name: str, version: str | int, stage: str,
                                       archive_existing_versions: bool = False) -> ModelVersion:
        """Move a version to None/Staging/Production/Archived (any case); optionally archive the others there."""
        return self._registry.transition_model_version_stage(name, version, stage, archive_existing_versions)

    def _version_or_stage(self, name: str, version: str | int | None, stage: str | None) -> str | int:
        if (version is None) == (stage is None):
            raise InvalidParameterValue(
                f"Give exactly one of version and stage for model {name!r} (got version={version!r}, "
                f"stage={stage!r})")
        if version is not None:
            return version
        assert stage is not None  # exactly one of the two, checked above
        latest = self.get_latest_versions(name, [stage])
        if not latest:
            from .exceptions import ResourceDoesNotExist

            raise ResourceDoesNotExist(f"Model {name!r} has no version in stage {stage!r}", name=name)
        found: str | int = latest[0].version
        return found

    def set_model_version_tag(self, name: str, version: str | int | None = None, key: str | None = None,
                              value: Any = None, stage: str | None = None) -> None:
        # A missing key is refused by the store's key check (InvalidParameterValue), as by MLflow's.
        self._registry.set_model_version_tag(name, self._version_or_stage(name, version, stage), cast(str, key), value)

    def delete_model_version_tag(self, name: str, version: str | int | None = None, key: str | None = None,
                                 stage: str | None = None) -> None:
        # A missing key is refused by the store's key check (InvalidParameterValue), as by MLflow's.
        self._registry.delete_model_version_tag(name, self._version_or_stage(name, version, stage), cast(str, key))

    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        self._registry.set_registered_model_alias(name, alias, version)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._registry.delete_registered_model_alias(name, alias)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return self._registry.get_model_version_by_alias(name, alias)

    def get_registered_model_history(self, name: str) -> list[ModelHistoryEntry]:
        """Who changed what in a registered model, and when, oldest first (gitexp addition).

        Works for deleted models too. Each entry names the event file and the commit that added it.
        """
        return self._registry.history(name)

    def resolve_model_version(self, model_uri: str) -> ModelVersion:
        """The version a models:/<name>/<version|stage|latest> or models:/<name>@<alias> URI names
        (gitexp addition)."""
        return self._registry.resolve(model_uri)

    # -- logged models (MLflow 3; store logic: store/logged_models.py) ------------------------
    @property
    def _logged_models(self) -> LoggedModels | RestLoggedModels:
        return self._store.logged_models

    def create_logged_model(self, experiment_id: str, name: str | None = None, source_run_id: str | None = None,
                            tags: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                            model_type: str | None = None, *, model_id: str | None = None) -> LoggedModel:
        """A new logged model (status PENDING) whose files go to runs:/<source_run_id>/<name>.

        Without a source run, gitexp creates a run in the experiment to hold the files.
        model_id keeps another store's id (`gitexp import`; a git store only).
        """
        return self._logged_models.create(experiment_id, name, source_run_id, tags, params, model_type, model_id)

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        return self._logged_models.get(model_id, allow_deleted)

    def finalize_logged_model(self, model_id: str, status: Any) -> LoggedModel:
        """Set the status to READY or FAILED (LoggedModelStatus or its name)."""
        return self._logged_models.finalize(model_id, status)

    def set_logged_model_tags(self, model_id: str, tags: dict[str, Any]) -> None:
        self._logged_models.set_tags(model_id, tags)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        self._logged_models.delete_tag(model_id, key)

    def log_model_params(self, model_id: str, params: dict[str, Any]) -> None:
        self._logged_models.log_params(model_id, params)

    def delete_logged_model(self, model_id: str) -> None:
        self._logged_models.delete(model_id)

    def list_run_logged_models(self, run_id: str) -> list[LoggedModel]:
        """Active logged models whose files are in the run, newest first (gitexp addition)."""
        return self._logged_models.for_run(run_id)

    def search_logged_models(self, experiment_ids: list[str], filter_string: str | None = None,
                             datasets: list[dict[str, Any]] | None = None, max_results: int | None = None,
                             order_by: list[dict[str, Any]] | None = None,
                             page_token: str | None = None) -> PagedList[Any]:
        """Logged models of the experiments matching the filter (name, model_id, model_type, status,
        source_run_id, creation_timestamp, tags.<key>); order_by: [{"field_name": ..., "ascending": ...}]."""
        return self._logged_models.search(experiment_ids, filter_string, datasets, max_results, order_by,
                                          page_token)

    # -- artifacts (files of a run: small ones in git, large ones in the artifact store) ------
    @property
    def _artifacts(self) -> RunArtifacts | RestArtifacts:
        return self._store.artifacts

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        """Log a local file (or directory) under the run's artifact_path directory."""
        self._artifacts.log_path(run_id, local_path, artifact_path)

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str | None = None) -> None:
        """Log every file below local_dir, keeping the layout, under artifact_path."""
        self._artifacts.log_dir(run_id, local_dir, artifact_path)

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        """Log bytes as the artifact file `artifact_file` (gitexp addition; log_text for text)."""
        self._artifacts.log_bytes(run_id, data, artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        from ._artifact_formats import text_bytes

        self._artifacts.log_bytes(run_id, text_bytes(text, artifact_file), artifact_file)

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> None:
        """Log a dict as YAML (.yaml/.yml) or JSON (any other name)."""
        from ._artifact_formats import dict_bytes

        self._artifacts.log_bytes(run_id, dict_bytes(dictionary, artifact_file), artifact_file)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str, *,
                   save_kwargs: dict[str, Any] | None = None) -> None:
        """Log a matplotlib or plotly figure (plotly: .html, or an image format via kaleido)."""
        from ._artifact_formats import figure_bytes

        self._artifacts.log_bytes(run_id, figure_bytes(figure, artifact_file, save_kwargs), artifact_file)

    def log_image(self, run_id: str, image: Any, artifact_file: str | None = None, key: str | None = None,
                  step: int | None = None, timestamp: int | None = None, synchronous: bool | None = None) -> None:
        """Log a numpy array or PIL image as a file, or (key=, step=) as a step of an image series."""
        from . import _artifact_formats as fmt

        if artifact_file is not None and any(a is not None for a in (key, step, timestamp)):
            raise InvalidParameterValue("log_image takes either artifact_file or key (with step/timestamp), not both")
        if artifact_file is None and key is None:
            raise InvalidParameterValue("log_image needs artifact_file (a static image) or key (an image series)")
        if artifact_file is not None:
            self._artifacts.log_bytes(run_id, fmt.image_bytes(image, artifact_file), artifact_file)
            return
        import uuid

        assert key is not None  # artifact_file or key: checked above
        full, thumb = fmt.image_key_paths(key, step, timestamp, str(uuid.uuid4()))
        self._artifacts.log_bytes(run_id, fmt.image_bytes(image, full), full)
        self._artifacts.log_bytes(run_id, fmt.compressed_image_bytes(image), thumb)
        self.set_tag(run_id, "mlflow.loggedImages", "True")

    def log_table(self, run_id: str, data: Any, artifact_file: str) -> None:
        """Log a DataFrame or dict as a table (.json in pandas 'split' form, or .parquet).

        Logging to an existing table file appends the rows, as MLflow does.
        """
        import json
        import posixpath
        import uuid

        from . import _artifact_formats as fmt

        fmt.check_table_file(artifact_file)
        frame = fmt.table_frame(data)
        for column in frame.columns:
            is_image = frame[column].map(fmt.is_image)
            if is_image.any() and not is_image.all():
                raise InvalidParameterValue(f"Column {column!r} of the table mixes images and other values")
            if len(frame) and is_image.all():
                def save(image: Any) -> dict[str, Any]:
                    base = posixpath.join("table_images", posixpath.splitext(artifact_file)[0], str(uuid.uuid4()))
                    self._artifacts.log_bytes(run_id, fmt.image_bytes(image, base + ".png"), base + ".png")
                    self._artifacts.log_bytes(run_id, fmt.compressed_image_bytes(image), base + ".webp")
                    return {"type": "image", "filepath": base + ".png", "compressed_filepath": base + ".webp"}
                frame[column] = frame[column].map(save)
        if any(f.path == artifact_file for f in self.list_artifacts(run_id, posixpath.dirname(artifact_file))):
            import pandas as pd

            existing = fmt.read_table(self._artifacts.read_bytes(run_id, artifact_file), artifact_file)
            frame = pd.concat([existing, frame], ignore_index=True)
        self._artifacts.log_bytes(run_id, fmt.table_bytes(frame, artifact_file), artifact_file)
        tag = json.loads(self.get_run(run_id).data.tags.get("mlflow.loggedArtifacts", "[]"))
        entry = {"path": artifact_file, "type": "table"}
        if entry not in tag:
            self.set_tag(run_id, "mlflow.loggedArtifacts", json.dumps(tag + [entry]))

    def load_table(self, experiment_id: str, artifact_file: str, run_ids: list[str] | None = None,
                   extra_columns: list[str] | None = None) -> pd.DataFrame:
        """One DataFrame of the table artifact_file from the given runs (default: every run of the experiment)."""
        import pandas as pd

        from . import _artifact_formats as fmt

        if run_ids is None:
            run_ids = [r.info.run_id for r in self.search_runs([experiment_id])]
        frames = []
        for run_id in run_ids:
            if not any(f.path == artifact_file for f in self.list_artifacts(run_id, _parent(artifact_file))):
                continue
            frame = fmt.read_table(self._artifacts.read_bytes(run_id, artifact_file), artifact_file)
            for column in extra_columns or []:
                if column != "run_id":
                    raise InvalidParameterValue(f"Unsupported extra column {column!r}; only 'run_id' is available")
                frame[column] = run_id
            frames.append(frame)
        if not frames:
            raise InvalidParameterValue(
                f"No run of experiment {experiment_id} has a table artifact {artifact_file!r}")
        return pd.concat(frames, ignore_index=True)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[Any]:
        """FileInfo of each file and directory directly below path (the root by default)."""
        return self._artifacts.list(run_id, path)

    def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str:
        """Copy an artifact file or directory to dst_path (default: a new temporary directory).

        Returns the local path, dst_path/path. Large files are fetched from the
        artifact store and their sha256 checked.
        """
        return self._artifacts.download(run_id, path, dst_path)

    # -- the shared area: files of the artifact root that belong to no run (gitexp additions) ----------
    def log_shared_artifact(self, local_path: str, path: str) -> None:
        """Store a local file at `path` of the shared area (on the tracking branch, or the large-file
        store above the threshold): what a tracking server's proxy receives at paths that are not a
        run's, e.g. mlflow-artifacts:/shared/a.txt."""
        import os

        with open(local_path, "rb") as fh:
            self._artifacts.log_shared(path, fh, os.fstat(fh.fileno()).st_size)

    def log_shared_bytes(self, data: bytes, path: str) -> None:
        """Store bytes at `path` of the shared area (see log_shared_artifact)."""
        import io

        self._artifacts.log_shared(path, io.BytesIO(data), len(data))

    def list_shared_artifacts(self, path: str | None = None) -> list[Any]:
        """FileInfo of each file and directory directly below `path` of the shared area."""
        return self._artifacts.list_shared(path)

    def download_shared_artifact(self, path: str, dst_path: str | None = None) -> str:
        """Copy the shared file at `path` into dst_path (default: a new temporary directory); its local path."""
        import os
        import tempfile

        dst = dst_path or tempfile.mkdtemp(prefix="gitexp-shared-")
        local = os.path.join(dst, *path.strip("/").split("/"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        try:
            with open(local, "wb") as fh:
                self._artifacts.read_shared(path, fh)
        except BaseException:
            os.unlink(local)
            raise
        return local

    def get_artifact_kind(self, run_id: str, path: str) -> str | None:
        """What a path of the run's artifacts is: "file", "dir", or None when there is no such
        artifact (gitexp addition)."""
        return self._artifacts.view(run_id).kind(path)

    def get_artifact_local_copy(self, run_id: str, path: str) -> str:
        """A local path holding the artifact, for reading only: with a git store a directory is
        materialized once into a cache keyed by its content (model loading); a tracking
        server's is downloaded to a new temporary directory (gitexp addition)."""
        return self._artifacts.local_copy(run_id, path)

    def link_logged_model_metrics(self, run_id: str, metrics: Sequence[Any]) -> None:
        """Record metric points the run already holds (Metric entities with model_id) as their logged
        models' own, without logging them to the run again (gitexp addition: gitexp import)."""
        self._logged_models.log_metrics(run_id, list(metrics))

    def log_outputs(self, run_id: str, models: Sequence[Any]) -> None:
        """Record logged models (LoggedModelOutput entities: model_id, step) as outputs of a run
        (MLflow 3); they show in run.outputs.model_outputs."""
        self.get_run(run_id)  # an unknown run is an error naming it
        self._logged_models.log_run_outputs(run_id, [(_model_id_of(m), int(getattr(m, "step", 0) or 0))
                                                     for m in models])

    def log_inputs(self, run_id: str, datasets: Sequence[Any] | None = None,
                   models: Sequence[Any] | None = None) -> None:
        """Record dataset inputs (DatasetInput entities) and logged model inputs (LoggedModelInput
        entities or model ids) of a run; they show in run.inputs."""
        from ._validation import dataset_input
        from .entities import DatasetInput

        inputs = []
        for item in datasets or []:
            if not isinstance(item, DatasetInput):
                raise InvalidParameterValue(
                    f"log_inputs takes DatasetInput entities, got {type(item).__name__}; "
                    "use gitexp.log_input(dataset, context) for gitexp.data datasets")
            d = item.dataset
            doc = {"name": d.name, "digest": d.digest, "source_type": d.source_type, "source": d.source}
            if d.schema is not None:
                doc["schema"] = d.schema
            if d.profile is not None:
                doc["profile"] = d.profile
            inputs.append(dataset_input(doc, {t.key: str(t.value) for t in item.tags}))
        model_ids = [_model_id_of(m) for m in models or []]
        if model_ids:
            self.get_run(run_id)  # an unknown run is an error naming it
            for model_id in model_ids:
                self.get_logged_model(model_id)  # before anything is written
        if inputs or not model_ids:
            self._store.log_inputs(run_id, inputs)
        if model_ids:
            self._logged_models.log_run_inputs(run_id, model_ids)

    # -- reading for the web UI (gitexp additions) ---------------------------------------------
    def read_artifact(self, run_id: str, path: str) -> bytes:
        """The content of one artifact file (large files are fetched from the artifact store)."""
        return self._artifacts.read_bytes(run_id, path)

    def get_run_keys(self, experiment_ids: str | list[str],
                     run_view_type: int = ViewType.ACTIVE_ONLY) -> dict[str, list[str]]:
        """Every metric, param and tag key used by the experiments' runs:
        {"metrics": [...], "params": [...], "tags": [...]}, each sorted (from the search index)."""
        return self._store.run_keys(experiment_ids, run_view_type)

    def get_tracking_history(self, max_results: int = 50, page_token: str | None = None,
                             run_id: str | None = None, experiment_id: str | None = None,
                             model_name: str | None = None) -> PagedList[Any]:
        """Commits of the tracking branch, newest first: who changed which runs, experiments and
        models, and when (BranchCommit entries; ``.token`` for the next page).

        Give run_id, experiment_id or model_name to follow one of them.
        """
        commits, token = self._store.tracking_history(max_results, page_token, run_id, experiment_id, model_name)
        return PagedList(commits, token)

    def get_tracking_commit(self, commit: str) -> CommitDetail:
        """One commit of the tracking branch with the runs/experiments/models it changed and its
        file diffs (CommitDetail)."""
        return self._store.tracking_commit(commit)

    def diff_run_code(self, run_id: str, other_run_id: str) -> CodeDiff:
        """How the code of two runs differs, uncommitted changes included (CodeDiff: stat, patch,
        and why a run's code could not be rebuilt, if so)."""
        return self._store.diff_run_code(run_id, other_run_id)


def _model_id_of(model: Any) -> str:
    """The id of a LoggedModelInput/LoggedModelOutput/LoggedModel (any object with model_id) or an id."""
    model_id = model if isinstance(model, str) else getattr(model, "model_id", None)
    if not isinstance(model_id, str):
        raise InvalidParameterValue(f"Expected a logged model (or its id), got {model!r}")
    return model_id


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


MlflowClient = Client
