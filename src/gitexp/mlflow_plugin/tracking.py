"""MLflow's tracking store over a git repository (entry point ``mlflow.tracking_store``: gitexp)."""

from __future__ import annotations

import inspect
from typing import Any

from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.store.tracking.rest_store import RestStore
from mlflow.utils.proto_json_utils import parse_dict
from mlflow.utils.rest_utils import MlflowHostCreds

from . import context
from ._target import Target, target_for


class _InProcessRest(RestStore):
    """MLflow's REST client whose transport is the server's handlers, called in-process."""

    def __init__(self, target: Target) -> None:
        self.target = target
        super().__init__(lambda: MlflowHostCreds(target.tracking_uri))

    @property
    def supports_workspaces(self) -> bool:
        return False

    def _validate_workspace_support_if_specified(self) -> None:
        return None

    def _call_endpoint(self, api: Any, json_body: Any = None, endpoint: str | None = None,
                       retry_timeout_seconds: float | None = None, response_proto: Any = None) -> Any:
        table = self._V3_METHOD_TO_INFO if api in self._V3_APIS else self._METHOD_TO_INFO
        path, method = table[api]
        response_proto = response_proto or api.Response()
        parse_dict(js_dict=self.target.call(method, endpoint or path, json_body), message=response_proto)
        return response_proto


class GitexpTrackingStore(AbstractStore):
    """MLflow's tracking store API over a repository's tracking branch, no server.

    Every method is MLflow's REST client's, with gitexp's server handlers as its transport
    (one translation of MLflow's semantics).  It is not itself a RestStore: MLflow would
    print a link to a web server after every run.

    >>> import mlflow
    >>> mlflow.set_tracking_uri("gitexp:")      # the repository around the current directory
    >>> with mlflow.start_run():
    ...     mlflow.log_metric("loss", 0.1)      # on the tracking branch
    """

    def __init__(self, store_uri: str | None = None, artifact_uri: str | None = None) -> None:
        self.target: Target = target_for(store_uri)
        self.rest = _InProcessRest(self.target)
        super().__init__()

    @property
    def supports_workspaces(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:  # RestStore's methods AbstractStore does not declare
        if name == "rest":
            raise AttributeError(name)
        return getattr(self.rest, name)

    def create_run(self, experiment_id: Any, user_id: Any, start_time: Any, tags: Any, run_name: Any) -> Any:
        run = self.rest.create_run(experiment_id, user_id, start_time, tags, run_name)
        # The code version as gitexp's own runs record it (code.yaml and the uncommitted diff),
        # captured by the run context provider when fluent start_run asked it.
        context.record_code(self.target.client, run.info.run_id)
        return run


def _forward(name: str) -> Any:
    def method(self: GitexpTrackingStore, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.rest, name)(*args, **kwargs)

    method.__name__ = name
    return method


# Every method of MLflow's store API goes to the REST client (AbstractStore's defaults included:
# they call other methods, which must be the REST client's too).
for _name, _member in inspect.getmembers(AbstractStore, inspect.isfunction):
    if not _name.startswith("__") and _name not in vars(GitexpTrackingStore):
        setattr(GitexpTrackingStore, _name, _forward(_name))
GitexpTrackingStore.__abstractmethods__ = frozenset()  # type: ignore[attr-defined]
