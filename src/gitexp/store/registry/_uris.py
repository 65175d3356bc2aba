"""models:/ URIs: parsing them, and resolving them to a version's source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from ...entities.model_registry import ModelVersionStages as STAGES
from ...exceptions import InvalidParameterValue


class ModelsUri:
    """A parsed models:/ URI: exactly one of version, stage, alias, or latest (all None)."""

    def __init__(self, name: str, version: int | None = None, stage: str | None = None,
                 alias: str | None = None):
        self.name = name
        self.version = version
        self.stage = stage
        self.alias = alias


def _bad_models_uri(uri: str, why: str = "") -> InvalidParameterValue:
    return InvalidParameterValue(
        f"Not a proper models:/ URI: {uri!r}{' (' + why + ')' if why else ''}. Models URIs must be "
        "'models:/<name>/<version>', 'models:/<name>/<stage>', 'models:/<name>/latest' or "
        "'models:/<name>@<alias>'.", uri=uri)


def parse_models_uri(uri: str) -> ModelsUri:
    """Split models:/name/<version|stage|latest> and models:/name@alias, as MLflow does."""
    parsed = urlparse(str(uri), allow_fragments=False)
    if parsed.scheme != "models":
        raise _bad_models_uri(uri, "the scheme is not models:")
    path = parsed.path if not parsed.netloc else f"/{parsed.netloc}{parsed.path}"
    if not path.startswith("/") or len(path) <= 1:
        raise _bad_models_uri(uri)
    parts = path.lstrip("/").split("/")
    if len(parts) > 2 or parts[0].strip() == "":
        raise _bad_models_uri(uri)
    if len(parts) == 2:
        name, suffix = parts
        if suffix.strip() == "":
            raise _bad_models_uri(uri, "nothing after the name")
        if suffix.isdigit():
            return ModelsUri(name, version=int(suffix))
        if suffix.lower() == "latest":
            return ModelsUri(name)
        return ModelsUri(name, stage=STAGES.canonical(suffix))
    if "@" in parts[0]:
        name, _, alias = parts[0].rpartition("@")
        if not name or not alias.strip():
            raise _bad_models_uri(uri, "empty name or alias")
        return ModelsUri(name, alias=alias)
    raise _bad_models_uri(
        uri, "models:/<id> names a logged model, not a registered one; add a version, stage or @alias")


def resolve_version(registry: Any, uri: str, latest: Callable[[ModelsUri], Any]) -> Any:
    """The version a models:/ URI names, from a registry (the git one or a server's): a
    number or an alias directly, a stage or ``latest`` through `latest(parsed)`, the highest
    version among the candidates."""
    parsed = parse_models_uri(uri)
    if parsed.version is not None:
        return registry.get_model_version(parsed.name, parsed.version)
    if parsed.alias is not None:
        return registry.get_model_version_by_alias(parsed.name, parsed.alias)
    return latest(parsed)


def resolve_models_uri(store: Any, uri: str) -> str:
    """The source URI (runs:/<run_id>/<path> or a path) a models:/ URI names.

    ``models:/<name>/<version>``, ``models:/<name>/<stage>`` (the highest version in that
    stage, stage case-insensitive), ``models:/<name>/latest`` and ``models:/<name>@<alias>``.
    """
    registry = store.registry
    mv = registry.resolve(uri)
    return str(registry.get_model_version_download_uri(mv.name, mv.version))
