"""MLflow's rules for names and values, with errors that name the offending value."""

from __future__ import annotations

import math
import numbers
import posixpath
import re

from .exceptions import InvalidParameterValue

MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_VAL_LENGTH = 20000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000

_VALID_NAME = re.compile(r"^[/\w.\- :]*$")
_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_EXPERIMENT_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,63}$")


_VALID_KEYS: set[tuple[str, str]] = set()


def validate_key(kind: str, key: object) -> str:
    """A metric, param or tag name: MLflow's characters, never a path that escapes."""
    if (kind, key) in _VALID_KEYS:  # type: ignore[comparison-overlap]
        return key  # type: ignore[return-value]
    _check_key(kind, key)
    if len(_VALID_KEYS) < 100_000:
        _VALID_KEYS.add((kind, key))  # type: ignore[arg-type]
    return key  # type: ignore[return-value]


def _check_key(kind: str, key: object) -> None:
    if key is None or key == "":
        raise InvalidParameterValue(f"{kind} name must be a non-empty string, got {key!r}", key=key)
    if not isinstance(key, str):
        raise InvalidParameterValue(
            f"{kind} name must be a string, got {key!r} ({type(key).__name__})", key=key
        )
    if len(key) > MAX_ENTITY_KEY_LENGTH:
        raise InvalidParameterValue(
            f"{kind} name {key[:40]!r}... is {len(key)} characters long; "
            f"the limit is {MAX_ENTITY_KEY_LENGTH}",
            key=key,
        )
    if not _VALID_NAME.match(key):
        raise InvalidParameterValue(
            f"Invalid {kind.lower()} name {key!r}: names may only contain alphanumerics, "
            "underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)",
            key=key,
        )
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith("..") or norm.startswith("/"):
        raise InvalidParameterValue(
            f"Invalid {kind.lower()} name {key!r}: names are used as file names and must not "
            f"resolve to another name (this one resolves to {norm!r}); remove '..', leading "
            "or doubled slashes",
            key=key,
        )


def _length(kind: str, key: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidParameterValue(
            f"{kind} value for {key!r} is {len(value)} characters long; the limit is {limit}",
            key=key,
        )
    return value


def param_value(key: str, value: object) -> str:
    return _length("Param", key, str(value), MAX_PARAM_VAL_LENGTH)


def tag_value(key: str, value: object) -> str:
    return _length("Tag", key, str(value), MAX_TAG_VAL_LENGTH)


def experiment_tag_value(key: str, value: object) -> str:
    return _length("Experiment tag", key, str(value), MAX_EXPERIMENT_TAG_VAL_LENGTH)


def metric_value(key: str, value: object) -> float:
    kind = type(value)
    if kind is float:
        return value  # type: ignore[return-value]
    if kind is int:
        return float(value)  # type: ignore[arg-type]
    # bool is a Number but MLflow rejects it, and so do we.
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        if hasattr(value, "item") and hasattr(value, "shape") and getattr(value, "shape", None) == ():
            return metric_value(key, value.item())  # 0-d numpy array or tensor
        raise InvalidParameterValue(
            f"Metric value for {key!r} must be a number, got {value!r} ({type(value).__name__})",
            key=key,
            value=value,
        )
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise InvalidParameterValue(
            f"Metric value for {key!r} must be a real number, got {value!r} ({type(value).__name__})",
            key=key,
            value=value,
        ) from None


def metric_step(key: str, step: object) -> int:
    if type(step) is int:
        return step  # type: ignore[return-value]
    if step is None:
        return 0
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        if isinstance(step, float) and step.is_integer():
            return int(step)
        raise InvalidParameterValue(
            f"Step for metric {key!r} must be an integer, got {step!r} ({type(step).__name__})",
            key=key,
        )
    return int(step)


def metric_timestamp(key: str, timestamp: object) -> int:
    if type(timestamp) is int and timestamp >= 0:  # type: ignore[operator]
        return timestamp  # type: ignore[return-value]
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Number) or timestamp < 0:  # type: ignore[operator]
        raise InvalidParameterValue(
            f"Timestamp for metric {key!r} must be a non-negative integer of milliseconds, "
            f"got {timestamp!r}",
            key=key,
        )
    return int(timestamp)  # type: ignore[call-overload]


def run_id(value: object) -> str:
    if not isinstance(value, str) or not _RUN_ID.match(value):
        raise InvalidParameterValue(
            f"Invalid run id {value!r}: a run id is a string of letters, digits, '-' and '_' "
            "(gitexp makes 32-character hex ids)",
            run_id=value,
        )
    return value


def experiment_id(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _EXPERIMENT_ID.match(value):
        raise InvalidParameterValue(
            f"Invalid experiment id {value!r}: an experiment id is a string of digits such as '0'",
            experiment_id=value,
        )
    return value


def experiment_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterValue(
            f"Experiment name must be a non-empty string, got {name!r}", name=name
        )
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise InvalidParameterValue(
            f"Experiment name {name[:40]!r}... is {len(name)} characters long; "
            f"the limit is {MAX_EXPERIMENT_NAME_LENGTH}",
            name=name,
        )
    if "\0" in name:
        raise InvalidParameterValue(f"Experiment name {name!r} contains a NUL character", name=name)
    return name


def is_finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))
