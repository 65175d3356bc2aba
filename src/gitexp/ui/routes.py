"""The pages of the web UI, one handler each, every read through one Client.

Handlers are thin: they parse the query, call one or two Client methods and
render a template.  Errors from the Client become an error page with the
message and the right status (404, 400...).
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.background import BackgroundTask

from ..client import Client
from ..entities import ViewType
from ..exceptions import GitexpError, InvalidParameterValue, ResourceDoesNotExist
from ..server._viewer import EXPERIMENT, MODEL, may_read
from . import previews, table
from ._web import Renderer, Urls, guarded, json_response, raw_headers, route_name
from .series import DEFAULT_POINTS, MAX_POINTS, X_AXES, build_series

STATIC = os.path.join(os.path.dirname(__file__), "static")
MAX_COMPARE_RUNS = 200
MAX_INLINE_ARTIFACT = 64 * 1024 * 1024
VIEW_TYPES = {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY, "all": ViewType.ALL}
FLASH = {
    "created": "Created.", "renamed": "Renamed.", "deleted": "Deleted.", "restored": "Restored.",
    "saved": "Saved.", "tag-set": "Tag set.", "tag-deleted": "Tag deleted.", "registered": "Model registered.",
    "stage": "Stage changed.", "alias-set": "Alias set.", "alias-deleted": "Alias deleted.",
}


def plotly_js_path() -> str:
    """plotly.min.js of the installed plotly package: the UI works offline, no CDN."""
    import plotly

    return os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")


def _run_ids(values: list[str]) -> list[str]:
    out = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


class UI:
    """Routes of the UI over one repository's Client."""

    def __init__(self, client: Client, renderer: Renderer) -> None:
        self.client = client
        self.render = renderer
        self._series_cache: OrderedDict[tuple[str, str], tuple[Any, Any]] = OrderedDict()
        self._series_lock = threading.Lock()

    # -- helpers ------------------------------------------------------------------------------
    def experiments_by_id(self) -> dict[str, Any]:
        return {e.experiment_id: e for e in self.client.search_experiments(ViewType.ALL, max_results=None)
                if may_read(EXPERIMENT, e.experiment_id)}

    def page_size(self, value: int | None) -> int:
        if value is None:
            return table.DEFAULT_PAGE_SIZE
        if not 1 <= value <= table.MAX_PAGE_SIZE:
            raise InvalidParameterValue(f"Page size must be between 1 and {table.MAX_PAGE_SIZE}, got {value}")
        return value

    def flash(self, request: Request) -> str | None:
        return FLASH.get(request.query_params.get("flash", ""))

    # -- experiments --------------------------------------------------------------------------
    def experiments(self, request: Request, view: str = "active", filter: str = "") -> HTMLResponse:
        view_type = VIEW_TYPES.get(view)
        if view_type is None:
            raise InvalidParameterValue(f"Unknown view {view!r}; use active, deleted or all")
        error = None
        found: list[Any]
        try:
            found = [e for e in self.client.search_experiments(view_type, max_results=None,
                                                               filter_string=filter or None, order_by=["name ASC"])
                     if may_read(EXPERIMENT, e.experiment_id)]
        except InvalidParameterValue as exc:
            found, error = [], exc.message
        return self.render.page(request, "experiments.html", title="Experiments", experiments=found,
                                view=view, filter=filter, error=error, flash=self.flash(request))

    # -- runs table ---------------------------------------------------------------------------
    def runs_table(self, request: Request, experiment_ids: list[str], single: Any = None) -> HTMLResponse:
        q = request.query_params
        view = q.get("view", "active")
        view_type = VIEW_TYPES.get(view)
        if view_type is None:
            raise InvalidParameterValue(f"Unknown view {view!r}; use active, deleted or all")
        size = self.page_size(int(q["max"]) if q.get("max", "").isdigit() else None)
        filter_string = q.get("filter", "")
        order = q.get("order", "").strip()
        nested = q.get("flat") != "1"
        token = q.get("page_token") or None
        prev = q.getlist("prev")
        experiments = self.experiments_by_id()
        for e in experiment_ids:
            if e not in experiments:
                raise ResourceDoesNotExist(f"No experiment with id {e!r}; see the experiments list",
                                           experiment_id=e)
        keys = self.client.get_run_keys(experiment_ids, ViewType.ALL)
        chosen = [c for c in (table.parse_column(x) for x in q.getlist("c")) if c is not None]
        columns = chosen if ("c" in q or q.get("cols")) else table.default_columns(keys)
        error = None
        runs: list[Any] = []
        next_token = None
        try:
            page = self.client.search_runs(experiment_ids, filter_string, view_type, size,
                                           [order] if order else None, token)
            runs, next_token = list(page), page.token
        except InvalidParameterValue as exc:
            error = exc.message
        rows = table.group_rows(runs, nested)
        return self.render.page(
            request, "runs.html", title=single.name if single is not None else "Runs",
            experiment=single, experiment_ids=experiment_ids, experiments=experiments, rows=rows,
            columns=columns, keys=keys, filter=filter_string, order=order, view=view, nested=nested,
            page_size=size, token=token, next_token=next_token, prev=prev, error=error,
            attributes=table.ATTRIBUTES, next_order=table.next_order, sort_state=table.sort_state,
            models_of=table.models_of, flash=self.flash(request),
            column_ids=[c.id for c in columns], start_index=len(prev) * size)

    def experiment(self, request: Request, experiment_id: str) -> HTMLResponse:
        experiment = self.client.get_experiment(experiment_id)
        return self.runs_table(request, [experiment_id], experiment)

    def runs(self, request: Request, e: list[str] = Query(default=[])) -> HTMLResponse:
        ids = _run_ids(e)
        if not ids:
            ids = [x.experiment_id for x in self.client.search_experiments(max_results=None)
                   if may_read(EXPERIMENT, x.experiment_id)]
        return self.runs_table(request, ids)

    # -- run page -----------------------------------------------------------------------------
    def run(self, request: Request, run_id: str) -> HTMLResponse:
        client = self.client
        run = client.get_run(run_id)
        experiment = client.get_experiment(run.info.experiment_id)
        tags = run.data.tags
        parent = None
        if tags.get(table.PARENT_TAG):
            try:
                parent = client.get_run(tags[table.PARENT_TAG])
            except ResourceDoesNotExist:
                parent = None
        children = client.search_runs([run.info.experiment_id],
                                      f"tags.`{table.PARENT_TAG}` = '{run_id}'", ViewType.ALL, 100)
        metric_keys = sorted(run.data.metrics)
        metric_steps = {m.key: m.step for m in run.data._metric_objs}
        artifacts = client.list_artifacts(run_id)
        versions = list(client.search_model_versions(f"run_id = '{run_id}'", max_results=100))
        patch = client.get_run_code_diff(run_id) if tags.get("mlflow.source.git.dirty") == "true" else ""
        user_tags = {k: v for k, v in tags.items() if not k.startswith("mlflow.")}
        system_tags = {k: v for k, v in tags.items() if k.startswith("mlflow.")}
        datasets = []
        for d in run.inputs.dataset_inputs:
            ds = d.dataset
            context = next((t.value for t in d.tags if t.key == "mlflow.data.context"), "")
            schema = _pretty_json(ds.schema)
            profile = _pretty_json(ds.profile)
            datasets.append({"name": ds.name, "digest": ds.digest, "source_type": ds.source_type,
                             "source": ds.source, "context": context, "schema": schema, "profile": profile})
        return self.render.page(
            request, "run.html", title=run.info.run_name or run_id, run=run, experiment=experiment,
            parent=parent, children=list(children), metric_keys=metric_keys, metric_steps=metric_steps,
            artifacts=artifacts, versions=versions, patch=patch, user_tags=user_tags, system_tags=system_tags,
            datasets=datasets, models=table.models_of(run), note=tags.get("mlflow.note.content", ""),
            flash=self.flash(request),
            chart_config={"run_id": run_id, "keys": metric_keys,
                          "api": Urls(request)("api_metric", run_id=run_id)})

    def run_artifacts(self, request: Request, run_id: str, path: str = "") -> HTMLResponse:
        client = self.client
        run = client.get_run(run_id)
        path = path.strip("/")
        parent = posixpath.dirname(path)
        siblings = client.list_artifacts(run_id, parent or None) if path else client.list_artifacts(run_id)
        entry = next((f for f in siblings if f.path == path), None)
        if path and entry is None:
            raise ResourceDoesNotExist(f"Run {run_id} has no artifact {path!r}", run_id=run_id, path=path)
        is_dir = not path or (entry is not None and entry.is_dir)
        listing = client.list_artifacts(run_id, path or None) if is_dir else siblings
        folder = path if is_dir else parent
        preview = None
        model_dir = None
        if is_dir and any(f.path == posixpath.join(path, "MLmodel") if path else f.path == "MLmodel"
                          for f in listing):
            model_file = posixpath.join(path, "MLmodel") if path else "MLmodel"
            preview = previews.build_preview(model_file, None, lambda: client.read_artifact(run_id, model_file))
            model_dir = path
        elif not is_dir:
            assert entry is not None  # a file: found above
            preview = previews.build_preview(path, entry.file_size, lambda: client.read_artifact(run_id, path))
            if preview.kind == "mlmodel":
                model_dir = parent
        crumbs = []
        acc = ""
        for part in [p for p in folder.split("/") if p]:
            acc = posixpath.join(acc, part) if acc else part
            crumbs.append((part, acc))
        registered = [m.name for m in self.client.search_registered_models(max_results=1000)
                      if may_read(MODEL, m.name)]
        return self.render.page(
            request, "artifacts.html", title=f"Artifacts of {run.info.run_name or run_id}", run=run, path=path,
            folder=folder, listing=listing, preview=preview, crumbs=crumbs, model_dir=model_dir,
            registered=registered, flash=self.flash(request))

    def artifact_raw(self, request: Request, run_id: str, path: str, download: int = 0, frame: int = 0) -> Response:
        client = self.client
        parent = posixpath.dirname(path.strip("/"))
        entry = next((f for f in client.list_artifacts(run_id, parent or None) if f.path == path.strip("/")), None)
        if entry is None or entry.is_dir:
            raise ResourceDoesNotExist(f"Run {run_id} has no artifact file {path!r}", run_id=run_id, path=path)
        name = posixpath.basename(entry.path)
        ctype = previews.content_type(entry.path)
        html = ctype.startswith("text/html")
        inline = not download and (ctype.startswith("image/") or ctype.startswith("text/plain") or (html and frame))
        sandbox = "sandbox allow-scripts" if html and frame else "sandbox"
        if html and not frame:
            ctype = "text/plain; charset=utf-8"
        headers = raw_headers(ctype, bool(inline), name, sandbox)
        if (entry.file_size or 0) <= MAX_INLINE_ARTIFACT:
            return Response(client.read_artifact(run_id, entry.path), headers=headers)
        scratch = tempfile.mkdtemp(prefix="gitexp-ui-")
        local = client.download_artifacts(run_id, entry.path, scratch)
        import shutil

        headers.pop("Content-Type")
        return FileResponse(local, media_type=ctype, headers=headers,
                            background=BackgroundTask(shutil.rmtree, scratch, True))

    # -- metric data (JSON) ---------------------------------------------------------------------
    def metric_arrays(self, run_id: str, key: str) -> Any:
        """A metric's history as arrays, cached while the branch tip and the run's latest value of
        the metric stay the same (zooming re-reads the cache, not 100,000 Metric entities)."""
        run = self.client.get_run(run_id)  # a missing run is a 404
        latest = next(((m.step, m.timestamp, repr(m.value)) for m in run.data._metric_objs if m.key == key), None)
        if latest is None:
            raise ResourceDoesNotExist(f"Run {run_id} has no metric {key!r}", run_id=run_id, key=key)
        # The tip is read only to know when cached data may be stale.
        version = (self.client.get_tracking_tip(), latest)
        with self._series_lock:
            cached = self._series_cache.get((run_id, key))
            if cached is not None and cached[0] == version:
                self._series_cache.move_to_end((run_id, key))
                return cached[1]
        arrays = self.client.metric_history_arrays(run_id, key)
        with self._series_lock:
            self._series_cache[(run_id, key)] = (version, arrays)
            while len(self._series_cache) > 64:
                self._series_cache.popitem(last=False)
        return arrays

    def api_metric(self, request: Request, run_id: str, key: str, x: str = "step", xmin: float | None = None,
                   xmax: float | None = None, points: int = DEFAULT_POINTS, smoothing: float = 0.0) -> Response:
        try:
            if x not in X_AXES:
                raise InvalidParameterValue(f"Unknown x axis {x!r}; use one of {', '.join(X_AXES)}")
            if not 10 <= points <= MAX_POINTS:
                raise InvalidParameterValue(f"points must be between 10 and {MAX_POINTS}, got {points}")
            if not 0 <= smoothing < 1:
                raise InvalidParameterValue(f"smoothing must be at least 0 and below 1, got {smoothing}")
            arrays = self.metric_arrays(run_id, key)
            series = build_series(arrays, x, (xmin, xmax), points, smoothing)
        except GitexpError as exc:
            from ._web import _status_for

            return json_response({"error_code": exc.error_code, "message": exc.message}, _status_for(exc))
        return json_response({"run_id": run_id, "key": key, "x_axis": x, **series.to_json()})

    # -- compare and diff -----------------------------------------------------------------------
    def compare(self, request: Request, runs: list[str] = Query(default=[])) -> HTMLResponse:
        ids = _run_ids(runs)
        if len(ids) < 2:
            raise InvalidParameterValue("Select at least two runs to compare (runs=<id>&runs=<id>...)")
        if len(ids) > MAX_COMPARE_RUNS:
            raise InvalidParameterValue(f"Compare at most {MAX_COMPARE_RUNS} runs at a time, got {len(ids)}")
        found = [self.client.get_run(r) for r in ids]
        experiments = self.experiments_by_id()
        param_keys = sorted({k for r in found for k in r.data.params})
        metric_keys = sorted({k for r in found for k in r.data.metrics})
        tag_keys = sorted({k for r in found for k in r.data.tags if not k.startswith("mlflow.")})

        def rowset(group: str, keys: list[str]) -> list[dict[str, Any]]:
            out = []
            for key in keys:
                values = [getattr(r.data, group).get(key) for r in found]
                out.append({"key": key, "values": values, "same": len({repr(v) for v in values}) == 1})
            return out

        data = {
            "runs": [{"id": r.info.run_id, "name": r.info.run_name or r.info.run_id[:8],
                      "params": r.data.params, "metrics": {k: _finite(v) for k, v in r.data.metrics.items()}}
                     for r in found],
            "param_keys": param_keys, "metric_keys": metric_keys,
            "api": [Urls(request)("api_metric", run_id=r.info.run_id) for r in found],
        }
        return self.render.page(
            request, "compare.html", title=f"Comparing {len(found)} runs", runs=found, experiments=experiments,
            params=rowset("params", param_keys), metrics=rowset("metrics", metric_keys),
            tags=rowset("tags", tag_keys), data=data)

    def diff(self, request: Request, a: str, b: str) -> HTMLResponse:
        run_a, run_b = self.client.get_run(a), self.client.get_run(b)

        def changes(group: str) -> list[dict[str, Any]]:
            left, right = getattr(run_a.data, group), getattr(run_b.data, group)
            out = []
            for key in sorted(set(left) | set(right)):
                if group == "tags" and key.startswith("mlflow.") and key not in (
                        "mlflow.source.git.commit", "mlflow.source.git.branch", "mlflow.source.git.dirty"):
                    continue
                lv, rv = left.get(key), right.get(key)
                status = ("added" if key not in left else "removed" if key not in right
                          else "same" if repr(lv) == repr(rv) else "changed")
                out.append({"key": key, "a": lv, "b": rv, "status": status})
            return out

        code = self.client.diff_run_code(a, b)
        patches = {}
        for run in (run_a, run_b):
            dirty = run.data.tags.get("mlflow.source.git.dirty") == "true"
            patches[run.info.run_id] = self.client.get_run_code_diff(run.info.run_id) if dirty else ""
        return self.render.page(
            request, "diff.html", title="Diff of two runs", a=run_a, b=run_b, params=changes("params"),
            metrics=changes("metrics"), tags=changes("tags"), code=code, patches=patches)

    # -- registry -----------------------------------------------------------------------------
    def models(self, request: Request, filter: str = "", page_token: str | None = None) -> HTMLResponse:
        error = None
        found: list[Any] = []
        token = None
        try:
            page = self.client.search_registered_models(filter or None, max_results=100,
                                                         order_by=["name ASC"], page_token=page_token)
            found, token = [m for m in page if may_read(MODEL, m.name)], page.token
        except InvalidParameterValue as exc:
            error = exc.message
        return self.render.page(request, "models.html", title="Registered models", models=found, filter=filter,
                                error=error, next_token=token, flash=self.flash(request))

    def model(self, request: Request, name: str) -> HTMLResponse:
        client = self.client
        model = client.get_registered_model(name)
        versions = sorted(client.search_model_versions(f"name = '{_quote(name)}'", max_results=10_000),
                          key=lambda v: -int(v.version))
        history = client.get_registered_model_history(name)
        return self.render.page(request, "model.html", title=name, model=model, versions=versions,
                                history=list(reversed(history)), stages=_stages(), flash=self.flash(request))

    def model_version(self, request: Request, name: str, version: int) -> HTMLResponse:
        client = self.client
        mv = client.get_model_version(name, version)
        model = client.get_registered_model(name)
        run = None
        if mv.run_id:
            try:
                run = client.get_run(mv.run_id)
            except ResourceDoesNotExist:
                run = None
        history = [h for h in client.get_registered_model_history(name) if _concerns(h, int(version))]
        return self.render.page(request, "model_version.html", title=f"{name} version {version}", mv=mv,
                                model=model, run=run, history=list(reversed(history)), stages=_stages(),
                                flash=self.flash(request))

    # -- tracking branch history ----------------------------------------------------------------
    def history(self, request: Request, run: str | None = None, experiment: str | None = None,
                model: str | None = None, page_token: str | None = None) -> HTMLResponse:
        page = self.client.get_tracking_history(50, page_token or None, run or None, experiment or None,
                                                model or None)
        return self.render.page(request, "history.html", title="History of the tracking branch", commits=list(page),
                                experiment_names={k: e.name for k, e in self.experiments_by_id().items()},
                                next_token=page.token, follow={"run": run, "experiment": experiment,
                                                               "model": model})

    def commit(self, request: Request, commit: str) -> HTMLResponse:
        detail = self.client.get_tracking_commit(commit)
        return self.render.page(request, "commit.html", title=f"Commit {detail.commit.commit[:10]}",
                                detail=detail,
                                experiment_names={k: e.name for k, e in self.experiments_by_id().items()})

    # -- static files ---------------------------------------------------------------------------
    def static(self, request: Request, path: str) -> Response:
        if path == "plotly.min.js":
            return FileResponse(plotly_js_path(), media_type="text/javascript",
                                headers={"Cache-Control": "public, max-age=86400"})
        names = {n for n in os.listdir(STATIC)}
        if path not in names:  # a fixed set of files: no path ever leaves the directory
            return Response("Not found", status_code=404, media_type="text/plain")
        media = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}.get(
            os.path.splitext(path)[1], "application/octet-stream")
        return FileResponse(os.path.join(STATIC, path), media_type=media,
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    # -- wiring ---------------------------------------------------------------------------------
    def routes(self, router: APIRouter) -> None:
        g = guarded(lambda: self.render)

        def page(path: str, name: str, handler: Callable[..., Response], guard: bool = True) -> None:
            # response_model=None: a page is the Response its handler makes, whatever its annotation says.
            router.get(path, name=route_name(name), include_in_schema=False, response_model=None)(
                g(handler) if guard else handler)

        page("/", "experiments", self.experiments)
        page("/experiments/{experiment_id}", "experiment", self.experiment)
        page("/runs", "runs", self.runs)
        page("/runs/{run_id}", "run", self.run)
        page("/runs/{run_id}/artifacts", "run_artifacts", self.run_artifacts)
        page("/runs/{run_id}/artifact", "artifact_raw", self.artifact_raw)
        page("/compare", "compare", self.compare)
        page("/diff", "diff", self.diff)
        page("/models", "models", self.models)
        page("/models/{name}", "model", self.model)
        page("/models/{name}/versions/{version}", "model_version", self.model_version)
        page("/history", "history", self.history)
        page("/history/{commit}", "commit", self.commit)
        page("/ui-api/runs/{run_id}/metric", "api_metric", self.api_metric, guard=False)
        page("/ui-static/{path}", "ui_static", self.static, guard=False)


def _concerns(entry: Any, version: int) -> bool:
    """A registry change about this version, or one that archived it (a transition of another
    version with archive_existing_versions, whose detail lists the versions it archived)."""
    if entry.version == version:
        return True
    marker = "archived version(s) "
    if entry.action != "transition_stage" or marker not in entry.detail:
        return False
    return str(version) in [v.strip() for v in entry.detail.split(marker, 1)[1].split(",")]


def _stages() -> list[str]:
    from ..entities.model_registry import ModelVersionStages

    return list(ModelVersionStages.ALL)


def _quote(value: str) -> str:
    return value.replace("'", "''")


def _finite(value: Any) -> Any:
    import math

    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _pretty_json(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw
