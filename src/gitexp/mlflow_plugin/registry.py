"""MLflow's model registry store over a git repository (entry point ``mlflow.model_registry_store``)."""

from __future__ import annotations

from typing import Any

from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry.rest_store import RestStore
from mlflow.utils.proto_json_utils import parse_dict
from mlflow.utils.rest_utils import MlflowHostCreds

from ._target import Target, target_for


class GitexpRegistryStore(RestStore):
    """MLflow's registry REST client, answered in-process by gitexp's server handlers."""

    def __init__(self, store_uri: str | None = None, tracking_uri: str | None = None) -> None:
        self.target: Target = target_for(store_uri)
        super().__init__(lambda: MlflowHostCreds(self.target.tracking_uri))

    @property
    def supports_workspaces(self) -> bool:
        return False

    def _validate_workspace_support_if_specified(self) -> None:
        return None

    def list_webhooks_by_event(self, event: Any, max_results: int | None = None,
                               page_token: str | None = None) -> PagedList[Any]:
        """None: gitexp keeps no webhooks.  `mlflow server` asks after every registry change
        (to deliver them); MLflow's default answer would log an error each time."""
        return PagedList([], None)

    def _call_endpoint(self, api: Any, json_body: Any, call_all_endpoints: bool = False,
                       extra_headers: Any = None) -> Any:
        endpoints = self._get_all_endpoints_from_method(api) if call_all_endpoints else \
            [self._get_endpoint_from_method(api)]
        response_proto = self._get_response_from_method(api)
        path, method = endpoints[0]
        parse_dict(js_dict=self.target.call(method, path, json_body), message=response_proto)
        return response_proto
