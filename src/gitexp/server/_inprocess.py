"""MLflow's REST API answered in-process: the server's own route handlers, called without HTTP.

The MLflow plugin (``gitexp.mlflow_plugin``) is MLflow's REST client with this as its
transport, so an MLflow call made in-process and the same call made through
``gitexp server`` run the same handler over the same Client: one translation of
MLflow's semantics, not two.

    api = InProcessApi(client)
    api.call("POST", "/api/2.0/mlflow/runs/log-metric", {"run_id": ..., "key": ...})  -> dict

A handler's error is raised as the GitexpError it raised (its error_code is MLflow's);
a request that does not validate raises InvalidParameterValue with the message the
server would answer; an endpoint the server lacks raises EndpointNotFound.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from ..client import Client
from ..exceptions import GitexpError
from . import _registry, _tracking

# Where MLflow's clients send the API (the artifact proxy is not among them: see mlflow_plugin).
PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow", "/api/3.0/mlflow", "/ajax-api/3.0/mlflow")


class EndpointNotFound(GitexpError):
    error_code = "ENDPOINT_NOT_FOUND"


class _Route:
    """One handler and how to call it: its path pattern and what each parameter takes."""

    def __init__(self, method: str, path: str, endpoint: Callable[..., Any]) -> None:
        self.method = method
        self.endpoint = endpoint
        self.pattern = re.compile("^" + re.sub(r"\{(\w+)(?::path)?\}",
                                               lambda m: f"(?P<{m.group(1)}>.+)" if ":path" in m.group(0)
                                               else f"(?P<{m.group(1)}>[^/]+)", path) + "$")
        hints = typing.get_type_hints(endpoint, include_extras=True)
        self.params: list[tuple[str, str, Any]] = []  # (name, "path" | "model" | "size", model class)
        for name in inspect.signature(endpoint).parameters:
            hint = hints.get(name)
            if typing.get_origin(hint) is typing.Annotated:
                hint = typing.get_args(hint)[0]
            if isinstance(hint, type) and issubclass(hint, BaseModel):
                self.params.append((name, "model", hint))
            elif name == "content_length":
                self.params.append((name, "size", None))
            else:
                self.params.append((name, "path", None))

    def __call__(self, path_params: dict[str, str], body: dict[str, Any], size: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for name, kind, model in self.params:
            if kind == "model":
                try:
                    kwargs[name] = model.model_validate(body)
                except ValidationError as exc:
                    from ..exceptions import InvalidParameterValue
                    from .app import _validation_message

                    raise InvalidParameterValue(_validation_message(RequestValidationError(exc.errors()))) from None
            elif kind == "size":
                kwargs[name] = size
            else:
                kwargs[name] = path_params[name]
        response = self.endpoint(**kwargs)
        return json.loads(response.body) if response.body else {}


class InProcessApi:
    """The tracking and registry routes of `client`'s server, called as functions."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._routes: dict[str, list[_Route]] = {}
        routers: list[APIRouter] = [_tracking.router(client), _registry.router(client)]
        for router in routers:
            for route in router.routes:
                assert isinstance(route, APIRoute)
                for method in route.methods or ():
                    self._routes.setdefault(method, []).append(_Route(method, route.path, route.endpoint))
        self._cache: dict[tuple[str, str], tuple[_Route, dict[str, str]]] = {}

    def _find(self, method: str, endpoint: str) -> tuple[_Route, dict[str, str]]:
        found = self._cache.get((method, endpoint))
        if found is not None:
            return found
        path = endpoint.split("?", 1)[0]
        for prefix in PREFIXES:
            if path.startswith(prefix + "/"):
                path = path[len(prefix):]
                break
        for route in self._routes.get(method, ()):
            match = route.pattern.match(path)
            if match:
                found = (route, match.groupdict())
                if not found[1]:  # endpoints with ids in their path are not worth caching
                    self._cache[(method, endpoint)] = found
                return found
        raise EndpointNotFound(f"gitexp does not serve {method} {endpoint}: MLflow's GenAI features (traces, "
                               "prompts, scorers, the AI gateway, webhooks) are not part of gitexp; see "
                               "docs/mlflow-plugin.md")

    def call(self, method: str, endpoint: str, body: dict[str, Any] | None = None, size: int = 0) -> dict[str, Any]:
        """The JSON answer of `method endpoint` with `body` (the query of a GET); raises the handler's error."""
        route, path_params = self._find(method.upper(), endpoint)
        return route(path_params, body or {}, size)
