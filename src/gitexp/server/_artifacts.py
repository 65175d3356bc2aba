"""The artifact proxy MLflow clients use for ``mlflow-artifacts:`` URIs.

    PUT  /api/2.0/mlflow-artifacts/artifacts/<exp>/<run_id>/artifacts/<path>   upload one file
    GET  /api/2.0/mlflow-artifacts/artifacts/<exp>/<run_id>/artifacts/<path>   download one file
    GET  /api/2.0/mlflow-artifacts/artifacts?path=<exp>/<run_id>/artifacts/... list a directory

Paths are the ones the server reports as run artifact URIs; an upload becomes
``Client.log_artifact`` on that run, so the file lands on the tracking branch
(or, above the size threshold, in the large-file store) like any other artifact.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse

from ..client import Client
from ..entities import ViewType
from ..exceptions import InvalidParameterValue, ResourceDoesNotExist
from ..store import rest_json as conv
from ..store.artifacts import validate_artifact_path
from . import _schemas as s
from ._responses import JSON

_IN_MEMORY = 4 << 20  # uploads up to this size are logged from memory


def _locate(path: str) -> tuple[str, str]:
    """(run_id, path inside the run) of a proxy path, or a clear 404."""
    clean = validate_artifact_path(path, "artifact path")
    _exp, run_id, inner = conv.proxy_path_parts(clean)
    if run_id is None:
        raise ResourceDoesNotExist(
            f"No artifact at {path!r}: gitexp serves run artifacts at <experiment_id>/<run_id>/artifacts/<path> "
            "(the run's artifact_uri)", path=path)
    return run_id, inner


def router(client: Client) -> APIRouter:
    api = APIRouter(tags=["artifacts"])

    @api.get("/artifacts", response_model=s.ArtifactListResponse)
    def list_artifacts(q: Annotated[s.ArtifactListQuery, Query()]) -> JSON:
        path = validate_artifact_path(q.path or "", "path")
        parts = path.split("/") if path else []
        if len(parts) == 0:  # the root: one directory per experiment
            files = [{"path": e.experiment_id, "is_dir": True}
                     for e in client.search_experiments(ViewType.ALL, None)]
        elif len(parts) == 1:  # an experiment: one directory per run
            runs = client.search_runs([parts[0]], "", ViewType.ALL, 50000)
            files = [{"path": r.info.run_id, "is_dir": True} for r in runs]
        elif len(parts) == 2:
            client.get_run(parts[1])
            files = [{"path": "artifacts", "is_dir": True}]
        else:
            run_id, inner = _locate(path)
            found = client.list_artifacts(run_id, inner or None)
            files = [conv.file_info(f, posixpath.basename(f.path)) for f in found]
            if not found and inner:
                # MLflow lists a file as itself; a path that is neither file nor directory is empty.
                parent = posixpath.dirname(inner)
                match = [f for f in client.list_artifacts(run_id, parent or None) if f.path == inner]
                files = [conv.file_info(f, posixpath.basename(f.path)) for f in match]
        return JSON({"files": files})

    @api.get("/artifacts/{artifact_path:path}", responses={200: {"content": {"application/octet-stream": {}}}})
    def download_artifact(artifact_path: str) -> FileResponse:
        run_id, inner = _locate(artifact_path)
        if not inner:
            raise InvalidParameterValue(f"{artifact_path!r} is the run's artifact directory, not a file")
        if client.list_artifacts(run_id, inner):
            raise InvalidParameterValue(f"Artifact {inner!r} of run {run_id} is a directory, not a file; "
                                        "download its files one by one", run_id=run_id, path=inner)
        tmp = tempfile.mkdtemp(prefix="gitexp-serve-")
        try:
            local = client.download_artifacts(run_id, inner, tmp)
            if not os.path.isfile(local):
                raise InvalidParameterValue(f"Artifact {inner!r} of run {run_id} is a directory, not a file",
                                            run_id=run_id, path=inner)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return FileResponse(local, media_type="application/octet-stream",
                            filename=posixpath.basename(inner),
                            background=BackgroundTask(shutil.rmtree, tmp, True))

    @api.put("/artifacts/{artifact_path:path}", response_model=s.Empty)
    async def upload_artifact(artifact_path: str, request: Request) -> JSON:
        run_id, inner = await run_in_threadpool(_locate, artifact_path)
        if not inner:
            raise InvalidParameterValue(f"Upload to {artifact_path!r} names no file inside the run's artifacts")
        head, tail = posixpath.split(inner)
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) <= _IN_MEMORY:
            # Small files (nearly all of a model's): straight from memory, no temporary copy.
            data = await request.body()
            validate_artifact_path(tail, "file name", allow_root=False)
            await run_in_threadpool(client.log_bytes, run_id, data, inner)
            return JSON({})
        tmp = tempfile.mkdtemp(prefix="gitexp-upload-")
        try:
            local = os.path.join(tmp, tail)
            with open(local, "wb") as fh:
                async for chunk in request.stream():
                    fh.write(chunk)
            await run_in_threadpool(client.log_artifact, run_id, local, head or None)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return JSON({})

    @api.delete("/artifacts/{artifact_path:path}", response_model=s.Empty)
    def delete_artifact(artifact_path: str) -> JSON:
        _locate(artifact_path)
        raise InvalidParameterValue(
            "gitexp does not delete artifacts: they are part of the tracking branch's history. "
            "Delete the run instead (`gitexp runs delete`), or log a new version of the file.")

    return api
