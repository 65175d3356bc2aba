"""A run's artifact files where an MLflow store keeps them: a local path, a file: URI, any
fsspec URL (s3://, gs://...), or mlflow-artifacts:/ (a server's proxied root) mapped to a
local directory."""

from __future__ import annotations

import functools
import os
import urllib.parse
from typing import Any

from ..exceptions import InvalidParameterValue
from ._records import ArtifactFile


def _read_local(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _read_remote(fs: Any, path: str) -> bytes:
    return bytes(fs.cat_file(path))


def local_path(uri: str, artifacts_root: str | None) -> str | None:
    """The local directory of an artifact URI, or None when it is not on this machine."""
    if not uri:
        return None
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        return urllib.parse.unquote(parsed.path)
    if parsed.scheme == "mlflow-artifacts":
        if artifacts_root is None:
            raise InvalidParameterValue(
                f"Artifacts at {uri} are kept by a tracking server (its --artifacts-destination): "
                "import from the server's http(s):// URI, or pass --artifacts-root with that directory")
        return os.path.join(artifacts_root, urllib.parse.unquote(parsed.path).lstrip("/"))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return uri
    return None


def list_files(uri: str, artifacts_root: str | None = None) -> dict[str, ArtifactFile]:
    """path -> file for everything below `uri` (nothing when it does not exist)."""
    local = local_path(uri, artifacts_root)
    out: dict[str, ArtifactFile] = {}
    if local is not None:
        if not os.path.isdir(local):
            return out
        for root, dirs, names in os.walk(local):
            dirs.sort()
            for name in sorted(names):
                full = os.path.join(root, name)
                rel = os.path.relpath(full, local).replace(os.sep, "/")
                st = os.stat(full)
                out[rel] = ArtifactFile(functools.partial(_read_local, full), f"{st.st_size}:{st.st_mtime_ns}")
        return out
    import fsspec

    fs: Any
    fs, root = fsspec.core.url_to_fs(uri)
    if not fs.exists(root):
        return out
    for path, info in sorted(fs.find(root, detail=True).items()):
        rel = path[len(root):].lstrip("/")
        stamp = str(info.get("ETag") or info.get("md5Hash") or info.get("size"))
        out[rel] = ArtifactFile(functools.partial(_read_remote, fs, path), stamp)
    return out
