"""RestStore: the store behind Client when the tracking URI is http(s)://, speaking MLflow's REST API.

It implements store/interface.py's TrackingStore (the registry, artifacts and
logged models are its ``.registry``, ``.artifacts`` and ``.logged_models``), so
the whole gitexp API works against a ``gitexp server`` -- or any MLflow tracking
server, for the MLflow API part.  Operations that need the repository itself
(pull/push, code checkout, the branch's history, doctor) raise RepositoryRequired
naming the operation: run them where the repository is.

HTTP is the standard library's: one keep-alive connection per thread.
``MLFLOW_TRACKING_TOKEN`` (bearer) or ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``
(basic) are sent when set, for a server behind an authenticating proxy.
"""

from __future__ import annotations

import base64
import builtins
import http.client
import json
import os
import posixpath
import shutil
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from ..entities import Experiment, FileInfo, Metric, PagedList, Run, RunStatus, ViewType
from ..exceptions import (
    GitexpError,
    InvalidParameterValue,
    RepositoryRequired,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    StoreError,
)
from . import rest_json as conv

if TYPE_CHECKING:
    import pandas as pd

    from ..entities.logged_model import LoggedModel
    from ..entities.model_registry import ModelVersion, RegisteredModel
    from .interface import RunRecord

_T = TypeVar("_T")

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
GITEXP_API = "/api/2.0/gitexp"
# MLflow's log-batch limits: bigger batches are split into requests that respect them.
_BATCH_METRICS, _BATCH_PARAMS_TAGS, _BATCH_TOTAL = 1000, 100, 1000
_ERRORS = {"RESOURCE_DOES_NOT_EXIST": ResourceDoesNotExist, "INVALID_PARAMETER_VALUE": InvalidParameterValue,
           "RESOURCE_ALREADY_EXISTS": ResourceAlreadyExists, "RESOURCE_CONFLICT": StoreError}
_VIEW = {ViewType.ACTIVE_ONLY: "ACTIVE_ONLY", ViewType.DELETED_ONLY: "DELETED_ONLY", ViewType.ALL: "ALL"}


