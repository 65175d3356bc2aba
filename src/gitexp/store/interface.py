"""The one interface of a tracking store: what Client may ask of GitStore and RestStore alike.

A store owns everything that belongs to it -- its model registry, logged models,
artifacts and (for a git store) its search index -- as attributes created on first
use.  Callers never ask which kind of store they hold: a RestStore answers an
operation it cannot do over HTTP with RepositoryRequired, naming the operation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload, runtime_checkable

from ..entities import Experiment, Metric, PagedList, Run

if TYPE_CHECKING:
    from ..code_version import CodeCheckout, CodeDiff
    from .artifacts import RunArtifacts
    from .diagnosis import Diagnosis
    from .history import CommitDetail
    from .logged_models import LoggedModels
    from .registry import ModelRegistry
    from .rest import RestArtifacts, RestLoggedModels, RestRegistry
    from .sync import PullResult, PushResult, SyncResult

_T = TypeVar("_T")


@dataclass
class RunRecord:
    """A whole run as another store holds it (gitexp import): what `put_runs` writes.

    Ids, names, users and times are kept as given.  `metrics` holds every point of every
    history as (step, timestamp, value); `inputs` is (dataset dict, input tags) as in
    log_inputs; `artifacts` maps an artifact path to a callable returning its bytes.
    """

    run_id: str
    experiment_id: str
    user_id: str = ""
    run_name: str | None = None
    status: str = "FINISHED"
    start_time: int = 0
    end_time: int | None = None
    lifecycle_stage: str = "active"
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    inputs: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    artifacts: dict[str, Callable[[], bytes]] = field(default_factory=dict)


@dataclass(frozen=True)
class RepositoryInfo:
    """Where a git store keeps its runs."""

    path: str            # the work tree, or the git directory of a bare repository
    common_dir: str      # the repository's (common) git directory
    branch: str          # the tracking branch's name, e.g. "gitexp"
    ref: str             # its full ref, e.g. "refs/heads/gitexp"


class lazy_attribute(Generic[_T]):
    """A per-instance attribute built on first access, once even when threads race.

    After the first access the value sits in the instance's __dict__, so reading it
    is a plain attribute lookup (no property call on hot paths).
    """

    def __init__(self, build: Callable[[Any], _T]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__
        self.lock = threading.Lock()

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> lazy_attribute[_T]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> _T: ...

    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is None:
            return self
        with self.lock:
            found = instance.__dict__.get(self.name, self)
            if found is self:
                found = instance.__dict__[self.name] = self.build(instance)
        return found


@runtime_checkable
class TrackingStore(Protocol):
    """What Client calls.  Implemented by store.tracking.GitStore and store.rest.RestStore."""

    # -- parts the store owns (created on first use) --------------------------------------------------
    @property
    def registry(self) -> ModelRegistry | RestRegistry: ...
    @property
    def logged_models(self) -> LoggedModels | RestLoggedModels: ...
    @property
    def artifacts(self) -> RunArtifacts | RestArtifacts: ...

    @property
    def uri(self) -> str: ...
    def close(self) -> None: ...

    # -- experiments -------------------------------------------------------------------------------
    def create_experiment(self, name: str, artifact_location: str | None = None,
                          tags: dict[str, Any] | None = None) -> str: ...
    def get_experiment(self, experiment_id: str) -> Experiment: ...
    def get_experiment_by_name(self, name: str) -> Experiment | None: ...
    def list_experiments(self, view_type: int = ...) -> list[Experiment]: ...
    def rename_experiment(self, experiment_id: str, new_name: str) -> None: ...
    def delete_experiment(self, experiment_id: str) -> None: ...
    def restore_experiment(self, experiment_id: str) -> None: ...
    def set_experiment_tags(self, experiment_id: str, tags: dict[str, Any]) -> None: ...
    def delete_experiment_tag(self, experiment_id: str, key: str) -> None: ...

    # -- runs --------------------------------------------------------------------------------------
    def create_run(self, experiment_id: str | None, user_id: str | None = None, start_time: int | None = None,
                   tags: Any = None, run_name: str | None = None) -> Run: ...
    def get_run(self, run_id: str) -> Run: ...
    def resolve_run_id(self, ref: str) -> str: ...
    def get_metric_history(self, run_id: str, key: str) -> Sequence[Metric]: ...
    def metric_history_arrays(self, run_id: str, key: str) -> tuple[Any, ...]: ...
    def metric_histories(self, run_ids: list[str], keys: list[str] | None
                         ) -> list[tuple[str, str, int, int, float]]: ...
    def log_metric(self, run_id: str, key: str, value: Any, timestamp: int | None, step: int | None) -> None: ...
    def log_batch(self, run_id: str, metrics: Iterable[Metric] = (), params: Iterable[Any] = (),
                  tags: Iterable[Any] = ()) -> None: ...
    def set_tag(self, run_id: str, key: str, value: Any) -> None: ...
    def delete_tag(self, run_id: str, key: str) -> None: ...
    def log_inputs(self, run_id: str, inputs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None: ...
    def record_code(self, run_id: str, code: dict[str, Any], tags: dict[str, str]) -> None: ...
    def capture_code(self, run_id: str, capture: Callable[[], None]) -> None: ...
    def code_patch(self, run_id: str) -> bytes: ...
    def update_run_info(self, run_id: str, status: Any = None, end_time: int | None = None,
                        run_name: str | None = None) -> None: ...
    def delete_run(self, run_id: str) -> None: ...
    def restore_run(self, run_id: str) -> None: ...
    def flush(self, run_id: str | None = None) -> None: ...
    def put_runs(self, records: Sequence[RunRecord]) -> dict[str, str]: ...

    # -- searching ---------------------------------------------------------------------------------
    def search_runs(self, experiment_ids: Any, filter_string: str | None = "", run_view_type: int = ...,
                    max_results: int | None = ..., order_by: list[str] | None = None,
                    page_token: str | None = None, as_of: Any = None) -> PagedList[Any]: ...
    def search_runs_frame(self, experiment_ids: Any, filter_string: str | None = "", run_view_type: int = ...,
                          max_results: int | None = None, order_by: list[str] | None = None,
                          as_of: Any = None) -> Any: ...
    def run_keys(self, experiment_ids: Any, run_view_type: int) -> dict[str, list[str]]: ...

    # -- the repository (a RestStore raises RepositoryRequired) --------------------------------------
    def repository_info(self) -> RepositoryInfo: ...
    def tracking_tip(self) -> str | None: ...
    def ensure_branch(self) -> str: ...
    def diagnose(self, recover_all: bool = False, progress: Callable[..., Any] | None = None) -> Diagnosis: ...
    def pull(self, remote: str | None, progress: bool | None) -> PullResult: ...
    def push(self, remote: str | None, progress: bool | None, no_verify: bool = False) -> PushResult: ...
    def sync(self, remote: str | None, progress: bool | None) -> SyncResult: ...
    def checkout_code(self, run_id: str, directory: str) -> CodeCheckout: ...
    def diff_run_code(self, run_id: str, other_run_id: str) -> CodeDiff: ...
    def link_runs_to_commit(self, commit: str, repository: str | None) -> list[str]: ...
    def tracking_history(self, max_results: int, page_token: str | None, run_id: str | None = None,
                         experiment_id: str | None = None, model_name: str | None = None
                         ) -> tuple[list[Any], str | None]: ...
    def tracking_commit(self, commit: str) -> CommitDetail: ...
