"""Where a dataset came from: a file, a URL, a cloud URI, or the code that built it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any
from urllib.parse import urlparse

from ..exceptions import InvalidParameterValue


class DatasetSource:
    """Base class: a source has a type, a JSON form, and (usually) can be loaded."""

    source_type = "unknown"

    def _get_source_type(self) -> str:
        return self.source_type

    def to_dict(self) -> dict[str, Any]:
        raise InvalidParameterValue(f"{type(self).__name__} cannot be serialized")

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, source_dict: dict[str, Any]) -> DatasetSource:
        raise InvalidParameterValue(f"{cls.__name__} cannot be read back")

    @classmethod
    def from_json(cls, source_json: str) -> DatasetSource:
        return cls.from_dict(json.loads(source_json))

    def load(self, dst_path: str | None = None) -> str:
        raise InvalidParameterValue(f"A {self.source_type!r} dataset source has nothing to download")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.to_json()}>"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and isinstance(other, DatasetSource) and self.to_dict() == other.to_dict()


class CodeDatasetSource(DatasetSource):
    """A dataset built in code; its tags say which script (as MLflow's source type 'code')."""

    source_type = "code"

    def __init__(self, tags: dict[str, Any]) -> None:
        self.tags = dict(tags or {})

    def to_dict(self) -> dict[str, Any]:
        return {"tags": self.tags}

    @classmethod
    def from_dict(cls, source_dict: dict[str, Any]) -> CodeDatasetSource:
        return cls(source_dict.get("tags") or {})

    def load(self, dst_path: str | None = None) -> str:
        raise InvalidParameterValue(
            "This dataset was built in code (its source is the script that made it), so there is no "
            f"file to download; the script: {self.tags.get('mlflow.source.name', 'unknown')}")


class LocalArtifactDatasetSource(DatasetSource):
    """A file or directory on the local file system (source type 'local')."""

    source_type = "local"

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri}

    @classmethod
    def from_dict(cls, source_dict: dict[str, Any]) -> LocalArtifactDatasetSource:
        return cls(_required(source_dict, "uri", cls))

    def load(self, dst_path: str | None = None) -> str:
        path = urlparse(self.uri).path if self.uri.startswith("file:") else self.uri
        if not os.path.exists(path):
            raise InvalidParameterValue(f"Dataset source {path!r} does not exist on this machine")
        if dst_path is None:
            return os.path.abspath(path)
        os.makedirs(dst_path, exist_ok=True)
        target = os.path.join(dst_path, os.path.basename(os.path.normpath(path)))
        if os.path.isdir(path):
            shutil.copytree(path, target, dirs_exist_ok=True)
        else:
            shutil.copy2(path, target)
        return target


class HTTPDatasetSource(DatasetSource):
    """A dataset at an http(s) URL (source type 'http')."""

    source_type = "http"

    def __init__(self, url: str) -> None:
        self.url = url

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url}

    @classmethod
    def from_dict(cls, source_dict: dict[str, Any]) -> HTTPDatasetSource:
        return cls(_required(source_dict, "url", cls))

    def load(self, dst_path: str | None = None) -> str:
        import urllib.request

        dst = dst_path or tempfile.mkdtemp(prefix="gitexp-dataset-")
        os.makedirs(dst, exist_ok=True)
        name = os.path.basename(urlparse(self.url).path) or "dataset_source"
        target = os.path.join(dst, name)
        with urllib.request.urlopen(self.url) as response, open(target, "wb") as out:  # the user's own URL
            shutil.copyfileobj(response, out)
        return target


class URIDatasetSource(DatasetSource):
    """A dataset at a cloud or other URI (s3://, gs://, hf://...); source type is the scheme."""

    def __init__(self, uri: str, source_type: str | None = None) -> None:
        self.uri = uri
        self.source_type = source_type or urlparse(uri).scheme

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri}

    @classmethod
    def from_dict(cls, source_dict: dict[str, Any]) -> URIDatasetSource:
        return cls(_required(source_dict, "uri", cls))

    def load(self, dst_path: str | None = None) -> str:
        import fsspec

        dst = dst_path or tempfile.mkdtemp(prefix="gitexp-dataset-")
        fs, path = fsspec.core.url_to_fs(self.uri)
        target = os.path.join(dst, os.path.basename(path.rstrip("/")))
        fs.get(path, target, recursive=True)
        return target


def _required(d: dict[str, Any], key: str, cls: type) -> str:
    if key not in d:
        raise InvalidParameterValue(f"Cannot read a {cls.__name__} without {key!r}: {d!r}")
    value: str = d[key]
    return value


def resolve_dataset_source(source: Any) -> DatasetSource:
    """A DatasetSource for a path, file:// or http(s):// URL, or cloud URI."""
    if isinstance(source, DatasetSource):
        return source
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source:
        raise InvalidParameterValue(
            f"A dataset source is a path or URI string (or a DatasetSource), got {source!r}")
    scheme = urlparse(source).scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:
        return LocalArtifactDatasetSource(source)
    if scheme in ("http", "https"):
        return HTTPDatasetSource(source)
    return URIDatasetSource(source)


def code_source() -> CodeDatasetSource:
    from ..fluent import _source_tags

    return CodeDatasetSource(_source_tags())


_BY_TYPE: dict[str, type[DatasetSource]] = {
    "code": CodeDatasetSource,
    "local": LocalArtifactDatasetSource,
    "http": HTTPDatasetSource,
}


def source_from_entity(source_type: str, source_json: str) -> DatasetSource:
    """Rebuild the source of a logged dataset from its type and JSON."""
    doc = json.loads(source_json) if source_json else {}
    cls = _BY_TYPE.get(source_type)
    if cls is not None:
        return cls.from_dict(doc)
    if "uri" in doc:
        return URIDatasetSource(doc["uri"], source_type)
    raise InvalidParameterValue(f"Unknown dataset source type {source_type!r} ({source_json})")
