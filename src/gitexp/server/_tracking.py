"""REST routes for experiments, runs, metrics, run artifacts listing and logged models.

Each route parses MLflow's request message, makes one or two Client calls and
answers with MLflow's response message.  GET routes read query parameters,
the others a JSON body, as MLflow's protos declare.

The handlers are methods of three groups over one Client -- ``Experiments``,
``Runs`` (with metric histories and the artifact listing) and ``LoggedModels``
-- each with its table of routes (``routes()``); ``router`` mounts the tables in
that order.  A handler's name is its route's name in the OpenAPI document
(operation id and summary): keep it when moving a handler.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query

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
    return str(required(getattr(req, "run_id", None) or getattr(req, "run_uuid", None), "run_id"))


def check_batch_limit(entity_name: str, limit: int, length: int) -> None:
    if length > limit:
        raise InvalidParameterValue(
            f"A batch logging request can contain at most {limit} {entity_name}. Got {length} {entity_name}. "
            f"Please split up {entity_name} across multiple requests and try again.")


def view_type(name: str | None) -> int:
    return ent.ViewType.from_string(name) if name else ent.ViewType.ACTIVE_ONLY


def tag_dict(tags: list[s.KeyValue]) -> dict[str, str]:
    return {t.key: t.value for t in tags}


Route = tuple[str, str, Callable[..., JSON], type]  # (HTTP method, path, handler, response model)


def router(client: Client) -> APIRouter:
    """MLflow's tracking routes, answered by `client`."""
    api = APIRouter()
    for group in (Experiments(client), Runs(client), LoggedModels(client)):
        for method, path, endpoint, response_model in group.routes():
            api.add_api_route(path, endpoint, methods=[method], response_model=response_model, tags=[group.TAG])
    return api


class _Group(abc.ABC):
    """Handlers for one group of routes, over one Client."""

    TAG = ""

    def __init__(self, client: Client) -> None:
        self.client = client

    @abc.abstractmethod
    def routes(self) -> list[Route]:
        """(method, path, handler, response model) of each route of the group."""


class Experiments(_Group):
    TAG = "experiments"

    def routes(self) -> list[Route]:
        return [
            ("POST", "/experiments/create", self.create_experiment, s.CreateExperimentResponse),
            ("GET", "/experiments/get", self.get_experiment, s.ExperimentResponse),
            ("GET", "/experiments/get-by-name", self.get_experiment_by_name, s.ExperimentResponse),
            ("POST", "/experiments/search", self.search_experiments_post, s.SearchExperimentsResponse),
            ("GET", "/experiments/search", self.search_experiments_get, s.SearchExperimentsResponse),
            ("POST", "/experiments/delete", self.delete_experiment, s.Empty),
            ("POST", "/experiments/restore", self.restore_experiment, s.Empty),
            ("POST", "/experiments/update", self.update_experiment, s.Empty),
            ("POST", "/experiments/set-experiment-tag", self.set_experiment_tag, s.Empty),
            ("POST", "/experiments/delete-experiment-tag", self.delete_experiment_tag, s.Empty),
        ]

    def create_experiment(self, req: s.CreateExperiment) -> JSON:
        required(req.name, "name")
        return JSON({"experiment_id": self.client.create_experiment(req.name, req.artifact_location,
                                                                    tag_dict(req.tags) or None)})

    def get_experiment(self, q: Annotated[s.ExperimentIdQuery, Query()]) -> JSON:
        return JSON({"experiment": conv.experiment(self.client.get_experiment(q.experiment_id))})

    def get_experiment_by_name(self, q: Annotated[s.ExperimentByNameQuery, Query()]) -> JSON:
        found = self.client.get_experiment_by_name(q.experiment_name)
        if found is None:
            raise ResourceDoesNotExist(f"Could not find experiment with name '{q.experiment_name}'",
                                       name=q.experiment_name)
        return JSON({"experiment": conv.experiment(found)})

    def _search(self, req: s.SearchExperiments) -> JSON:
        page = self.client.search_experiments(
            view_type(req.view_type),
            SEARCH_EXPERIMENTS_MAX_RESULTS_DEFAULT if req.max_results is None else req.max_results,
            req.filter, list(req.order_by) or None, req.page_token or None)
        out: dict[str, Any] = {"experiments": [conv.experiment(e) for e in page]}
        if page.token:
            out["next_page_token"] = page.token
        return JSON(out)

    def search_experiments_post(self, req: s.SearchExperiments) -> JSON:
        return self._search(req)

    def search_experiments_get(self, q: Annotated[s.SearchExperiments, Query()]) -> JSON:
        return self._search(q)

    def delete_experiment(self, req: s.ExperimentIdBody) -> JSON:
        self.client.delete_experiment(req.experiment_id)
        return JSON({})

    def restore_experiment(self, req: s.ExperimentIdBody) -> JSON:
        self.client.restore_experiment(req.experiment_id)
        return JSON({})

    def update_experiment(self, req: s.UpdateExperiment) -> JSON:
        if req.new_name:
            self.client.rename_experiment(req.experiment_id, req.new_name)
        else:
            self.client.get_experiment(req.experiment_id)
        return JSON({})

    def set_experiment_tag(self, req: s.SetExperimentTag) -> JSON:
        self.client.set_experiment_tag(req.experiment_id, req.key, req.value)
        return JSON({})

    def delete_experiment_tag(self, req: s.DeleteExperimentTag) -> JSON:
        self.client.delete_experiment_tag(req.experiment_id, req.key)
        return JSON({})


