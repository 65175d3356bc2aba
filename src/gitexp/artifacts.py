"""``gitexp.artifacts``: download, list and read artifacts by URI (as ``mlflow.artifacts``).

Artifact URIs are ``runs:/<run_id>/<path>`` or local paths (``file://`` or
plain).  Other schemes can be taught with :func:`register_uri_scheme`: a
scheme handler turns its URI into one of those (the model registry maps
``models:/<name>/<version>`` to the ``runs:/`` URI of the version's source).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from .entities import FileInfo
from .exceptions import InvalidParameterValue, ResourceDoesNotExist

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from .client import Client

_SCHEMES: dict[str, Callable[[str], str]] = {}


def register_uri_scheme(scheme: str, to_uri: Callable[[str], str]) -> None:
    """Teach every artifact and model loader a URI scheme.

    ``to_uri(uri)`` returns an equivalent ``runs:/`` URI or local path (or a
    URI of another registered scheme).  Used by the registry for ``models:/``.
    """
    _SCHEMES[scheme.lower()] = to_uri


def _models_uri(uri: str) -> str:
    """models:/<name>/<version|stage|latest> and models:/<name>@<alias>: the version's source."""
    from .fluent import _client as fluent_client
    from .store.logged_models import model_id_from_uri

    client = fluent_client()
    model_id = model_id_from_uri(uri)
    if model_id is not None:  # models:/m-<id>[/path]: a logged model (MLflow 3)
        rest = uri[len("models:"):].lstrip("/")[len(model_id):].strip("/")
        location = client.get_logged_model(model_id).artifact_location
        return f"{location}/{rest}" if rest else location
    version = client.resolve_model_version(uri)
    return client.get_model_version_download_uri(version.name, version.version)


register_uri_scheme("models", _models_uri)


@dataclass(frozen=True)
class ArtifactLocation:
    """Where a URI points: a run's artifact path, or a local path."""

    run_id: str | None = None
    path: str = ""
    local_path: str | None = None


def parse_artifact_uri(uri: str | os.PathLike[str]) -> ArtifactLocation:
    """Resolve an artifact URI (following registered schemes) to a run path or a local path."""
    from .store.artifacts import validate_artifact_path

    uri = os.fspath(uri)
    for _ in range(10):
        if not isinstance(uri, str) or not uri:
            raise InvalidParameterValue(f"An artifact URI must be a non-empty string, got {uri!r}")
        parsed = urlparse(uri)
        scheme = parsed.scheme.lower()
        if scheme == "runs":
            rest = uri.split(":", 1)[1].lstrip("/")
            run_id, _, path = rest.partition("/")
            if not run_id:
                raise InvalidParameterValue(
                    f"Artifact URI {uri!r} names no run; use runs:/<run_id>/<path>", uri=uri)
            return ArtifactLocation(run_id=run_id, path=validate_artifact_path(path, "path in " + uri))
        if scheme in ("", "file") or len(scheme) == 1:
            local = unquote(parsed.path) if scheme == "file" else uri
            return ArtifactLocation(local_path=os.path.abspath(os.path.expanduser(local)))
        handler = _SCHEMES.get(scheme)
        if handler is None:
            known = ", ".join(["runs:/", "local paths", *[f"{s}:/" for s in sorted(_SCHEMES)]])
            raise InvalidParameterValue(
                f"Unsupported artifact URI {uri!r}: gitexp reads {known}", uri=uri)
        uri = handler(uri)
    raise InvalidParameterValue(f"Artifact URI {uri!r} keeps redirecting; check the scheme handlers")


def _client(tracking_uri: str | None) -> Client:
    from .client import Client
    from .fluent import _client as fluent_client

    return Client(tracking_uri) if tracking_uri else fluent_client()


