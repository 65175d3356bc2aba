"""The artifact proxy MLflow clients use for ``mlflow-artifacts:`` URIs.

    PUT  /api/2.0/mlflow-artifacts/artifacts/<path>   upload one file
    GET  /api/2.0/mlflow-artifacts/artifacts/<path>   download one file
    GET  /api/2.0/mlflow-artifacts/artifacts?path=... list a directory

A path ``<location>/<run_id>/artifacts/<path>`` of an existing run -- the location is the
experiment id, or the experiment's own ``mlflow-artifacts:`` location -- is that run's
artifact: an upload becomes ``Client.log_artifact`` on the run, so the file lands on the
tracking branch (or, above the size threshold, in the large-file store) like any other.
Every other path is a file of the shared area (``Client.log_shared_artifact``), on the
branch too.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from typing import Annotated, Any

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


class ArtifactArea:
    """The paths of the artifact proxy and what each is, over one Client: what the proxy's routes
    and the MLflow plugin's artifact repository (``mlflow_plugin/artifacts.py``) both do.

    ``<location>/<run_id>/artifacts/<path>`` of an existing run is the run's artifact; every other
    path a file of the shared area."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def run_of(self, path: str) -> tuple[str, str] | None:
        """(run_id, path inside the run) when `path` is an existing run's artifact path, else None."""
        _loc, run_id, inner = conv.proxy_path_parts(path)
        if run_id is None:
            return None
        try:
            self.client.get_run(run_id)
        except (ResourceDoesNotExist, InvalidParameterValue):
            return None  # not a run of this repository: a shared path that looks like one
        return run_id, inner

    def listing(self, path: str, file_as_itself: bool = True) -> list[dict[str, Any]]:
        """MLflow's file entries (named by their last part) directly below `path`. A file lists as
        itself, as MLflow's proxy answers (file_as_itself=False: as nothing, as its artifact
        repositories answer)."""
        client = self.client
        located = self.run_of(path)
        if located is not None:
            run_id, inner = located
            found = client.list_artifacts(run_id, inner or None)
            files = [conv.file_info(f, posixpath.basename(f.path)) for f in found]
            if not found and inner and file_as_itself:
                # MLflow lists a file as itself; a path that is neither file nor directory is empty.
                parent = posixpath.dirname(inner)
                match = [f for f in client.list_artifacts(run_id, parent or None) if f.path == inner]
                files = [conv.file_info(f, posixpath.basename(f.path)) for f in match]
            return files
        parts = path.split("/") if path else []
        entries: dict[str, dict[str, Any]] = {}
        if len(parts) == 0:  # the root: one directory per experiment
            entries.update({e.experiment_id: {"path": e.experiment_id, "is_dir": True}
                            for e in client.search_experiments(ViewType.ALL, None)})
        elif len(parts) == 1 and parts[0].isdigit():  # an experiment: one directory per run
            runs: list[Any] = []
            try:
                runs = list(client.search_runs([parts[0]], "", ViewType.ALL, 50000))
            except (ResourceDoesNotExist, InvalidParameterValue):
                pass
            entries.update({r.info.run_id: {"path": r.info.run_id, "is_dir": True} for r in runs})
        elif len(parts) == 2 and self.run_of(f"{path}/artifacts") is not None:
            entries["artifacts"] = {"path": "artifacts", "is_dir": True}
        shared = client.list_shared_artifacts(path or None)
        if not shared and path and file_as_itself:
            parent = posixpath.dirname(path)
            shared = [f for f in client.list_shared_artifacts(parent or None) if f.path == path and not f.is_dir]
        for f in shared:
            entries.setdefault(posixpath.basename(f.path), conv.file_info(f, posixpath.basename(f.path)))
        return list(entries.values())

    def download(self, path: str, tmp: str) -> str:
        """The file at `path` copied into the directory `tmp`; its local path."""
        client = self.client
        located = self.run_of(path)
        if located is None:
            if not path:
                raise InvalidParameterValue("Name a file to download, not the artifact root")
            return client.download_shared_artifact(path, tmp)
        run_id, inner = located
        if not inner:
            raise InvalidParameterValue(f"{path!r} is the run's artifact directory, not a file")
        if client.list_artifacts(run_id, inner):
            raise InvalidParameterValue(f"Artifact {inner!r} of run {run_id} is a directory, not a file; "
                                        "download its files one by one", run_id=run_id, path=inner)
        local = client.download_artifacts(run_id, inner, tmp)
        if not os.path.isfile(local):
            raise InvalidParameterValue(f"Artifact {inner!r} of run {run_id} is a directory, not a file",
                                        run_id=run_id, path=inner)
        return local

    def _target(self, path: str) -> tuple[str, str] | None:
        located = self.run_of(path)
        if located is not None and not located[1]:
            raise InvalidParameterValue(f"Upload to {path!r} names no file inside the run's artifacts")
        validate_artifact_path(posixpath.basename(located[1] if located is not None else path), "file name",
                               allow_root=False)
        return located

    def store_bytes(self, path: str, data: bytes) -> None:
        """Store `data` as the file at `path`."""
        located = self._target(path)
        if located is None:
            self.client.log_shared_bytes(data, path)
        else:
            self.client.log_bytes(located[0], data, located[1])

    def store_file(self, path: str, local: str) -> None:
        """Store the local file `local` as the file at `path` (its name is the path's last part)."""
        located = self._target(path)
        if located is None:
            self.client.log_shared_artifact(local, path)
            return
        head, tail = posixpath.split(located[1])
        if os.path.basename(local) == tail:
            self.client.log_artifact(located[0], local, head or None)
        else:
            with open(local, "rb") as fh:
                self.client.log_bytes(located[0], fh.read(), located[1])

    def store_dir(self, path: str, local_dir: str) -> None:
        """Store every file below `local_dir` under `path`, keeping the layout (one write for a run)."""
        located = self.run_of(path)
        if located is not None:
            self.client.log_artifacts(located[0], local_dir, located[1] or None)
            return
        for top, _dirs, files in os.walk(local_dir):
            for name in files:
                rel = os.path.relpath(os.path.join(top, name), local_dir).replace(os.sep, "/")
                self.client.log_shared_artifact(os.path.join(top, name), posixpath.join(path, rel))