class _Http:
    """Requests to one server over per-thread keep-alive connections."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InvalidParameterValue(f"Not an http(s) tracking URI: {url!r}; use e.g. http://127.0.0.1:5000")
        self.url = url.rstrip("/")
        self.https = parsed.scheme == "https"
        self.host = parsed.hostname
        self.port = parsed.port
        self.base = parsed.path.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()
        self.headers = {"User-Agent": "gitexp"}
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif user and password:
            self.headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = self._local.conn = kind(self.host, self.port, timeout=self.timeout)
        return conn

    def raw(self, method: str, path: str, body: bytes | BinaryIO | None = None, headers: dict[str, Any] | None = None,
            query: dict[str, Any] | None = None) -> http.client.HTTPResponse:
        target = self.base + path
        if query:
            target += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        all_headers = {**self.headers, **(headers or {})}
        for attempt in (0, 1):
            conn = self._connection(fresh=attempt > 0)
            try:
                conn.request(method, target, body=body, headers=all_headers)
                return conn.getresponse()
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                conn.close()
                self._local.conn = None
                # A reused keep-alive connection the server closed: retry once on a new one.
                if attempt == 0 and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError,
                                                     BrokenPipeError, http.client.BadStatusLine)):
                    continue
                # One line says it all: the socket error's traceback would only bury it.
                raise StoreError(
                    f"Cannot reach the tracking server at {self.url} ({type(exc).__name__}: {exc}). "
                    "Is `gitexp server` running there?", url=self.url) from None
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             query: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        resp = self.raw(method, path, data, {"Content-Type": "application/json"} if data is not None else None, query)
        payload = resp.read()
        return self.decode(resp, payload, method, path)

    def decode(self, resp: http.client.HTTPResponse, payload: bytes, method: str, path: str) -> dict[str, Any]:
        try:
            doc = json.loads(payload) if payload else {}
        except ValueError:
            doc = None
        if 200 <= resp.status < 300 and isinstance(doc, dict):
            return doc
        if isinstance(doc, dict) and "error_code" in doc:
            code, message = doc["error_code"], doc.get("message", "")
            raise _ERRORS.get(code, GitexpError)(message, error_code=code)
        text = payload[:300].decode("utf-8", "replace")
        raise StoreError(f"{method} {self.url}{path} answered HTTP {resp.status}: {text}", status=resp.status)


class RestStore:
    """Experiments, runs, registry, artifacts and logged models of a tracking server."""

    def __init__(self, url: str) -> None:
        self.http = _Http(url)
        self.url = self.http.url
        self.registry = RestRegistry(self)
        self.artifacts = RestArtifacts(self)
        self.logged_models = RestLoggedModels(self)

    def __repr__(self) -> str:
        return f"RestStore({self.url!r})"

    @property
    def uri(self) -> str:
        return self.url

    def close(self) -> None:
        pass

    # -- what only the repository can do ----------------------------------------------------------------
    def _needs_repository(self, operation: str) -> RepositoryRequired:
        return RepositoryRequired(operation, self.url)

    @property
    def repo(self) -> Any:
        raise self._needs_repository("This")

    @property
    def branch(self) -> Any:
        raise self._needs_repository("This")

    def run_state(self, run_id: str) -> Any:
        raise self._needs_repository("Reading a run's stored state")

    def repository_info(self) -> Any:
        raise self._needs_repository("Reading the repository's location and tracking branch")

    def tracking_tip(self) -> str | None:
        raise self._needs_repository("Reading the tracking branch's tip")

    def ensure_branch(self) -> str:
        raise self._needs_repository("Creating the tracking branch")

    def diagnose(self, recover_all: bool = False, progress: Any = None) -> Any:
        raise self._needs_repository("`gitexp doctor`")

    def pull(self, remote: str | None, progress: bool | None) -> Any:
        raise self._needs_repository("Pulling the tracking branch")

    def push(self, remote: str | None, progress: bool | None, no_verify: bool = False) -> Any:
        raise self._needs_repository("Pushing the tracking branch")

    def sync(self, remote: str | None, progress: bool | None) -> Any:
        raise self._needs_repository("Syncing the tracking branch")

    def checkout_code(self, run_id: str, directory: str) -> Any:
        raise self._needs_repository("Checking out a run's code")

    def diff_run_code(self, run_id: str, other_run_id: str) -> Any:
        raise self._needs_repository("Comparing the code of two runs")

    def link_runs_to_commit(self, commit: str, repository: str | None) -> list[str]:
        raise self._needs_repository("Linking runs to a commit")

    def tracking_history(self, max_results: int, page_token: str | None, run_id: str | None = None,
                         experiment_id: str | None = None, model_name: str | None = None) -> Any:
        raise self._needs_repository("Reading the tracking branch's history")

    def tracking_commit(self, commit: str) -> Any:
        raise self._needs_repository("Reading a commit of the tracking branch")

    def run_keys(self, experiment_ids: Any, run_view_type: int = ViewType.ACTIVE_ONLY) -> dict[str, list[str]]:
        raise self._needs_repository("Listing the keys of runs (from the search index)")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             query: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.http.call(method, API + path, body, query)

    def gitexp_call(self, method: str, path: str, body: dict[str, Any] | None = None,
                    query: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            return self.http.call(method, GITEXP_API + path, body, query)
        except GitexpError as exc:
            if exc.error_code == "ENDPOINT_NOT_FOUND":
                raise InvalidParameterValue(
                    f"The server at {self.url} is not a gitexp server (it has no {GITEXP_API}{path}); "
                    "this gitexp feature needs one", url=self.url) from exc
            raise

    # -- experiments -----------------------------------------------------------------------------------
    def create_experiment(self, name: str, artifact_location: str | None = None,
                          tags: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"name": name, "tags": conv.key_values(tags or {})}
        if artifact_location:
            body["artifact_location"] = artifact_location
        experiment_id: str = self.call("POST", "/experiments/create", body)["experiment_id"]
        return experiment_id

    def get_experiment(self, experiment_id: str) -> Experiment:
        return conv.parse_experiment(self.call("GET", "/experiments/get", query={"experiment_id": experiment_id})
                                     ["experiment"])

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            doc = self.call("GET", "/experiments/get-by-name", query={"experiment_name": name})
        except ResourceDoesNotExist:
            return None
        return conv.parse_experiment(doc["experiment"])

    def list_experiments(self, view_type: int = ViewType.ACTIVE_ONLY) -> list[Experiment]:
        out: list[Experiment] = []
        token = None
        while True:
            doc = self.call("POST", "/experiments/search",
                            {"view_type": _VIEW.get(view_type, "ACTIVE_ONLY"), "max_results": 1000,
                             **({"page_token": token} if token else {})})
            out.extend(conv.parse_experiment(e) for e in doc.get("experiments") or [])
            token = doc.get("next_page_token")
            if not token:
                return out

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self.call("POST", "/experiments/update", {"experiment_id": experiment_id, "new_name": new_name})

    def delete_experiment(self, experiment_id: str) -> None:
        self.call("POST", "/experiments/delete", {"experiment_id": experiment_id})

    def restore_experiment(self, experiment_id: str) -> None:
        self.call("POST", "/experiments/restore", {"experiment_id": experiment_id})

    def set_experiment_tags(self, experiment_id: str, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.call("POST", "/experiments/set-experiment-tag",
                      {"experiment_id": experiment_id, "key": key, "value": str(value)})

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self.call("POST", "/experiments/delete-experiment-tag", {"experiment_id": experiment_id, "key": key})

    # -- runs ------------------------------------------------------------------------------------------
    def create_run(self, experiment_id: str | None, user_id: str | None = None, start_time: int | None = None,
                   tags: dict[str, Any] | list[Any] | None = None, run_name: str | None = None) -> Run:
        from .layout import now_ms

        tag_dict = dict(tags) if isinstance(tags, dict) else {t.key: t.value for t in tags or []}
        body: dict[str, Any] = {"experiment_id": str(experiment_id or "0"),
                                "start_time": int(start_time if start_time is not None else now_ms()),
                                "tags": conv.key_values(tag_dict)}
        if user_id or tag_dict.get("mlflow.user"):
            body["user_id"] = user_id or tag_dict["mlflow.user"]
        if run_name:
            body["run_name"] = run_name
        return conv.parse_run(self.call("POST", "/runs/create", body)["run"])

    def get_run(self, run_id: str) -> Run:
        return conv.parse_run(self.call("GET", "/runs/get", query={"run_id": run_id})["run"])

    def resolve_run_id(self, ref: str) -> str:
        run_id: str = self.gitexp_call("GET", "/runs/resolve-id", query={"ref": ref})["run_id"]
        return run_id

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        out: list[Metric] = []
        token = None
        while True:
            doc = self.call("GET", "/metrics/get-history",
                            query={"run_id": run_id, "metric_key": key, "max_results": 25000, "page_token": token})
            out.extend(conv.parse_metric(m, run_id) for m in doc.get("metrics") or [])
            token = doc.get("next_page_token")
            if not token:
                return out

    def metric_history_arrays(self, run_id: str, key: str) -> tuple[Any, ...]:
        from .histories import arrays

        return arrays([(m.step, m.timestamp, m.value) for m in self.get_metric_history(run_id, key)])

    def log_metric(self, run_id: str, key: str, value: Any, timestamp: int | None, step: int | None) -> None:
        from .layout import now_ms

        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise InvalidParameterValue(f"Metric value for {key!r} must be a number, got {value!r} "
                                            f"({type(value).__name__})", key=key) from None
        self.call("POST", "/runs/log-metric",
                  {"run_id": run_id, "key": key, "value": conv.number(float(value)),
                   "timestamp": int(timestamp if timestamp is not None else now_ms()), "step": int(step or 0)})

    def log_batch(self, run_id: str, metrics: Iterable[Metric] = (), params: Iterable[Any] = (),
                  tags: Iterable[Any] = ()) -> None:
        from .layout import now_ms

        m = [conv.metric_in(x.key, float(x.value), int(x.timestamp if x.timestamp is not None else now_ms()),
                            int(x.step or 0), x.model_id, x.dataset_name, x.dataset_digest)
             for x in metrics]
        p = [{"key": x.key, "value": str(x.value)} for x in params]
        t = [{"key": x.key, "value": str(x.value)} for x in tags]
        # Params and tags first (in chunks of 100), then metrics: a rejected param fails before any metric.
        first = True
        while first or p or t or m:
            first = False
            body: dict[str, Any] = {"run_id": run_id, "params": p[:_BATCH_PARAMS_TAGS]}
            p = p[_BATCH_PARAMS_TAGS:]
            room = _BATCH_PARAMS_TAGS - len(body["params"])
            body["tags"], t = t[:room], t[room:]
            room = min(_BATCH_METRICS, _BATCH_TOTAL - len(body["params"]) - len(body["tags"]))
            body["metrics"], m = m[:room], m[room:]
            self.call("POST", "/runs/log-batch", body)

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.call("POST", "/runs/set-tag", {"run_id": run_id, "key": key, "value": str(value)})

    def delete_tag(self, run_id: str, key: str) -> None:
        self.call("POST", "/runs/delete-tag", {"run_id": run_id, "key": key})

    def log_inputs(self, run_id: str, inputs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        datasets = [{"dataset": {k: v for k, v in d.items() if v is not None}, "tags": conv.key_values(t)}
                    for d, t in inputs]
        self.call("POST", "/runs/log-inputs", {"run_id": run_id, "datasets": datasets})

    def record_code(self, run_id: str, code: dict[str, Any], tags: dict[str, str]) -> None:
        self.gitexp_call("POST", "/runs/record-code", {"run_id": run_id, "code": code, "tags": tags})

    def capture_code(self, run_id: str, capture: Any) -> None:
        capture()  # now, before the run can end: the server cannot wait for this process

    def code_patch(self, run_id: str) -> bytes:
        diff: str = self.gitexp_call("GET", "/runs/code-diff", query={"run_id": run_id})["diff"]
        return diff.encode("utf-8")

    def update_run_info(self, run_id: str, status: str | int | None = None, end_time: int | None = None,
                        run_name: str | None = None) -> None:
        body: dict[str, Any] = {"run_id": run_id}
        if status is not None:
            body["status"] = RunStatus.to_string(status) if isinstance(status, int) else str(status)
            RunStatus.from_string(body["status"])
        if end_time is not None:
            body["end_time"] = int(end_time)
        if run_name:
            body["run_name"] = run_name
        self.call("POST", "/runs/update", body)

    def delete_run(self, run_id: str) -> None:
        self.call("POST", "/runs/delete", {"run_id": run_id})

    def restore_run(self, run_id: str) -> None:
        self.call("POST", "/runs/restore", {"run_id": run_id})

    def flush(self, run_id: str | None = None) -> None:
        """Ask the server to commit now what it holds (of one run, or of all)."""
        self.gitexp_call("POST", "/flush", {"run_id": run_id} if run_id else {})

    def put_runs(self, records: Sequence[RunRecord]) -> dict[str, str]:
        """Whole runs with their own ids and times (gitexp import) are written into a repository."""
        raise self._needs_repository("importing runs (gitexp import)")

    # -- searching ---------------------------------------------------------------------------------------
    def search_runs(self, experiment_ids: Any, filter_string: str | None = "",
                    run_view_type: int = ViewType.ACTIVE_ONLY, max_results: int | None = 1000,
                    order_by: list[str] | None = None, page_token: str | None = None,
                    as_of: Any = None) -> PagedList[Run]:
        from ..search import check_view_type, experiment_id_list

        body: dict[str, Any] = {"experiment_ids": experiment_id_list(experiment_ids),
                                "filter": filter_string or "",
                                "run_view_type": _VIEW[check_view_type(run_view_type)],
                                "order_by": list(order_by or [])}
        if max_results is not None:
            body["max_results"] = max_results
        if page_token:
            body["page_token"] = page_token
        if as_of is not None:
            body["as_of"] = as_of.isoformat() if hasattr(as_of, "isoformat") else str(as_of)
        doc = self.call("POST", "/runs/search", body)
        return PagedList([conv.parse_run(r) for r in doc.get("runs") or []], doc.get("next_page_token"))

    def search_runs_frame(self, experiment_ids: Any, filter_string: str | None = "",
                          run_view_type: int = ViewType.ACTIVE_ONLY, max_results: int | None = None,
                          order_by: list[str] | None = None, as_of: Any = None) -> pd.DataFrame:
        from ..search import check_max_results, runs_to_dataframe

        max_results = check_max_results(max_results, limit=None)
        runs: list[Run] = []
        token = None
        while max_results is None or len(runs) < max_results:
            size = 50000 if max_results is None else min(50000, max_results - len(runs))
            page = self.search_runs(experiment_ids, filter_string, run_view_type, size, order_by, token, as_of)
            runs.extend(page)
            token = page.token
            if not token:
                break
        return runs_to_dataframe(runs)

    def metric_histories(self, run_ids: list[str], keys: list[str] | None
                         ) -> list[tuple[str, str, int, int, float]]:
        rows: list[tuple[str, str, int, int, float]] = []
        for run_id in run_ids:
            wanted = sorted(self.get_run(run_id).data.metrics) if keys is None else keys
            for key in wanted:
                rows.extend((run_id, key, m.step, m.timestamp, m.value) for m in self.get_metric_history(run_id, key))
        return rows


class RestArtifacts:
    """A run's artifacts through the server's artifact proxy (RunArtifacts' methods)."""

    def __init__(self, store: RestStore) -> None:
        self.store = store
        self._roots: dict[str, str] = {}  # a run never changes experiment

    def _root(self, run_id: str) -> str:
        root = self._roots.get(run_id)
        if root is None:
            run = self.store.get_run(run_id)
            root = self._roots[run_id] = f"{run.info.experiment_id}/{run_id}/artifacts"
        return root

    def _put(self, root: str, path: str, local: str) -> None:
        from .artifacts import validate_artifact_path

        path = validate_artifact_path(path, "artifact path", allow_root=False)
        with open(local, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            resp = self.store.http.raw("PUT", f"{ARTIFACTS}/{root}/{urllib.parse.quote(path)}", fh,
                                       {"Content-Length": str(size), "Content-Type": "application/octet-stream"})
            self.store.http.decode(resp, resp.read(), "PUT", path)

    def log_path(self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        from .artifacts import join_artifact_path, validate_artifact_path

        local = os.fspath(local_path)
        dest = validate_artifact_path(artifact_path)
        if os.path.isdir(local):
            name = os.path.basename(os.path.normpath(os.path.abspath(local)))
            self.log_dir(run_id, local, join_artifact_path(dest, name))
            return
        if not os.path.isfile(local):
            raise InvalidParameterValue(
                f"Cannot log artifact {local!r}: no such file or directory (working directory: {os.getcwd()})",
                path=local)
        self._put(self._root(run_id), join_artifact_path(dest, os.path.basename(local)), local)

    def log_dir(self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        from .artifacts import join_artifact_path, validate_artifact_path

        local = os.fspath(local_dir)
        dest = validate_artifact_path(artifact_path)
        if not os.path.isdir(local):
            raise InvalidParameterValue(f"Cannot log artifacts from {local!r}: not a directory", path=local)
        root = self._root(run_id)
        for here, dirs, names in os.walk(local):
            dirs[:] = sorted(d for d in dirs if d.lower() != ".git")
            rel = os.path.relpath(here, local)
            rel = "" if rel == "." else rel.replace(os.sep, "/")
            for name in sorted(names):
                full = os.path.join(here, name)
                if os.path.isfile(full):
                    self._put(root, join_artifact_path(dest, rel, name), full)

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        from .artifacts import validate_artifact_path

        path = validate_artifact_path(artifact_file, "artifact_file", allow_root=False)
        tmp = tempfile.mkdtemp(prefix="gitexp-upload-")
        try:
            local = os.path.join(tmp, posixpath.basename(path))
            with open(local, "wb") as fh:
                fh.write(data)
            self._put(self._root(run_id), path, local)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def list(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        from .artifacts import validate_artifact_path

        path = validate_artifact_path(path, "path")
        doc = self.store.call("GET", "/artifacts/list", query={"run_id": run_id, "path": path or None})
        return [conv.parse_file_info(f) for f in doc.get("files") or []]

    def view(self, run_id: str) -> _RemoteView:
        return _RemoteView(self, run_id)

    def read_bytes(self, run_id: str, path: str) -> bytes:
        return self._get_file(path, f"{self._root(run_id)}/")

    def _get_file(self, path: str, prefix: str = "") -> bytes:
        """The bytes of the proxy's file at prefix + path (a run's root, or the shared area)."""
        from .artifacts import validate_artifact_path

        path = validate_artifact_path(path, "path", allow_root=False)
        resp = self.store.http.raw("GET", f"{ARTIFACTS}/{prefix}{urllib.parse.quote(path)}")
        data = resp.read()
        if resp.status != 200:
            self.store.http.decode(resp, data, "GET", path)
        return data

    def _walk(self, run_id: str, path: str) -> builtins.list[str]:
        files: builtins.list[str] = []
        for f in self.list(run_id, path or None):
            files.extend(self._walk(run_id, f.path) if f.is_dir else [f.path])
        return files

    def download(self, run_id: str, path: str | None, dst_path: str | os.PathLike[str] | None = None) -> str:
        from .artifacts import validate_artifact_path

        path = validate_artifact_path(path, "path")
        dst = os.path.abspath(os.fspath(dst_path)) if dst_path is not None else tempfile.mkdtemp(
            prefix="gitexp-artifacts-")
        os.makedirs(dst, exist_ok=True)
        files = self._walk(run_id, path)
        if not files:
            if not path:
                return dst
            files = [path]  # a single file (or a missing path: read_bytes says which)
        for name in files:
            target = os.path.join(dst, *name.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(self.read_bytes(run_id, name))
        return os.path.join(dst, *path.split("/")) if path else dst

    def local_copy(self, run_id: str, path: str) -> str:
        """A local copy of the artifact (a new temporary one: this process keeps no cache of a server's)."""
        return self.download(run_id, path)


    # -- the shared area (the proxy's paths that are not a run's) ------------------------------------
    def log_shared(self, path: str, source: BinaryIO, size: int) -> None:
        from .artifacts import validate_artifact_path

        path = validate_artifact_path(path, "artifact path", allow_root=False)
        resp = self.store.http.raw("PUT", f"{ARTIFACTS}/{urllib.parse.quote(path)}", source,
                                   {"Content-Length": str(size), "Content-Type": "application/octet-stream"})
        self.store.http.decode(resp, resp.read(), "PUT", path)

    def list_shared(self, path: str | None = None) -> builtins.list[FileInfo]:
        from .artifacts import validate_artifact_path

        path = validate_artifact_path(path, "path")
        resp = self.store.http.raw("GET", f"{ARTIFACTS}?path={urllib.parse.quote(path)}")
        doc = self.store.http.decode(resp, resp.read(), "GET", path)
        return [conv.parse_file_info(f, path) for f in doc.get("files") or []]

    def read_shared(self, path: str, out: BinaryIO) -> None:
        out.write(self._get_file(path))


class _RemoteView:
    """The one question log_model asks of a run's artifacts: is a path a file, a directory, or free."""

    def __init__(self, artifacts: RestArtifacts, run_id: str) -> None:
        self.artifacts = artifacts
        self.run_id = run_id

    def kind(self, path: str) -> str | None:
        """'file', 'dir' or None (free), as ArtifactView.kind."""
        if not path.strip("/"):
            return "dir"
        parent = posixpath.dirname(path.strip("/"))
        for f in self.artifacts.list(self.run_id, parent or None):
            if f.path == path.strip("/"):
                return "dir" if f.is_dir else "file"
        return None


class RestRegistry:
    """The model registry of the server (ModelRegistry's methods, over REST)."""

    def __init__(self, store: RestStore) -> None:
        self.store = store

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              query: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.store.call(method, path, body, query)

    def create_registered_model(self, name: str, tags: dict[str, Any] | None = None,
                                description: str | None = None) -> RegisteredModel:
        body: dict[str, Any] = {"name": name, "tags": conv.key_values(tags or {})}
        if description is not None:
            body["description"] = description
        return conv.parse_registered_model(self._call("POST", "/registered-models/create", body)["registered_model"])

    def get_registered_model(self, name: str) -> RegisteredModel:
        return conv.parse_registered_model(
            self._call("GET", "/registered-models/get", query={"name": name})["registered_model"])

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        return conv.parse_registered_model(
            self._call("POST", "/registered-models/rename", {"name": name, "new_name": new_name})["registered_model"])

    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        return conv.parse_registered_model(
            self._call("PATCH", "/registered-models/update",
                       {"name": name, "description": description})["registered_model"])

    def delete_registered_model(self, name: str) -> None:
        self._call("DELETE", "/registered-models/delete", {"name": name})

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        self._call("POST", "/registered-models/set-tag", {"name": name, "key": key, "value": str(value)})

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._call("DELETE", "/registered-models/delete-tag", {"name": name, "key": key})

    def _all(self, path: str, key: str, parse: Callable[[dict[str, Any]], _T], page_size: int) -> list[_T]:
        out: list[_T] = []
        token = None
        while True:
            doc = self._call("GET", path, query={"max_results": page_size, "page_token": token})
            out.extend(parse(x) for x in doc.get(key) or [])
            token = doc.get("next_page_token")
            if not token:
                return out

    def list_registered_models(self) -> list[RegisteredModel]:
        return self._all("/registered-models/search", "registered_models", conv.parse_registered_model, 1000)

    def list_model_versions(self) -> list[ModelVersion]:
        return self._all("/model-versions/search", "model_versions", conv.parse_model_version, 200_000)

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        doc = self._call("POST", "/registered-models/get-latest-versions", {"name": name, "stages": stages or []})
        return [conv.parse_model_version(v) for v in doc.get("model_versions") or []]

    def create_model_version(self, name: str, source: str, run_id: str | None = None,
                             tags: dict[str, Any] | None = None,
                             run_link: str | None = None, description: str | None = None,
                             model_id: str | None = None) -> ModelVersion:
        body: dict[str, Any] = {"name": name, "source": source, "tags": conv.key_values(tags or {})}
        for key, value in (("run_id", run_id), ("run_link", run_link), ("description", description),
                           ("model_id", model_id)):
            if value is not None:
                body[key] = value
        return conv.parse_model_version(self._call("POST", "/model-versions/create", body)["model_version"])

    def get_model_version(self, name: str, version: Any) -> ModelVersion:
        return conv.parse_model_version(
            self._call("GET", "/model-versions/get", query={"name": name, "version": str(version)})["model_version"])

    def update_model_version(self, name: str, version: Any, description: str | None = None) -> ModelVersion:
        return conv.parse_model_version(
            self._call("PATCH", "/model-versions/update",
                       {"name": name, "version": str(version), "description": description})["model_version"])

    def transition_model_version_stage(self, name: str, version: Any, stage: str,
                                       archive_existing_versions: bool) -> ModelVersion:
        return conv.parse_model_version(self._call(
            "POST", "/model-versions/transition-stage",
            {"name": name, "version": str(version), "stage": stage,
             "archive_existing_versions": bool(archive_existing_versions)})["model_version"])

    def delete_model_version(self, name: str, version: Any) -> None:
        self._call("DELETE", "/model-versions/delete", {"name": name, "version": str(version)})

    def set_model_version_tag(self, name: str, version: Any, key: str, value: Any) -> None:
        self._call("POST", "/model-versions/set-tag",
                   {"name": name, "version": str(version), "key": key, "value": str(value)})

    def delete_model_version_tag(self, name: str, version: Any, key: str) -> None:
        self._call("DELETE", "/model-versions/delete-tag", {"name": name, "version": str(version), "key": key})

    def set_registered_model_alias(self, name: str, alias: str, version: Any) -> None:
        self._call("POST", "/registered-models/alias", {"name": name, "alias": alias, "version": str(version)})

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._call("DELETE", "/registered-models/alias", {"name": name, "alias": alias})

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return conv.parse_model_version(
            self._call("GET", "/registered-models/alias", query={"name": name, "alias": alias})["model_version"])

    def get_model_version_download_uri(self, name: str, version: Any) -> str:
        return conv.proxy_uri_to_runs(self._call("GET", "/model-versions/get-download-uri",
                                                 query={"name": name, "version": str(version)})["artifact_uri"])

    def resolve(self, uri: str) -> ModelVersion:
        from .registry._uris import ModelsUri, resolve_version

        def latest(parsed: ModelsUri) -> ModelVersion:
            stages = [parsed.stage] if parsed.stage is not None else None
            versions = self.get_latest_versions(parsed.name, stages)  # the highest per stage
            if not versions:
                where = f" in stage '{parsed.stage}'" if parsed.stage else ""
                raise ResourceDoesNotExist(f"Model {parsed.name!r} has no version{where}", name=parsed.name)
            return max(versions, key=lambda v: v.version)

        version: ModelVersion = resolve_version(self, uri, latest)
        return version

    def history(self, name: str) -> list[Any]:
        doc = self.store.gitexp_call("GET", "/registered-models/history", query={"name": name})
        return [conv.parse_history_entry(e) for e in doc.get("history") or []]


class RestLoggedModels:
    """Logged models of the server (LoggedModels' methods, over REST)."""

    def __init__(self, store: RestStore) -> None:
        self.store = store

    def log_metrics(self, run_id: str, metrics: Sequence[Any]) -> None:
        raise self.store._needs_repository("linking a run's metric points to logged models (gitexp import)")

    def create(self, experiment_id: str | None, name: str | None = None, source_run_id: str | None = None,
               tags: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
               model_type: str | None = None, model_id: str | None = None) -> LoggedModel:
        if model_id is not None:
            raise self.store._needs_repository("creating a logged model with a given id (gitexp import)")
        body: dict[str, Any] = {"experiment_id": str(experiment_id if experiment_id is not None else "0"),
                                "tags": conv.key_values(tags or {}), "params": conv.key_values(params or {})}
        for key, value in (("name", name), ("source_run_id", source_run_id), ("model_type", model_type)):
            if value is not None:
                body[key] = value
        return conv.parse_logged_model(self.store.call("POST", "/logged-models", body)["model"])

    def get(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        from .logged_models import check_model_id

        query = {"allow_deleted": "true"} if allow_deleted else None
        return conv.parse_logged_model(self.store.call("GET", f"/logged-models/{check_model_id(model_id)}",
                                                       query=query)["model"])

    def finalize(self, model_id: str, status: Any) -> LoggedModel:
        from ..entities.logged_model import LoggedModelStatus
        from .logged_models import check_model_id

        proto = LoggedModelStatus.to_proto_name(LoggedModelStatus.canonical(status))
        return conv.parse_logged_model(self.store.call("PATCH", f"/logged-models/{check_model_id(model_id)}",
                                                       {"model_id": model_id, "status": proto})["model"])

    def set_tags(self, model_id: str, tags: dict[str, Any]) -> None:
        from .logged_models import check_model_id

        self.store.call("PATCH", f"/logged-models/{check_model_id(model_id)}/tags", {"tags": conv.key_values(tags)})

    def delete_tag(self, model_id: str, key: str) -> None:
        from .logged_models import check_model_id

        self.store.call("DELETE", f"/logged-models/{check_model_id(model_id)}/tags/{urllib.parse.quote(key, safe='')}")

    def log_params(self, model_id: str, params: dict[str, Any]) -> None:
        from .logged_models import check_model_id

        self.store.call("POST", f"/logged-models/{check_model_id(model_id)}/params",
                        {"params": conv.key_values(params)})

    def delete(self, model_id: str) -> None:
        from .logged_models import check_model_id

        self.store.call("DELETE", f"/logged-models/{check_model_id(model_id)}")

    def search(self, experiment_ids: Sequence[str], filter_string: str | None = None,
               datasets: Sequence[dict[str, Any]] | None = None, max_results: int | None = None,
               order_by: Sequence[Any] | None = None, page_token: str | None = None) -> PagedList[Any]:
        body: dict[str, Any] = {"experiment_ids": list(experiment_ids),
                                "order_by": [o if isinstance(o, dict) else {"field_name": o} for o in order_by or []],
                                "datasets": list(datasets or [])}
        for key, value in (("filter", filter_string), ("max_results", max_results), ("page_token", page_token)):
            if value is not None:
                body[key] = value
        doc = self.store.call("POST", "/logged-models/search", body)
        return PagedList([conv.parse_logged_model(m) for m in doc.get("models") or []], doc.get("next_page_token"))

    def log_run_inputs(self, run_id: str, model_ids: Sequence[str]) -> None:
        self.store.call("POST", "/runs/log-inputs", {"run_id": run_id, "models": [{"model_id": m} for m in model_ids]})

    def log_run_outputs(self, run_id: str, outputs: Sequence[tuple[str, int]]) -> None:
        self.store.call("POST", "/runs/outputs",
                        {"run_id": run_id, "models": [{"model_id": m, "step": step} for m, step in outputs]})

    def for_run(self, run_id: str) -> list[Any]:
        run = self.store.get_run(run_id)
        found = self.search([run.info.experiment_id], max_results=10_000)
        return [m for m in found if run_id in (m.source_run_id, m.artifact_location.split("/")[1])]
