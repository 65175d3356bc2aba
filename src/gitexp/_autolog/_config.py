"""Autologging settings: what each flavor's last ``autolog()`` call asked for, and whether it is on."""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

from ..exceptions import InvalidParameterValue, MissingDependency

_log = logging.getLogger("gitexp.autolog")

INPUT_EXAMPLE_SAMPLE_ROWS = 5
AUTOLOGGING_TAG = "mlflow.autologging"
ERROR_TAG = "gitexp.autolog.error"
GLOBALLY_CONFIGURED = "globally_configured"

# Flavor name -> the public module holding its autolog(), and the library whose import enables it.
FLAVORS = {"sklearn": "gitexp.sklearn", "xgboost": "gitexp.xgboost"}
FLAVOR_LIBRARY = {"sklearn": "sklearn", "xgboost": "xgboost"}
# What a flavor's autologging imports: (module, distribution to install); and the extra that brings them.
FLAVOR_REQUIRES = {"sklearn": (("sklearn", "scikit-learn"),),
                   "xgboost": (("xgboost", "xgboost"), ("sklearn", "scikit-learn"))}
FLAVOR_EXTRA = {"sklearn": "sklearn", "xgboost": "xgboost"}
# Oldest library versions the integrations are written for (disable_for_unsupported_versions).
MIN_VERSIONS = {"sklearn": "1.3", "xgboost": "2.0"}

_conf_lock = threading.RLock()
_configs: dict[str, dict[str, Any]] = {}


def get_config(flavor: str, key: str, default: Any = None) -> Any:
    """A setting of the last ``autolog()`` call of `flavor` (default if never configured)."""
    config = _configs.get(flavor)
    return default if config is None else config.get(key, default)


def library_version_supported(flavor: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"sklearn": "scikit-learn"}.get(flavor, flavor)
    try:
        installed = version(dist)
    except PackageNotFoundError:
        return False
    return _version_tuple(installed) >= _version_tuple(MIN_VERSIONS[flavor])


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(c for c in piece if c.isdigit()) or "0"
        parts.append(int(digits))
        if not piece.isdigit():
            break
    return tuple(parts)


def is_disabled(flavor: str) -> bool:
    if get_config(flavor, "disable", True):
        return True
    return bool(get_config(flavor, "disable_for_unsupported_versions", False)) and not library_version_supported(flavor)


def check_extra_tags(extra_tags: Any) -> dict[str, str]:
    if extra_tags is None:
        return {}
    if not isinstance(extra_tags, dict):
        raise InvalidParameterValue(
            f"extra_tags must be a dict of tag names to values, got {type(extra_tags).__name__} "
            f"({extra_tags!r}); for example extra_tags={{'team': 'forecasting'}}")
    tags = {str(k): str(v) for k, v in extra_tags.items()}
    if tags.pop(AUTOLOGGING_TAG, None) is not None:
        _log.warning("gitexp: the tag %s is set by autologging itself; the value in extra_tags is ignored",
                     AUTOLOGGING_TAG)
    return tags


def require_library(flavor: str) -> None:
    """MissingDependency naming the extra to install when a library `flavor` patches is not importable."""
    for module, distribution in FLAVOR_REQUIRES[flavor]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            extra = FLAVOR_EXTRA[flavor]
            raise MissingDependency(
                f"gitexp.{flavor}.autolog() needs {distribution}, which cannot be imported ({exc}). "
                f"Install it with: pip install 'gitexp[{extra}]'",
                library=distribution, extra=extra) from exc
