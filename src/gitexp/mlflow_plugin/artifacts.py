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
from typing import Any
from urllib.parse import quote, urlencode

from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.store.artifact.artifact_repo import ArtifactRepository

from ..exceptions import GitexpError
from ..store import rest_json as conv
from ..store.artifacts import validate_artifact_path
from ._target import Target, split_artifact_uri, target_for


def _mlflow_error(exc: GitexpError) -> MlflowException:
    try:
        code = ErrorCode.Value(exc.error_code)
    except ValueError:
        code = INVALID_PARAMETER_VALUE
    return MlflowException(exc.message, error_code=code)


class GitexpArtifactRepository(ArtifactRepository):
    """Artifacts of runs (and their logged models) on a repository's tracking branch."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        super().__init__(artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)
        root, branch, self.prefix = split_artifact_uri(artifact_uri)
        uri = "gitexp://" + quote(root if root.startswith("/") else "/" + root, safe="/:")
        self.target: Target = target_for(uri + ("?" + urlencode({"branch": branch}) if branch else ""))

    def _locate(self, path: str | None) -> tuple[str, str]:
        """(run id, path inside the run) of `path` below this repository's root."""
        run_id, inner, _run_root = self._place(path)
        return run_id, inner

    def _place(self, path: str | None) -> tuple[str, str, str]:
        """(run id, path inside the run, '<experiment>/<run>/artifacts') of `path` below the root."""
        full = posixpath.join(self.prefix, (path or "").lstrip("/")) if path else self.prefix
        try:
            clean = validate_artifact_path(full, "artifact path")
        except GitexpError as exc:
            raise _mlflow_error(exc) from exc
        exp, run_id, inner = conv.proxy_path_parts(clean)
        if run_id is None:
            raise MlflowException(
                f"No run artifact at {self.artifact_uri!r} + {path!r}: gitexp keeps artifacts at "
                "<experiment_id>/<run_id>/artifacts/<path> (a run's artifact_uri)", error_code=RESOURCE_DOES_NOT_EXIST)
        return run_id, inner, f"{exp}/{run_id}/artifacts"

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except GitexpError as exc:
            raise _mlflow_error(exc) from exc

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        run_id, inner = self._locate(artifact_path)
        self._call(self.target.client.log_artifact, run_id, local_file, inner or None)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        run_id, inner = self._locate(artifact_path)
        self._call(self.target.client.log_artifacts, run_id, local_dir, inner or None)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        run_id, inner, run_root = self._place(path)
        found = self._call(self.target.client.list_artifacts, run_id, inner or None)
        # The Client answers paths inside the run; MLflow wants them relative to this URI: the
        # run's artifacts, a directory in them, or (`mlflow server --artifacts-destination`) the root.
        base = self.prefix.strip("/")
        out = []
        for f in found:
            rel = posixpath.join(run_root, f.path)
            rel = posixpath.relpath(rel, base) if base else rel
            out.append(FileInfo(rel, bool(f.is_dir), None if f.is_dir else f.file_size))
        return out

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        run_id, inner = self._locate(remote_file_path)
        data = self._call(self.target.client.read_artifact, run_id, inner)
        os.makedirs(os.path.dirname(os.path.abspath(local_path)), exist_ok=True)
        with open(local_path, "wb") as fh:
            fh.write(data)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        raise MlflowException(
            "gitexp does not delete artifacts: they are part of the tracking branch's history. Delete the "
            "run instead (mlflow.delete_run / `gitexp runs delete`), or log a new version of the file.",
            error_code=INVALID_PARAMETER_VALUE)