def _file_response(local: str, name: str, tmp: str) -> FileResponse:
    return FileResponse(local, media_type=conv.artifact_media_type(name), filename=posixpath.basename(name),
                        headers={"X-Content-Type-Options": "nosniff"},
                        background=BackgroundTask(shutil.rmtree, tmp, True))


def router(client: Client) -> APIRouter:
    api = APIRouter(tags=["artifacts"])
    area = ArtifactArea(client)

    @api.get("/artifacts", response_model=s.ArtifactListResponse)
    def list_artifacts(q: Annotated[s.ArtifactListQuery, Query()]) -> JSON:
        return JSON({"files": area.listing(validate_artifact_path(q.path or "", "path"))})

    @api.get("/artifacts/{artifact_path:path}", responses={200: {"content": {"application/octet-stream": {}}}})
    def download_artifact(artifact_path: str) -> FileResponse:
        path = validate_artifact_path(artifact_path, "artifact path")
        tmp = tempfile.mkdtemp(prefix="gitexp-serve-")
        try:
            return _file_response(area.download(path, tmp), path, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @api.put("/artifacts/{artifact_path:path}", response_model=s.Empty)
    async def upload_artifact(artifact_path: str, request: Request) -> JSON:
        path = await run_in_threadpool(validate_artifact_path, artifact_path, "artifact path", False)
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) <= _IN_MEMORY:
            # Small files (nearly all of a model's): straight from memory, no temporary copy.
            data = await request.body()
            await run_in_threadpool(area.store_bytes, path, data)
            return JSON({})
        tmp = tempfile.mkdtemp(prefix="gitexp-upload-")
        try:
            local = os.path.join(tmp, posixpath.basename(path) or "upload")
            with open(local, "wb") as fh:
                async for chunk in request.stream():
                    fh.write(chunk)
            await run_in_threadpool(area.store_file, path, local)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return JSON({})

    @api.delete("/artifacts/{artifact_path:path}", response_model=s.Empty)
    def delete_artifact(artifact_path: str) -> JSON:
        validate_artifact_path(artifact_path, "artifact path")
        raise InvalidParameterValue(
            f"gitexp does not delete artifacts ({artifact_path!r}): they are part of the tracking branch's "
            "history. Delete the run instead (`gitexp runs delete`), or log a new version of the file.")

    return api