class Runs(_Group):
    """Runs, their metric histories and their artifact listing."""

    TAG = "runs"

    def routes(self) -> list[Route]:
        return [
            ("POST", "/runs/create", self.create_run, s.RunResponse),
            ("GET", "/runs/get", self.get_run, s.RunResponse),
            ("POST", "/runs/update", self.update_run, s.UpdateRunResponse),
            ("POST", "/runs/delete", self.delete_run, s.Empty),
            ("POST", "/runs/restore", self.restore_run, s.Empty),
            ("POST", "/runs/log-metric", self.log_metric, s.Empty),
            ("POST", "/runs/log-parameter", self.log_param, s.Empty),
            ("POST", "/runs/set-tag", self.set_tag, s.Empty),
            ("POST", "/runs/delete-tag", self.delete_tag, s.Empty),
            ("POST", "/runs/log-batch", self.log_batch, s.Empty),
            ("POST", "/runs/log-model", self.log_model, s.Empty),
            ("POST", "/runs/log-inputs", self.log_inputs, s.Empty),
            ("POST", "/runs/outputs", self.log_outputs, s.Empty),
            ("POST", "/runs/search", self.search_runs, s.SearchRunsResponse),
            ("GET", "/metrics/get-history", self.get_metric_history, s.MetricsResponse),
            ("GET", "/metrics/get-history-bulk-interval", self.get_metric_history_bulk_interval,
             s.MetricsResponse),
            ("GET", "/artifacts/list", self.list_artifacts, s.ListArtifactsResponse),
        ]

    def _artifact_root(self, experiment_id: str, roots: dict[str, str | None] | None = None) -> str | None:
        """The experiment's own mlflow-artifacts: location (its runs' artifact_uri go under it)."""
        if roots is not None and experiment_id in roots:
            return roots[experiment_id]
        try:
            root = conv.experiment_proxy_root(self.client.get_experiment(experiment_id))
        except ResourceDoesNotExist:
            root = None
        if roots is not None:
            roots[experiment_id] = root
        return root

    def _run_json(self, run: ent.Run, roots: dict[str, str | None] | None = None) -> dict[str, Any]:
        return conv.run(run, self._artifact_root(run.info.experiment_id, roots))

    def create_run(self, req: s.CreateRun) -> JSON:
        run = self.client.create_run(req.experiment_id or "0", req.start_time, tag_dict(req.tags) or None,
                                     req.run_name or None, user_id=req.user_id or None)
        return JSON({"run": self._run_json(run)})

    def get_run(self, q: Annotated[s.RunIdQuery, Query()]) -> JSON:
        return JSON({"run": self._run_json(self.client.get_run(run_id_of(q)))})

    def update_run(self, req: s.UpdateRun) -> JSON:
        client = self.client
        run_id = run_id_of(req)
        if req.status in ("FINISHED", "FAILED", "KILLED"):
            if req.run_name:
                client.update_run(run_id, name=req.run_name)
            client.set_terminated(run_id, req.status, req.end_time)
        elif req.status is not None or req.run_name:
            client.update_run(run_id, req.status, req.run_name or None)
        info = client.get_run(run_id).info
        return JSON({"run_info": conv.run_info(info, self._artifact_root(info.experiment_id))})

    def delete_run(self, req: s.RunIdBody) -> JSON:
        self.client.delete_run(req.run_id)
        return JSON({})

    def restore_run(self, req: s.RunIdBody) -> JSON:
        self.client.restore_run(req.run_id)
        return JSON({})

    def log_metric(self, req: s.LogMetric) -> JSON:
        self.client.log_metric(run_id_of(req), req.key, conv.parse_number(req.value), req.timestamp, req.step or 0,
                               dataset_name=req.dataset_name or None, dataset_digest=req.dataset_digest or None,
                               model_id=req.model_id or None)
        return JSON({})

    def log_param(self, req: s.LogParam) -> JSON:
        self.client.log_param(run_id_of(req), req.key, req.value)
        return JSON({})

    def set_tag(self, req: s.SetTag) -> JSON:
        self.client.set_tag(run_id_of(req), req.key, req.value)
        return JSON({})

    def delete_tag(self, req: s.DeleteTag) -> JSON:
        self.client.delete_tag(req.run_id, req.key)
        return JSON({})

    def log_batch(self, req: s.LogBatch, content_length: Annotated[int | None, Header()] = None) -> JSON:
        size = content_length or 0
        if size > MAX_BATCH_LOG_REQUEST_SIZE:
            raise InvalidParameterValue(
                f"Batched logging API requests must be at most {MAX_BATCH_LOG_REQUEST_SIZE} bytes, got a "
                f"request of size {size}.")
        check_batch_limit("metrics", MAX_METRICS_PER_BATCH, len(req.metrics))
        check_batch_limit("params", MAX_PARAMS_TAGS_PER_BATCH, len(req.params))
        check_batch_limit("tags", MAX_PARAMS_TAGS_PER_BATCH, len(req.tags))
        check_batch_limit("metrics, params, and tags", MAX_ENTITIES_PER_BATCH,
                          len(req.metrics) + len(req.params) + len(req.tags))
        self.client.log_batch(
            req.run_id,
            metrics=[ent.Metric(m.key, conv.parse_number(m.value), m.timestamp, m.step, m.model_id or None,
                                m.dataset_name or None, m.dataset_digest or None) for m in req.metrics],
            params=[ent.Param(p.key, p.value) for p in req.params],
            tags=[ent.RunTag(t.key, t.value) for t in req.tags])
        return JSON({})

    def log_model(self, req: s.LogModel) -> JSON:
        # MLflow 2's record of a logged model: appended to the tag mlflow.log-model.history.
        try:
            model = json.loads(req.model_json)
        except ValueError as exc:
            raise InvalidParameterValue(f"model_json is not valid JSON: {exc}") from exc
        if not isinstance(model, dict):
            raise InvalidParameterValue(f"model_json must be a JSON object, got {type(model).__name__}")
        history = self.client.get_run(req.run_id).data.tags.get("mlflow.log-model.history")
        try:
            entries = json.loads(history) if history else []
        except ValueError:
            entries = []
        self.client.set_tag(req.run_id, "mlflow.log-model.history", json.dumps([*entries, model]))
        return JSON({})

    def log_inputs(self, req: s.LogInputs) -> JSON:
        client = self.client
        datasets = [ent.DatasetInput(ent.Dataset(d.dataset.name, d.dataset.digest, d.dataset.source_type,
                                                 d.dataset.source, d.dataset.schema_, d.dataset.profile),
                                     [ent.InputTag(t.key, t.value) for t in d.tags])
                    for d in req.datasets]
        client.get_run(req.run_id)
        client.log_inputs(req.run_id, datasets, [m.model_id for m in req.models])
        return JSON({})

    def log_outputs(self, req: s.LogOutputs) -> JSON:
        self.client.log_outputs(req.run_id, [ent.LoggedModelOutput(m.model_id, m.step or 0) for m in req.models])
        return JSON({})

    def search_runs(self, req: s.SearchRuns) -> JSON:
        page = self.client.search_runs(
            list(req.experiment_ids), req.filter or "", view_type(req.run_view_type),
            SEARCH_RUNS_MAX_RESULTS_DEFAULT if req.max_results is None else req.max_results,
            list(req.order_by) or None, req.page_token or None, req.as_of or None)
        roots: dict[str, str | None] = {}
        out: dict[str, Any] = {"runs": [self._run_json(r, roots) for r in page]}
        if page.token:
            out["next_page_token"] = page.token
        return JSON(out)

    def get_metric_history(self, q: Annotated[s.GetMetricHistoryQuery, Query()]) -> JSON:
        run_id = run_id_of(q)
        steps, times, values = self.client.metric_history_arrays(run_id, q.metric_key)
        start = page_offset(q.page_token)
        end = len(steps) if not q.max_results or q.max_results < 0 else start + q.max_results
        page = zip(steps[start:end].tolist(), times[start:end].tolist(), values[start:end].tolist(), strict=True)
        out: dict[str, Any] = {"metrics": [{"key": q.metric_key, "value": conv.number(v), "timestamp": t, "step": st}
                                           for st, t, v in page]}
        if end < len(steps):
            out["next_page_token"] = str(end)
        return JSON(out)

    def get_metric_history_bulk_interval(self, q: Annotated[s.GetMetricHistoryBulkIntervalQuery, Query()]) -> JSON:
        points = self.client.get_metric_history_bulk_interval(
            q.run_ids, q.metric_key, q.start_step, q.end_step, 2500 if q.max_results is None else q.max_results)
        return JSON({"metrics": [conv.metric(m, m.run_id) for m in points]})

    def list_artifacts(self, q: Annotated[s.ListArtifactsQuery, Query()]) -> JSON:
        run_id = run_id_of(q)
        run = self.client.get_run(run_id)
        files = self.client.list_artifacts(run_id, q.path or None)
        return JSON({"root_uri": conv.run_artifact_uri(run.info.experiment_id, run_id,
                                                       root=self._artifact_root(run.info.experiment_id)),
                     "files": [conv.file_info(f) for f in files]})


