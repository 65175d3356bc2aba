"""REST routes for the model registry: registered models, versions, stages, tags and aliases."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Query

from ..client import Client
from ..store import rest_json as conv
from . import _schemas as s
from ._responses import JSON

SEARCH_MODELS_MAX_RESULTS_DEFAULT = 100
SEARCH_VERSIONS_MAX_RESULTS_DEFAULT = 10_000


def _tags(tags: list[s.KeyValue]) -> dict[str, str] | None:
    return {t.key: t.value for t in tags} or None


def _page(key: str, items: Iterable[Any], token: str | None, convert: Callable[[Any], dict[str, Any]]) -> JSON:
    out: dict[str, Any] = {key: [convert(x) for x in items]}
    if token:
        out["next_page_token"] = token
    return JSON(out)


def router(client: Client) -> APIRouter:
    api = APIRouter(tags=["model registry"])

    def model(name: str) -> JSON:
        return JSON({"registered_model": conv.registered_model(client.get_registered_model(name))})

    def version(mv: Any) -> JSON:
        return JSON({"model_version": conv.model_version(mv)})

    # -- registered models ----------------------------------------------------------------------
    @api.post("/registered-models/create", response_model=s.RegisteredModelResponse)
    def create_registered_model(req: s.CreateRegisteredModel) -> JSON:
        created = client.create_registered_model(req.name, _tags(req.tags), req.description)
        return JSON({"registered_model": conv.registered_model(created)})

    @api.post("/registered-models/rename", response_model=s.RegisteredModelResponse)
    def rename_registered_model(req: s.RenameRegisteredModel) -> JSON:
        renamed = client.rename_registered_model(req.name, req.new_name)
        return JSON({"registered_model": conv.registered_model(renamed)})

    @api.patch("/registered-models/update", response_model=s.RegisteredModelResponse)
    def update_registered_model(req: s.UpdateRegisteredModel) -> JSON:
        if req.description is not None:
            client.update_registered_model(req.name, req.description)
        return model(req.name)

    @api.delete("/registered-models/delete", response_model=s.Empty)
    def delete_registered_model(req: s.ModelName) -> JSON:
        client.delete_registered_model(req.name)
        return JSON({})

    @api.get("/registered-models/get", response_model=s.RegisteredModelResponse)
    def get_registered_model(q: Annotated[s.ModelName, Query()]) -> JSON:
        return model(q.name)

    @api.get("/registered-models/search", response_model=s.RegisteredModelsResponse)
    def search_registered_models(q: Annotated[s.SearchRegistryQuery, Query()]) -> JSON:
        page = client.search_registered_models(
            q.filter or None, SEARCH_MODELS_MAX_RESULTS_DEFAULT if q.max_results is None else q.max_results,
            list(q.order_by) or None, q.page_token or None)
        return _page("registered_models", page, page.token, conv.registered_model)

    def latest_versions(req: s.GetLatestVersions) -> JSON:
        found = client.get_latest_versions(req.name, list(req.stages) or None)
        return _page("model_versions", found, None, conv.model_version)

    @api.post("/registered-models/get-latest-versions", response_model=s.ModelVersionsResponse)
    def get_latest_versions_post(req: s.GetLatestVersions) -> JSON:
        return latest_versions(req)

    @api.get("/registered-models/get-latest-versions", response_model=s.ModelVersionsResponse)
    def get_latest_versions_get(q: Annotated[s.GetLatestVersions, Query()]) -> JSON:
        return latest_versions(q)

    @api.post("/registered-models/set-tag", response_model=s.Empty)
    def set_registered_model_tag(req: s.SetRegisteredModelTag) -> JSON:
        client.set_registered_model_tag(req.name, req.key, req.value)
        return JSON({})

    @api.delete("/registered-models/delete-tag", response_model=s.Empty)
    def delete_registered_model_tag(req: s.DeleteRegisteredModelTag) -> JSON:
        client.delete_registered_model_tag(req.name, req.key)
        return JSON({})

    @api.post("/registered-models/alias", response_model=s.Empty)
    def set_alias(req: s.SetAlias) -> JSON:
        client.set_registered_model_alias(req.name, req.alias, req.version)
        return JSON({})

    @api.delete("/registered-models/alias", response_model=s.Empty)
    def delete_alias(req: s.AliasRef) -> JSON:
        client.delete_registered_model_alias(req.name, req.alias)
        return JSON({})

    @api.get("/registered-models/alias", response_model=s.ModelVersionResponse)
    def get_model_version_by_alias(q: Annotated[s.AliasRef, Query()]) -> JSON:
        return version(client.get_model_version_by_alias(q.name, q.alias))

    # -- model versions ----------------------------------------------------------------------------
    @api.post("/model-versions/create", response_model=s.ModelVersionResponse)
    def create_model_version(req: s.CreateModelVersion) -> JSON:
        # An MLflow client registers runs:/ models by their storage location; keep gitexp's runs:/ URI.
        created = client.create_model_version(req.name, conv.proxy_uri_to_runs(req.source), req.run_id or None,
                                              _tags(req.tags), req.run_link or None, req.description,
                                              model_id=req.model_id or None)
        return version(created)

    @api.patch("/model-versions/update", response_model=s.ModelVersionResponse)
    def update_model_version(req: s.UpdateModelVersion) -> JSON:
        if req.description is not None:
            return version(client.update_model_version(req.name, req.version, req.description))
        return version(client.get_model_version(req.name, req.version))

    @api.post("/model-versions/transition-stage", response_model=s.ModelVersionResponse)
    def transition_stage(req: s.TransitionStage) -> JSON:
        return version(client.transition_model_version_stage(req.name, req.version, req.stage,
                                                             req.archive_existing_versions))

    @api.delete("/model-versions/delete", response_model=s.Empty)
    def delete_model_version(req: s.ModelVersionRef) -> JSON:
        client.delete_model_version(req.name, req.version)
        return JSON({})

    @api.get("/model-versions/get", response_model=s.ModelVersionResponse)
    def get_model_version(q: Annotated[s.ModelVersionRef, Query()]) -> JSON:
        return version(client.get_model_version(q.name, q.version))

    @api.get("/model-versions/search", response_model=s.ModelVersionsResponse)
    def search_model_versions(q: Annotated[s.SearchRegistryQuery, Query()]) -> JSON:
        page = client.search_model_versions(
            q.filter or None, SEARCH_VERSIONS_MAX_RESULTS_DEFAULT if q.max_results is None else q.max_results,
            list(q.order_by) or None, q.page_token or None)
        return _page("model_versions", page, page.token, conv.model_version)

    @api.get("/model-versions/get-download-uri", response_model=s.DownloadUriResponse)
    def get_download_uri(q: Annotated[s.ModelVersionRef, Query()]) -> JSON:
        return JSON({"artifact_uri": client.get_model_version_download_uri(q.name, q.version)})

    @api.post("/model-versions/set-tag", response_model=s.Empty)
    def set_model_version_tag(req: s.SetModelVersionTag) -> JSON:
        client.set_model_version_tag(req.name, req.version, req.key, req.value)
        return JSON({})

    @api.delete("/model-versions/delete-tag", response_model=s.Empty)
    def delete_model_version_tag(req: s.DeleteModelVersionTag) -> JSON:
        client.delete_model_version_tag(req.name, req.version, req.key)
        return JSON({})

    return api