def _location(artifact_uri: str | None, run_id: str | None, artifact_path: str | None) -> ArtifactLocation:
    from .store.artifacts import validate_artifact_path

    if artifact_uri is not None:
        if run_id is not None or artifact_path is not None:
            raise InvalidParameterValue(
                "Pass either artifact_uri, or run_id (with an optional artifact_path), not both")
        return parse_artifact_uri(artifact_uri)
    if run_id is None:
        raise InvalidParameterValue("Pass artifact_uri or run_id")
    return ArtifactLocation(run_id=run_id, path=validate_artifact_path(artifact_path))


def download_artifacts(artifact_uri: str | None = None, run_id: str | None = None,
                       artifact_path: str | None = None, dst_path: str | None = None,
                       tracking_uri: str | None = None) -> str:
    """Download an artifact file or directory; returns its local path.

    >>> gitexp.artifacts.download_artifacts("runs:/1a2b.../model", dst_path="out")
    'out/model'
    """
    where = _location(artifact_uri, run_id, artifact_path)
    if where.local_path is not None:
        if not os.path.exists(where.local_path):
            raise ResourceDoesNotExist(f"No such file or directory: {where.local_path}", path=where.local_path)
        if dst_path is None:
            return where.local_path
        target = os.path.join(os.path.abspath(dst_path), os.path.basename(where.local_path.rstrip(os.sep)))
        os.makedirs(os.path.abspath(dst_path), exist_ok=True)
        if os.path.isdir(where.local_path):
            shutil.copytree(where.local_path, target, dirs_exist_ok=True)
        else:
            shutil.copy2(where.local_path, target)
        return target
    assert where.run_id is not None  # not a local path: a run's
    return _client(tracking_uri).download_artifacts(where.run_id, where.path, dst_path)


def list_artifacts(artifact_uri: str | None = None, run_id: str | None = None,
                   artifact_path: str | None = None, tracking_uri: str | None = None) -> list[FileInfo]:
    """FileInfo of each entry directly below an artifact directory."""
    where = _location(artifact_uri, run_id, artifact_path)
    if where.local_path is not None:
        if not os.path.isdir(where.local_path):
            return []
        out = []
        for name in sorted(os.listdir(where.local_path)):
            full = os.path.join(where.local_path, name)
            is_dir = os.path.isdir(full)
            out.append(FileInfo(name, is_dir, None if is_dir else os.path.getsize(full)))
        return out
    assert where.run_id is not None  # not a local path: a run's
    return _client(tracking_uri).list_artifacts(where.run_id, where.path or None)


def _read_bytes(artifact_uri: str) -> tuple[bytes, str]:
    where = parse_artifact_uri(artifact_uri)
    if where.local_path is not None:
        try:
            with open(where.local_path, "rb") as fh:
                return fh.read(), where.local_path
        except OSError as exc:
            raise ResourceDoesNotExist(f"Cannot read {where.local_path}: {exc.strerror}") from exc
    assert where.run_id is not None  # not a local path: a run's
    return _client(None).read_artifact(where.run_id, where.path), where.path


def load_text(artifact_uri: str) -> str:
    """The content of a text artifact."""
    return _read_bytes(artifact_uri)[0].decode("utf-8")


def load_dict(artifact_uri: str) -> dict[str, Any]:
    """A JSON or YAML artifact as a dict (YAML for .yaml/.yml)."""
    data, name = _read_bytes(artifact_uri)
    if name.lower().endswith((".yaml", ".yml")):
        import yaml

        loaded: dict[str, Any] = yaml.safe_load(data)
        return loaded
    try:
        parsed: dict[str, Any] = json.loads(data)
        return parsed
    except ValueError as exc:
        raise InvalidParameterValue(f"Artifact {artifact_uri!r} is not valid JSON: {exc}") from exc


def load_image(artifact_uri: str) -> PILImage:
    """An image artifact as a PIL image."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(_read_bytes(artifact_uri)[0]))
    image.load()
    return image


__all__ = ["download_artifacts", "list_artifacts", "load_dict", "load_image", "load_text", "parse_artifact_uri",
           "register_uri_scheme"]
