"""REST routes for experiments, runs, metrics, run artifacts listing and logged models.

Each route parses MLflow's request message, makes one or two Client calls and
answers with MLflow's response message.  GET routes read query parameters,
the others a JSON body, as MLflow's protos declare.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from .. import entities as ent
from ..client import Client
from ..exceptions import InvalidParameterValue, ResourceDoesNotExist
from ..store import rest_json as conv
from . import _schemas as s
from ._responses import JSON

# MLflow's limits for one log-batch request (mlflow/utils/validation.py).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_BATCH_LOG_REQUEST_SIZE = int(1e6)
SEARCH_RUNS_MAX_RESULTS_DEFAULT = 1000
SEARCH_EXPERIMENTS_MAX_RESULTS_DEFAULT = 1000


def required(value: Any, name: str) -> Any:
    if value is None or value == "":
        raise InvalidParameterValue(
            f"Missing value for required parameter '{name}'. See the API docs for more information about "
            "request parameters.", parameter=name)
    return value


def run_id_of(req: Any) -> str:
    return required(getattr(req, "run_id", None) or getattr(req, "run_uuid", None), "run_id")


def check_batch_limit(entity_name: str, limit: int, length: int) -> None:
    if length > limit:
        raise InvalidParameterValue(
            f"A batch logging request can contain at most {limit} {entity_name}. Got {length} {entity_name}. "
            f"Please split up {entity_name} across multiple requests and try again.")


def view_type(name: str | None) -> int:
    return ent.ViewType.from_string(name) if name else ent.ViewType.ACTIVE_ONLY


def tag_dict(tags: list[s.KeyValue]) -> dict[str, str]:
    return {t.key: t.value for t in tags}


def router(client: Client) -> APIRouter:
    api = APIRouter()

    def run_json(run: ent.Run, outputs: bool = True) -> dict:
        models = None
        if outputs:
            models = [m.model_id for m in client.list_run_logged_models(run.info.run_id)
                      if m.source_run_id == run.info.run_id]
        return conv.run(run, models)

    # -- experiments --------------------------------------------------------------------------
    @api.post("/experiments/create", response_model=s.CreateExperimentResponse, tags=["experiments"])
    def create_experiment(req: s.CreateExperiment):
        required(req.name, "name")
        return JSON({"experiment_id": client.create_experiment(req.name, req.artifact_location,
                                                               tag_dict(req.tags) or None)})

    @api.get("/experiments/get", response_model=s.ExperimentResponse, tags=["experiments"])
    def get_experiment(q: Annotated[s.ExperimentIdQuery, Query()]):
        return JSON({"experiment": conv.experiment(client.get_experiment(q.experiment_id))})

    @api.get("/experiments/get-by-name", response_model=s.ExperimentResponse, tags=["experiments"])
    def get_experiment_by_name(q: Annotated[s.ExperimentByNameQuery, Query()]):
        found = client.get_experiment_by_name(q.experiment_name)
        if found is None:
            raise ResourceDoesNotExist(f"Could not find experiment with name '{q.experiment_name}'",
                                       name=q.experiment_name)
        return JSON({"experiment": conv.experiment(found)})

    def search_experiments(req: s.SearchExperiments) -> JSON:
        page = client.search_experiments(
            view_type(req.view_type),
            SEARCH_EXPERIMENTS_MAX_RESULTS_DEFAULT if req.max_results is None else req.max_results,
            req.filter, list(req.order_by) or None, req.page_token or None)
        out: dict[str, Any] = {"experiments": [conv.experiment(e) for e in page]}
        if page.token:
            out["next_page_token"] = page.token
        return JSON(out)

    @api.post("/experiments/search", response_model=s.SearchExperimentsResponse, tags=["experiments"])
    def search_experiments_post(req: s.SearchExperiments):
        return search_experiments(req)

    @api.get("/experiments/search", response_model=s.SearchExperimentsResponse, tags=["experiments"])
    def search_experiments_get(q: Annotated[s.SearchExperiments, Query()]):
        return search_experiments(q)

    @api.post("/experiments/delete", response_model=s.Empty, tags=["experiments"])
    def delete_experiment(req: s.ExperimentIdBody):
        client.delete_experiment(req.experiment_id)
        return JSON({})

    @api.post("/experiments/restore", response_model=s.Empty, tags=["experiments"])
    def restore_experiment(req: s.ExperimentIdBody):
        client.restore_experiment(req.experiment_id)
        return JSON({})

    @api.post("/experiments/update", response_model=s.Empty, tags=["experiments"])
    def update_experiment(req: s.UpdateExperiment):
        if req.new_name:
            client.rename_experiment(req.experiment_id, req.new_name)
        else:
            client.get_experiment(req.experiment_id)
        return JSON({})

    @api.post("/experiments/set-experiment-tag", response_model=s.Empty, tags=["experiments"])
    def set_experiment_tag(req: s.SetExperimentTag):
        client.set_experiment_tag(req.experiment_id, req.key, req.value)
        return JSON({})

    @api.post("/experiments/delete-experiment-tag", response_model=s.Empty, tags=["experiments"])
    def delete_experiment_tag(req: s.DeleteExperimentTag):
        client.delete_experiment_tag(req.experiment_id, req.key)
        return JSON({})

    # -- runs -----------------------------------------------------------------------------------
    @api.post("/runs/create", response_model=s.RunResponse, tags=["runs"])
    def create_run(req: s.CreateRun):
        run = client.create_run(req.experiment_id or "0", req.start_time, tag_dict(req.tags) or None,
                                req.run_name or None, user_id=req.user_id or None)
        return JSON({"run": conv.run(run)})

    @api.get("/runs/get", response_model=s.RunResponse, tags=["runs"])
    def get_run(q: Annotated[s.RunIdQuery, Query()]):
        return JSON({"run": run_json(client.get_run(run_id_of(q)))})

    @api.post("/runs/update", response_model=s.UpdateRunResponse, tags=["runs"])
    def update_run(req: s.UpdateRun):
        run_id = run_id_of(req)
        if req.status in ("FINISHED", "FAILED", "KILLED"):
            if req.run_name:
                client.update_run(run_id, name=req.run_name)
            client.set_terminated(run_id, req.status, req.end_time)
        elif req.status is not None or req.run_name:
            client.update_run(run_id, req.status, req.run_name or None)
        return JSON({"run_info": conv.run_info(client.get_run(run_id).info)})

    @api.post("/runs/delete", response_model=s.Empty, tags=["runs"])
    def delete_run(req: s.RunIdBody):
        client.delete_run(req.run_id)
        return JSON({})

    @api.post("/runs/restore", response_model=s.Empty, tags=["runs"])
    def restore_run(req: s.RunIdBody):
        client.restore_run(req.run_id)
        return JSON({})

    @api.post("/runs/log-metric", response_model=s.Empty, tags=["runs"])
    def log_metric(req: s.LogMetric):
        client.log_metric(run_id_of(req), req.key, conv.parse_number(req.value), req.timestamp, req.step or 0)
        return JSON({})

    @api.post("/runs/log-parameter", response_model=s.Empty, tags=["runs"])
    def log_param(req: s.LogParam):
        client.log_param(run_id_of(req), req.key, req.value)
        return JSON({})

    @api.post("/runs/set-tag", response_model=s.Empty, tags=["runs"])
    def set_tag(req: s.SetTag):
        client.set_tag(run_id_of(req), req.key, req.value)
        return JSON({})

    @api.post("/runs/delete-tag", response_model=s.Empty, tags=["runs"])
    def delete_tag(req: s.DeleteTag):
        client.delete_tag(req.run_id, req.key)
        return JSON({})

    @api.post("/runs/log-batch", response_model=s.Empty, tags=["runs"])
    def log_batch(req: s.LogBatch, request: Request):
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_BATCH_LOG_REQUEST_SIZE:
            raise InvalidParameterValue(
                f"Batched logging API requests must be at most {MAX_BATCH_LOG_REQUEST_SIZE} bytes, got a "
                f"request of size {size}.")
        check_batch_limit("metrics", MAX_METRICS_PER_BATCH, len(req.metrics))
        check_batch_limit("params", MAX_PARAMS_TAGS_PER_BATCH, len(req.params))
        check_batch_limit("tags", MAX_PARAMS_TAGS_PER_BATCH, len(req.tags))
        check_batch_limit("metrics, params, and tags", MAX_ENTITIES_PER_BATCH,
                          len(req.metrics) + len(req.params) + len(req.tags))
        client.log_batch(
            req.run_id,
            metrics=[ent.Metric(m.key, conv.parse_number(m.value), m.timestamp, m.step) for m in req.metrics],
            params=[ent.Param(p.key, p.value) for p in req.params],
            tags=[ent.RunTag(t.key, t.value) for t in req.tags])
        return JSON({})

    @api.post("/runs/log-model", response_model=s.Empty, tags=["runs"])
    def log_model(req: s.LogModel):
        # MLflow 2's record of a logged model: appended to the tag mlflow.log-model.history.
        try:
            model = json.loads(req.model_json)
        except ValueError as exc:
            raise InvalidParameterValue(f"model_json is not valid JSON: {exc}") from exc
        if not isinstance(model, dict):
            raise InvalidParameterValue(f"model_json must be a JSON object, got {type(model).__name__}")
        history = client.get_run(req.run_id).data.tags.get("mlflow.log-model.history")
        try:
            entries = json.loads(history) if history else []
        except ValueError:
            entries = []
        client.set_tag(req.run_id, "mlflow.log-model.history", json.dumps([*entries, model]))
        return JSON({})

    @api.post("/runs/log-inputs", response_model=s.Empty, tags=["runs"])
    def log_inputs(req: s.LogInputs):
        datasets = [ent.DatasetInput(ent.Dataset(d.dataset.name, d.dataset.digest, d.dataset.source_type,
                                                 d.dataset.source, d.dataset.schema_, d.dataset.profile),
                                     [ent.InputTag(t.key, t.value) for t in d.tags])
                    for d in req.datasets]
        for m in req.models:
            client.get_logged_model(m.model_id)
        client.get_run(req.run_id)
        if datasets:
            client.log_inputs(req.run_id, datasets)
        return JSON({})

    @api.post("/runs/outputs", response_model=s.Empty, tags=["runs"])
    def log_outputs(req: s.LogOutputs):
        # A run's model outputs are its logged models (create_logged_model's source_run_id).
        client.get_run(req.run_id)
        for m in req.models:
            found = client.get_logged_model(m.model_id)
            if found.source_run_id != req.run_id:
                raise InvalidParameterValue(
                    f"Logged model {m.model_id} was not logged by run {req.run_id} (its source run is "
                    f"{found.source_run_id or 'none'}); gitexp records a model's run when it is created")
        return JSON({})

    @api.post("/runs/search", response_model=s.SearchRunsResponse, tags=["runs"])
    def search_runs(req: s.SearchRuns):
        page = client.search_runs(
            list(req.experiment_ids), req.filter or "", view_type(req.run_view_type),
            SEARCH_RUNS_MAX_RESULTS_DEFAULT if req.max_results is None else req.max_results,
            list(req.order_by) or None, req.page_token or None, req.as_of or None)
        out: dict[str, Any] = {"runs": [conv.run(r) for r in page]}
        if page.token:
            out["next_page_token"] = page.token
        return JSON(out)

    @api.get("/metrics/get-history", response_model=s.MetricsResponse, tags=["runs"])
    def get_metric_history(q: Annotated[s.GetMetricHistoryQuery, Query()]):
        run_id = run_id_of(q)
        steps, times, values = client.metric_history_arrays(run_id, q.metric_key)
        start = page_offset(q.page_token)
        end = len(steps) if not q.max_results or q.max_results < 0 else start + q.max_results
        page = zip(steps[start:end].tolist(), times[start:end].tolist(), values[start:end].tolist())
        out: dict[str, Any] = {"metrics": [{"key": q.metric_key, "value": conv.number(v), "timestamp": t, "step": st}
                                           for st, t, v in page]}
        if end < len(steps):
            out["next_page_token"] = str(end)
        return JSON(out)

    @api.get("/metrics/get-history-bulk-interval", response_model=s.MetricsResponse, tags=["runs"])
    def get_metric_history_bulk_interval(q: Annotated[s.GetMetricHistoryBulkIntervalQuery, Query()]):
        points = client.get_metric_history_bulk_interval(
            q.run_ids, q.metric_key, q.start_step, q.end_step, 2500 if q.max_results is None else q.max_results)
        return JSON({"metrics": [conv.metric(m, m.run_id) for m in points]})

    @api.get("/artifacts/list", response_model=s.ListArtifactsResponse, tags=["runs"])
    def list_artifacts(q: Annotated[s.ListArtifactsQuery, Query()]):
        run_id = run_id_of(q)
        run = client.get_run(run_id)
        files = client.list_artifacts(run_id, q.path or None)
        return JSON({"root_uri": conv.run_artifact_uri(run.info.experiment_id, run_id),
                     "files": [conv.file_info(f) for f in files]})

    # -- logged models (MLflow 3) ------------------------------------------------------------------
    @api.post("/logged-models", response_model=s.LoggedModelResponse, tags=["logged models"])
    def create_logged_model(req: s.CreateLoggedModel):
        model = client.create_logged_model(req.experiment_id, req.name or None, req.source_run_id or None,
                                           tag_dict(req.tags) or None, tag_dict(req.params) or None,
                                           req.model_type or None)
        return JSON({"model": conv.logged_model(model)})

    @api.post("/logged-models/search", response_model=s.SearchLoggedModelsResponse, tags=["logged models"])
    def search_logged_models(req: s.SearchLoggedModels):
        page = client.search_logged_models(
            list(req.experiment_ids), req.filter or None,
            [d.model_dump() for d in req.datasets] or None, req.max_results,
            [o.model_dump() for o in req.order_by] or None, req.page_token or None)
        out: dict[str, Any] = {"models": [conv.logged_model(m) for m in page]}
        if page.token:
            out["next_page_token"] = page.token
        return JSON(out)

    @api.get("/logged-models/{model_id}", response_model=s.LoggedModelResponse, tags=["logged models"])
    def get_logged_model(model_id: str, q: Annotated[s.GetLoggedModelQuery, Query()]):
        return JSON({"model": conv.logged_model(client.get_logged_model(model_id, bool(q.allow_deleted)))})

    @api.patch("/logged-models/{model_id}", response_model=s.LoggedModelResponse, tags=["logged models"])
    def finalize_logged_model(model_id: str, req: s.FinalizeLoggedModel):
        if req.status == "LOGGED_MODEL_STATUS_UNSPECIFIED":
            raise InvalidParameterValue("Finalize a logged model with status LOGGED_MODEL_READY or "
                                        "LOGGED_MODEL_UPLOAD_FAILED, not LOGGED_MODEL_STATUS_UNSPECIFIED")
        return JSON({"model": conv.logged_model(client.finalize_logged_model(model_id, req.status))})

    @api.delete("/logged-models/{model_id}", response_model=s.Empty, tags=["logged models"])
    def delete_logged_model(model_id: str):
        client.delete_logged_model(model_id)
        return JSON({})

    @api.patch("/logged-models/{model_id}/tags", response_model=s.Empty, tags=["logged models"])
    def set_logged_model_tags(model_id: str, req: s.SetLoggedModelTags):
        client.set_logged_model_tags(model_id, tag_dict(req.tags))
        return JSON({})

    @api.delete("/logged-models/{model_id}/tags/{tag_key}", response_model=s.Empty, tags=["logged models"])
    def delete_logged_model_tag(model_id: str, tag_key: str):
        client.delete_logged_model_tag(model_id, tag_key)
        return JSON({})

    @api.post("/logged-models/{model_id}/params", response_model=s.Empty, tags=["logged models"])
    def log_logged_model_params(model_id: str, req: s.LogLoggedModelParams):
        client.log_model_params(model_id, tag_dict(req.params))
        return JSON({})

    @api.get("/logged-models/{model_id}/artifacts/directories", response_model=s.ListArtifactsResponse,
             tags=["logged models"])
    def list_logged_model_artifacts(model_id: str, q: Annotated[s.ListLoggedModelArtifactsQuery, Query()]):
        model = client.get_logged_model(model_id)
        _exp, run_id, base = conv.proxy_path_parts(
            conv.runs_uri_to_proxy(model.artifact_location, model.experiment_id)[len(conv.PROXY_SCHEME):])
        sub = (q.artifact_directory_path or "").strip("/")
        path = "/".join(p for p in (base, sub) if p)
        files = client.list_artifacts(run_id, path or None) if run_id else []
        cut = len(base) + 1 if base else 0
        return JSON({"root_uri": conv.runs_uri_to_proxy(model.artifact_location, model.experiment_id),
                     "files": [conv.file_info(f, f.path[cut:]) for f in files]})

    return api


def page_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(token)
        if offset < 0:
            raise ValueError
        return offset
    except ValueError:
        raise InvalidParameterValue(f"Invalid page token {token!r}: pass the next_page_token of the previous "
                                    "page") from None
