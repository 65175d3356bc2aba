"""MLflow's rules for names and values, with errors that name the offending value."""

from __future__ import annotations

import math
import numbers
import posixpath
import re
from typing import Any, cast

from .exceptions import InvalidParameterValue

MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_VAL_LENGTH = 20000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_VALID_NAME = re.compile(r"^[/\w.\- :]*$")
_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_EXPERIMENT_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,63}$")


_VALID_KEYS: set[tuple[str, object]] = set()  # (kind, name) of names checked already: strings


# -- text that can be stored --------------------------------------------------------------------
def shown(value: object, limit: int = 120, around: int | None = None) -> str:
    """repr(value) for a message: lone surrogates and control characters escaped, long values cut
    (around the index `around` when given, so the offending character stays visible)."""
    if isinstance(value, int) and abs(value).bit_length() >= 10_000:  # repr would refuse (or take long)
        return f"<{abs(value).bit_length()}-bit integer>"
    out = repr(value)
    if len(out) <= limit:
        return out
    if around is None or not isinstance(value, str):
        return out[:limit] + "..."
    start = max(0, around - limit // 2)
    piece = repr(value[start:start + limit])
    return ("..." if start else "") + piece + ("..." if start + limit < len(value) else "")


def text(what: str, value: str, **attributes: Any) -> str:
    """`value` unchanged if it can be stored (encoded as UTF-8), else InvalidParameterValue.

    Python strings may hold lone surrogates (U+D800..U+DFFF), which are not text: they come from
    bytes decoded with errors='surrogateescape' (os.fsdecode, os.listdir and sys.argv on a file
    name that is not UTF-8) or from JSON such as "\\ud800".  Nothing can write them to a file, so
    a value holding one would make every later commit of its run fail.
    """
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(value[exc.start])
        origin = (f", the byte 0x{bad - 0xDC00:02X} of a name that is not UTF-8 decoded with "
                  "errors='surrogateescape'" if 0xDC80 <= bad <= 0xDCFF else "")
        raise InvalidParameterValue(
            f"{what} is not valid text: {shown(value, around=exc.start)} contains the lone surrogate "
            f"'\\u{bad:04x}' at position {exc.start}{origin}. Lone surrogates cannot be encoded as UTF-8, "
            "so the value cannot be stored. They come from bytes decoded with errors='surrogateescape' "
            "(os.fsdecode, os.listdir or sys.argv on a file name that is not UTF-8) or from JSON such as "
            "\"\\ud800\": decode the bytes with their real encoding (e.g. raw.decode('latin-1')) or with "
            "raw.decode('utf-8', 'replace'), and send that text instead.",
            value=value, **attributes) from None
    return value


def validate_key(kind: str, key: object) -> str:
    """A metric, param or tag name: MLflow's characters, never a path that escapes."""
    if (kind, key) in _VALID_KEYS:
        return cast(str, key)  # a name checked before: a string
    name = _check_key(kind, key)
    if len(_VALID_KEYS) < 100_000:
        _VALID_KEYS.add((kind, name))
    return name


def _check_key(kind: str, key: object) -> str:
    """`key` if it is a valid name, else InvalidParameterValue."""
    if key is None or key == "":
        raise InvalidParameterValue(f"{kind} name must be a non-empty string, got {key!r}", key=key)
    if not isinstance(key, str):
        raise InvalidParameterValue(
            f"{kind} name must be a string, got {key!r} ({type(key).__name__})", key=key
        )
    text(f"{kind} name", key, key=key)
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
    return key


def _length(kind: str, key: str, value: str, limit: int) -> str:
    what = "Run name" if kind == "Tag" and key == "mlflow.runName" else f"{kind} value for {key!r}"
    text(what, value, key=key)
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
    if type(value) is float:
        return value
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            raise _too_large(key, value) from None
    # bool is a Number but MLflow rejects it, and so do we.
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        if hasattr(value, "item") and hasattr(value, "shape") and getattr(value, "shape", None) == ():
            return metric_value(key, value.item())  # 0-d numpy array or tensor
        raise InvalidParameterValue(
            f"Metric value for {key!r} must be a number, got {shown(value)} ({type(value).__name__})",
            key=key,
            value=value,
        )
    try:
        return float(value)  # type: ignore[arg-type]  # typeshed's Number has no __float__; real ones do
    except OverflowError:
        raise _too_large(key, value) from None
    except (TypeError, ValueError):
        raise InvalidParameterValue(
            f"Metric value for {key!r} must be a real number, got {shown(value)} ({type(value).__name__})",
            key=key,
            value=value,
        ) from None


def _too_large(key: str, value: object) -> InvalidParameterValue:
    return InvalidParameterValue(
        f"Metric value for {key!r} is too large: {shown(value, 60)} does not fit in a double (64-bit "
        "floating point, at most about 1.8e308), which is how MLflow stores metric values. Log it scaled "
        "down (e.g. its logarithm), or as a param if you need every digit.",
        key=key, value=value)


def _real(value: object) -> int | float | None:
    """An int for integers of any kind, a float for other real numbers, None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, numbers.Integral):  # numpy integers
        return int(value)
    if isinstance(value, numbers.Number):
        try:
            return float(value)  # type: ignore[arg-type]  # numpy floats, Decimal, Fraction
        except OverflowError:
            return math.inf if value > 0 else -math.inf  # type: ignore[operator]  # a real Number orders with 0
        except (TypeError, ValueError):  # complex
            return None
    return None


def metric_step(key: str, step: object) -> int:
    if type(step) is int and INT64_MIN <= step <= INT64_MAX:
        return step
    if step is None:
        return 0
    number = _real(step)
    if number is None or (isinstance(number, float) and not number.is_integer()):
        raise InvalidParameterValue(
            f"Step for metric {key!r} must be an integer, got {shown(step)} ({type(step).__name__})",
            key=key, step=step,
        )
    number = int(number)
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidParameterValue(
            f"Step for metric {key!r} is out of range: got {shown(step)}, but a step must be a 64-bit signed "
            f"integer ({INT64_MIN} to {INT64_MAX}), as MLflow stores it. Log a smaller step.",
            key=key, step=step,
        )
    return number


def metric_timestamp(key: str, timestamp: object) -> int:
    if type(timestamp) is int and 0 <= timestamp <= INT64_MAX:
        return timestamp
    return _milliseconds(f"Timestamp for metric {key!r}", timestamp, 0, key=key)


def _milliseconds(what: str, value: object, minimum: int, **attributes: Any) -> int:
    number = _real(value)
    if number is None or (isinstance(number, float) and not math.isfinite(number)) or (minimum == 0 and number < 0):
        kind = "a non-negative" if minimum == 0 else "an"
        raise InvalidParameterValue(
            f"{what} must be {kind} integer of milliseconds since the epoch (such as "
            f"int(time.time() * 1000)), got {shown(value)} ({type(value).__name__})",
            **attributes, timestamp=value,
        )
    number = int(number)
    if not minimum <= number <= INT64_MAX:
        raise InvalidParameterValue(
            f"{what} is out of range: got {shown(value)}, but timestamps are 64-bit signed integers of "
            f"milliseconds (at most {INT64_MAX}), as MLflow stores them. Pass milliseconds since the "
            "epoch, such as int(time.time() * 1000).",
            **attributes, timestamp=value,
        )
    return number


def run_time(what: str, value: object) -> int | None:
    """A run's start or end time (milliseconds): None, or a 64-bit integer."""
    if value is None or (type(value) is int and INT64_MIN <= value <= INT64_MAX):
        return value
    return _milliseconds(f"Run {what}", value, INT64_MIN)


def run_fields(*, start_time: object = None, end_time: object = None, run_name: object = None,
               user_id: object = None) -> None:
    """Check the fields of create_run / update_run that have no check of their own."""
    run_time("start_time", start_time)
    run_time("end_time", end_time)
    if run_name is not None:
        tag_value("mlflow.runName", run_name)
    if isinstance(user_id, str):
        text("Run user_id", user_id)


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
    return text("Experiment name", name, name=name)


def artifact_location(location: object) -> str | None:
    """An experiment's artifact_location (gitexp records it; artifacts stay on the branch)."""
    if location is None or location == "":
        return None
    if not isinstance(location, str):
        raise InvalidParameterValue(
            f"Experiment artifact_location must be a string such as 's3://bucket/path', got "
            f"{shown(location)} ({type(location).__name__})", artifact_location=location)
    return text("Experiment artifact_location", location, artifact_location=location)


_DATASET_FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")


def dataset_input(dataset: dict[str, Any], tags: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A dataset input of a run (log_inputs): its fields and tags must be storable text."""
    for field in _DATASET_FIELDS:
        value = dataset.get(field)
        if isinstance(value, str):
            text(f"Dataset {field}", value, field=field)
    for key, value in tags.items():
        text("Dataset input tag key", str(key), key=key)
        text(f"Dataset input tag value for {key!r}", str(value), key=key)
    return dataset, tags
