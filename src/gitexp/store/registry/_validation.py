"""Checks of registry arguments: MLflow's rules, gitexp's messages."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from ... import _validation as valid
from ...exceptions import InvalidParameterValue

MAX_MODEL_NAME_LENGTH = 256
MAX_TAG_VALUE_LENGTH = 100_000
MAX_ALIAS_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 100_000


def model_name(name: Any, what: str = "name") -> str:
    if name is None or not isinstance(name, str) or name.strip() == "":
        raise InvalidParameterValue(
            f"Missing value for required parameter {what!r}: a registered model needs a non-empty "
            f"name, got {name!r}", name=name)
    valid.text("Registered model name" if what == "name" else f"Registered model {what}", name, name=name)
    if "/" in name or ":" in name:
        raise InvalidParameterValue(
            f"Invalid model name {name!r}: names cannot contain '/' or ':' (they would break "
            "models:/<name>/<version> URIs). Use '-' or '_' instead.", name=name)
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith(".."):
        raise InvalidParameterValue(
            f"Invalid model name {name!r}: names must not resolve to another name when treated as "
            f"a path (this one resolves to {norm!r})", name=name)
    if "\0" in name:
        raise InvalidParameterValue(f"Invalid model name {name!r}: it contains a NUL character", name=name)
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise InvalidParameterValue(
            f"Model name {name[:40]!r}... is {len(name)} characters long; the limit is "
            f"{MAX_MODEL_NAME_LENGTH}", name=name)
    return name


def version_number(version: Any) -> int:
    if isinstance(version, bool):
        version = str(version)
    try:
        number = int(str(version).strip()) if not isinstance(version, int) else version
    except ValueError:
        raise InvalidParameterValue(
            f"Parameter 'version' must be an integer, got {version!r}. Use the version number "
            "shown by `gitexp models versions NAME`.", version=version) from None
    return number


def tag_key(key: Any) -> str:
    return valid.validate_key("Tag", key)


def tag_value(key: str, value: Any) -> str:
    text = valid.text(f"Tag value for {key!r}", str(value), key=key)  # as MlflowClient: None becomes 'None'
    if len(text) > MAX_TAG_VALUE_LENGTH:
        raise InvalidParameterValue(
            f"Tag value for {key!r} is {len(text)} characters long; the limit is {MAX_TAG_VALUE_LENGTH}",
            key=key)
    return text


def description_text(description: Any) -> str | None:
    if description is None:
        return None
    text = valid.text("Description", str(description))
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise InvalidParameterValue(
            f"Description is {len(text)} characters long; the limit is {MAX_DESCRIPTION_LENGTH}")
    return text


def alias_name(alias: Any, for_setting: bool = False) -> str:
    if alias is None or alias == "":
        raise InvalidParameterValue("Registered model alias name cannot be empty.", alias=alias)
    if isinstance(alias, str):
        valid.text("Alias", alias, alias=alias)
    if not isinstance(alias, str) or not re.fullmatch(r"[\w\-]*", alias):
        raise InvalidParameterValue(
            f"Invalid alias name: {alias!r}. Names may only contain alphanumerics, underscores (_), "
            "and dashes (-).", alias=alias)
    if len(alias) > MAX_ALIAS_LENGTH:
        raise InvalidParameterValue(
            f"Alias {alias[:40]!r}... is {len(alias)} characters long; the limit is {MAX_ALIAS_LENGTH}",
            alias=alias)
    if for_setting:
        if alias.lower() == "latest":
            raise InvalidParameterValue(
                "'latest' alias name (case insensitive) is reserved: models:/<name>@latest always "
                "means the highest version. Choose another alias.", alias=alias)
        if re.fullmatch(r"[vV]\d+", alias):
            raise InvalidParameterValue(
                f"Version alias name {alias!r} is reserved (v<number> names a version). "
                "Choose another alias.", alias=alias)
    return alias


def checked_tags(tags: Any) -> dict[str, str]:
    """Tags (a dict, or entities with .key and .value) as a dict of checked keys and values."""
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        try:
            tags = {t.key: t.value for t in tags}
        except AttributeError:
            raise InvalidParameterValue(
                f"Tags must be a dict of key -> value, got {tags!r} ({type(tags).__name__})") from None
    out = {}
    for k, v in tags.items():
        key = tag_key(k)
        out[key] = tag_value(key, v)
    return out
