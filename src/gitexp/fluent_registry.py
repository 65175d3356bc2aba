"""Module-level model registry calls: ``gitexp.register_model`` and the registry searches.

They go through the same Client as the rest of the fluent API (the tracking URI
in effect), as ``mlflow.register_model`` and ``mlflow.search_registered_models`` do.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlparse

from .entities.model_registry import ModelVersion, RegisteredModel
from .exceptions import InvalidParameterValue, ResourceAlreadyExists

if TYPE_CHECKING:
    from .client import Client
    from .entities import PagedList

_T = TypeVar("_T")


def _client() -> Client:
    from .fluent import _client as client

    return client()


def parse_runs_uri(uri: str) -> tuple[str, str]:
    """(run_id, artifact path) of runs:/<run_id>/<path>; the path may be ''."""
    parsed = urlparse(uri)
    path = parsed.path if not parsed.netloc else f"/{parsed.netloc}{parsed.path}"
    run_id, _, artifact_path = path.lstrip("/").partition("/")
    if parsed.scheme != "runs" or not path.startswith("/") or not run_id:
        raise InvalidParameterValue(
            f"Not a valid runs:/ URI: {uri!r}. Use runs:/<run_id>/<artifact path>, "
            "e.g. runs:/1a2b3c4d5e6f/model", uri=uri)
    return run_id, artifact_path.strip("/")


def register_model(model_uri: str, name: str, await_registration_for: int = 300, *,
                   tags: dict[str, Any] | None = None) -> ModelVersion:
    """Register the model at `model_uri` as a new version of `name`, creating the model if needed.

    `model_uri` is ``runs:/<run_id>/<path>`` (the version records the run id, and its
    source stays that URI), ``models:/<name>/<version>`` (copies a registered version)
    or a path.  Versions are READY at once; `await_registration_for` is accepted for
    MLflow compatibility.

    >>> mv = gitexp.register_model(f"runs:/{run_id}/model", "nyc-taxi-regressor")
    >>> mv.version
    1
    """
    return register_with(_client(), model_uri, name, tags=tags, await_registration_for=await_registration_for)


def register_with(client: Any, model_uri: str, name: str, tags: dict[str, Any] | None = None,
                  description: str | None = None, await_registration_for: int = 300) -> ModelVersion:
    """register_model through a given Client (the CLI's), printing what MLflow prints."""
    try:
        client.create_registered_model(name)
        print(f"Successfully registered model '{name}'.", file=sys.stderr)
    except ResourceAlreadyExists:
        print(f"Registered model '{name}' already exists. Creating a new version of this model...",
              file=sys.stderr)
    run_id = None
    if str(model_uri).startswith("runs:"):
        run_id, _path = parse_runs_uri(model_uri)
        client.get_run(run_id)  # a clear RESOURCE_DOES_NOT_EXIST for a run that is not here
    version = client.create_model_version(name, str(model_uri), run_id=run_id, tags=tags, description=description,
                                          await_creation_for=await_registration_for)
    print(f"Created version '{version.version}' of model '{version.name}'.", file=sys.stderr)
    return cast("ModelVersion", version)


def _all_pages(search: Callable[..., PagedList[_T]], max_results: int | None, page_size: int,
               **kwargs: Any) -> list[_T]:
    out: list[Any] = []
    token = None
    while True:
        size = page_size if max_results is None else min(page_size, max_results - len(out))
        if size <= 0:
            return out
        page = search(max_results=size, page_token=token, **kwargs)
        out.extend(page)
        token = page.token
        if not token:
            return out


def search_registered_models(max_results: int | None = None, filter_string: str | None = None,
                             order_by: list[str] | None = None) -> list[RegisteredModel]:
    """Every registered model matching the filter (all pages), e.g. ``filter_string="name LIKE 'taxi%'"``."""
    return _all_pages(_client().search_registered_models, max_results, 1000,
                      filter_string=filter_string, order_by=order_by)


def search_model_versions(max_results: int | None = None, filter_string: str | None = None,
                          order_by: list[str] | None = None) -> list[ModelVersion]:
    """Every model version matching the filter (all pages), e.g. ``filter_string="name = 'taxi'"``."""
    return _all_pages(_client().search_model_versions, max_results, 10_000,
                      filter_string=filter_string, order_by=order_by)


__all__ = ["register_model", "search_model_versions", "search_registered_models"]
