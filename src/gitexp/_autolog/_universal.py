"""``gitexp.autolog()``: every integration, configured now or when its library is imported."""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from typing import Any

from ..exceptions import InvalidParameterValue
from ._config import FLAVOR_LIBRARY, FLAVORS, GLOBALLY_CONFIGURED, _conf_lock, _configs, check_extra_tags, is_disabled
from ._hooks import register_post_import_hook

_log = logging.getLogger("gitexp.autolog")

# Libraries MLflow's autolog() covers and gitexp's does not (top-level module: MLflow's flavor).
PLUGIN_ONLY_AUTOLOG = {"tensorflow": "tensorflow", "keras": "keras", "lightgbm": "lightgbm",
                       "statsmodels": "statsmodels", "pyspark": "spark", "pytorch_lightning": "pytorch",
                       "lightning": "pytorch", "transformers": "transformers", "setfit": "transformers"}
_warned_plugin_only = False


def warn_plugin_only_libraries(excluded: set[str]) -> list[str]:
    """Once a process: say which installed libraries only MLflow's own autolog() covers, and how."""
    global _warned_plugin_only
    if _warned_plugin_only:
        return []
    import importlib.util
    import warnings

    found = []
    for library, flavor in PLUGIN_ONLY_AUTOLOG.items():
        if flavor in excluded or library in excluded:
            continue
        try:
            if importlib.util.find_spec(library) is not None:
                found.append(library)
        except (ImportError, ValueError):
            continue
    if found:
        _warned_plugin_only = True
        warnings.warn(
            f"gitexp.autolog() does not autolog {', '.join(found)} (gitexp's own autologging covers scikit-learn "
            "and XGBoost); MLflow's package does, with gitexp as its store: pip install 'gitexp[mlflow]', then "
            "`import mlflow; mlflow.set_tracking_uri(\"gitexp:\"); mlflow.autolog()`", stacklevel=3)
    return found


def autolog(log_input_examples: bool = False, log_model_signatures: bool = True, log_models: bool = True,
            log_datasets: bool = True, log_traces: bool = True, disable: bool = False, exclusive: bool = False,
            disable_for_unsupported_versions: bool = False, silent: bool = False,
            extra_tags: dict[str, str] | None = None, exclude_flavors: list[str] | None = None) -> None:
    """Enable (or, with disable=True, disable) autologging for every library gitexp integrates.

    scikit-learn and XGBoost are configured as soon as they are imported (or
    at once when they already are).  A flavor configured by its own call
    (``gitexp.sklearn.autolog(...)``) keeps that configuration.  ``log_traces``
    is accepted for MLflow compatibility (gitexp integrates no GenAI library).

    >>> gitexp.autolog()
    >>> RandomForestClassifier().fit(X, y)    # logged as a run
    """
    settings = dict(log_input_examples=log_input_examples, log_model_signatures=log_model_signatures,
                    log_models=log_models, log_datasets=log_datasets, disable=disable, exclusive=exclusive,
                    disable_for_unsupported_versions=disable_for_unsupported_versions, silent=silent,
                    extra_tags=extra_tags)
    check_extra_tags(extra_tags)
    if exclude_flavors is not None and (isinstance(exclude_flavors, str) or not all(
            isinstance(f, str) for f in exclude_flavors)):
        raise InvalidParameterValue(
            f"exclude_flavors must be a list of flavor names such as ['xgboost'], got {exclude_flavors!r}")
    excluded = set(exclude_flavors or ())
    if not disable and not silent:
        warn_plugin_only_libraries(excluded)
    for flavor, library in FLAVOR_LIBRARY.items():
        if flavor in excluded:
            continue
        register_post_import_hook(functools.partial(_setup_flavor, flavor, settings), library)


def _setup_flavor(flavor: str, settings: dict[str, Any], _module: Any = None) -> None:
    with _conf_lock:
        try:
            fn = importlib.import_module(FLAVORS[flavor]).autolog
            previous = _configs.get(flavor)
            if previous and not previous.get(GLOBALLY_CONFIGURED, False):
                return  # the user configured this flavor explicitly; that wins
            wanted = set(inspect.signature(fn).parameters)
            fn(**{k: v for k, v in settings.items() if k in wanted})
            _configs[flavor][GLOBALLY_CONFIGURED] = True
            if not is_disabled(flavor) and not settings.get("silent"):
                _log.info("gitexp: autologging enabled for %s", FLAVOR_LIBRARY[flavor])
        except Exception as exc:
            if not settings.get("silent"):
                _log.warning("gitexp: could not enable autologging for %s: %s", FLAVOR_LIBRARY[flavor], exc)