class LoggedModels(_Group):
    """MLflow 3's logged models."""

    TAG = "logged models"

    def routes(self) -> list[Route]:
        return [
            ("POST", "/logged-models", self.create_logged_model, s.LoggedModelResponse),
            ("POST", "/logged-models/search", self.search_logged_models, s.SearchLoggedModelsResponse),
            ("GET", "/logged-models/{model_id}", self.get_logged_model, s.LoggedModelResponse),
            ("PATCH", "/logged-models/{model_id}", self.finalize_logged_model, s.LoggedModelResponse),
            ("DELETE", "/logged-models/{model_id}", self.delete_logged_model, s.Empty),
            ("PATCH", "/logged-models/{model_id}/tags", self.set_logged_model_tags, s.Empty),
            ("DELETE", "/logged-models/{model_id}/tags/{tag_key}", self.delete_logged_model_tag, s.Empty),
            ("POST", "/logged-models/{model_id}/params", self.log_logged_model_params, s.Empty),
            ("GET", "/logged-models/{model_id}/artifacts/directories", self.list_logged_model_artifacts,
             s.ListArtifactsResponse),
        ]

    def create_logged_model(self, req: s.CreateLoggedModel) -> JSON:
        model = self.client.create_logged_model(req.experiment_id, req.name or None, req.source_run_id or None,
                                                tag_dict(req.tags) or None, tag_dict(req.params) or None,
                                                req.model_type or None)
        return JSON({"model": conv.logged_model(model)})

    def search_logged_models(self, req: s.SearchLoggedModels) -> JSON:
        page = self.client.search_logged_models(
            list(req.experiment_ids), req.filter or None,
            [d.model_dump() for d in req.datasets] or None, req.max_results,
            [o.model_dump() for o in req.order_by] or None, req.page_token or None)
        out: dict[str, Any] = {"models": [conv.logged_model(m) for m in page]}
        if page.token:
            out["next_page_token"] = page.token
        return JSON(out)

    def get_logged_model(self, model_id: str, q: Annotated[s.GetLoggedModelQuery, Query()]) -> JSON:
        return JSON({"model": conv.logged_model(self.client.get_logged_model(model_id, bool(q.allow_deleted)))})

    def finalize_logged_model(self, model_id: str, req: s.FinalizeLoggedModel) -> JSON:
        if req.status == "LOGGED_MODEL_STATUS_UNSPECIFIED":
            raise InvalidParameterValue("Finalize a logged model with status LOGGED_MODEL_READY or "
                                        "LOGGED_MODEL_UPLOAD_FAILED, not LOGGED_MODEL_STATUS_UNSPECIFIED")
        return JSON({"model": conv.logged_model(self.client.finalize_logged_model(model_id, req.status))})

    def delete_logged_model(self, model_id: str) -> JSON:
        self.client.delete_logged_model(model_id)
        return JSON({})

    def set_logged_model_tags(self, model_id: str, req: s.SetLoggedModelTags) -> JSON:
        self.client.set_logged_model_tags(model_id, tag_dict(req.tags))
        return JSON({})

    def delete_logged_model_tag(self, model_id: str, tag_key: str) -> JSON:
        self.client.delete_logged_model_tag(model_id, tag_key)
        return JSON({})

    def log_logged_model_params(self, model_id: str, req: s.LogLoggedModelParams) -> JSON:
        self.client.log_model_params(model_id, tag_dict(req.params))
        return JSON({})

    def list_logged_model_artifacts(self, model_id: str,
                                    q: Annotated[s.ListLoggedModelArtifactsQuery, Query()]) -> JSON:
        model = self.client.get_logged_model(model_id)
        proxy = conv.runs_uri_to_proxy(model.artifact_location, model.experiment_id)
        if not proxy or not proxy.startswith(conv.PROXY_SCHEME):
            raise InvalidParameterValue(
                f"Logged model {model_id} keeps its artifacts at {model.artifact_location!r}, outside the "
                "repository's runs: this server lists only artifacts stored in a run", model_id=model_id)
        _exp, run_id, base = conv.proxy_path_parts(proxy[len(conv.PROXY_SCHEME):])
        sub = (q.artifact_directory_path or "").strip("/")
        path = "/".join(p for p in (base, sub) if p)
        files = self.client.list_artifacts(run_id, path or None) if run_id else []
        cut = len(base) + 1 if base else 0
        return JSON({"root_uri": conv.runs_uri_to_proxy(model.artifact_location, model.experiment_id),
                     "files": [conv.file_info(f, f.path[cut:]) for f in files]})


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
