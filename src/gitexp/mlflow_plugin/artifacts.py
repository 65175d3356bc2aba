"""MLflow's artifact repository for gitexp: URIs (entry point ``mlflow.artifact_repository``).

A run's artifact URI, as the plugin reports it, is
``gitexp:///<repository>/.tracking/<experiment>/<run>/artifacts[/<path>]``; the files land on the
tracking branch through the Client (large files in the large-file store), as with
``gitexp.log_artifact``.  ``gitexp:///<repository>`` alone is a root under which MLflow passes
'<experiment>/<run>/artifacts/<path>' paths: what ``mlflow server --artifacts-destination``
does, so MLflow's own server keeps a run's files on the branch too.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from typing import Any
from urllib.parse import quote, urlencode

from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.store.artifact.artifact_repo import ArtifactRepository

from ..exceptions import GitexpError
from ..server._artifacts import ArtifactArea
from ..store.artifacts import validate_artifact_path
from ._target import Target, mlflow_error, split_artifact_uri, target_for


class GitexpArtifactRepository(ArtifactRepository):
    """Artifacts of runs (and their logged models) on a repository's tracking branch."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        super().__init__(artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)
        root, branch, self.prefix = split_artifact_uri(artifact_uri)
        uri = "gitexp://" + quote(root if root.startswith("/") else "/" + root, safe="/:")
        self.target: Target = target_for(uri + ("?" + urlencode({"branch": branch}) if branch else ""))
        self.area = ArtifactArea(self.target.client)

    def _path(self, path: str | None) -> str:
        """`path` below this URI, as a path of the artifact proxy (validated)."""
        full = posixpath.join(self.prefix, (path or "").lstrip("/")) if path else self.prefix
        try:
            return validate_artifact_path(full.strip("/"), "artifact path")
        except GitexpError as exc:
            raise mlflow_error(exc) from exc

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except GitexpError as exc:
            raise mlflow_error(exc) from exc

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        path = posixpath.join(self._path(artifact_path), os.path.basename(local_file))
        self._call(self.area.store_file, path, local_file)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        self._call(self.area.store_dir, self._path(artifact_path), local_dir)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        # The proxy names entries by their last part; MLflow wants them relative to this URI.
        rel = (path or "").strip("/")
        return [FileInfo(posixpath.join(rel, f["path"]) if rel else f["path"], bool(f["is_dir"]),
                         f.get("file_size"))
                for f in self._call(self.area.listing, self._path(path), False)]

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        tmp = tempfile.mkdtemp(prefix="gitexp-artifact-")
        try:
            local = self._call(self.area.download, self._path(remote_file_path), tmp)
            os.makedirs(os.path.dirname(os.path.abspath(local_path)), exist_ok=True)
            shutil.move(local, local_path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        raise MlflowException(
            "gitexp does not delete artifacts: they are part of the tracking branch's history. Delete the "
            "run instead (mlflow.delete_run / `gitexp runs delete`), or log a new version of the file.",
            error_code=INVALID_PARAMETER_VALUE)
