"""gitexp: experiment tracking and a model registry inside your git repository.

``import gitexp as mlflow`` works for the tracking and registry calls people use:

    import gitexp

    gitexp.set_experiment("nyc-taxi")
    with gitexp.start_run():
        gitexp.log_param("alpha", 0.1)
        gitexp.log_metric("rmse", 6.3)

Runs are YAML/JSONL files on the branch ``gitexp`` of the repository around the
current directory; ``git push origin gitexp`` shares them.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import entities, exceptions
from .client import Client, MlflowClient
from .exceptions import GitexpError, MlflowException
from .fluent import (
    ActiveRun,
    active_run,
    create_experiment,
    delete_experiment,
    delete_experiment_tag,
    delete_run,
    delete_tag,
    end_run,
    flush,
    get_experiment,
    get_experiment_by_name,
    get_parent_run,
    get_run,
    get_tracking_uri,
    is_tracking_uri_set,
    last_active_run,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    metric_history_frame,
    rename_experiment,
    restore_experiment,
    restore_run,
    search_experiments,
    search_runs,
    set_experiment,
    set_experiment_tag,
    set_experiment_tags,
    set_tag,
    set_tags,
    set_tracking_uri,
    start_run,
)
from .fluent_artifacts import (
    get_artifact_uri,
    load_table,
    log_artifact,
    log_artifacts,
    log_dict,
    log_figure,
    log_image,
    log_input,
    log_inputs,
    log_table,
    log_text,
)
from .fluent_registry import register_model, search_model_versions, search_registered_models

__version__ = "0.2.0"

# Submodules that pull in heavy libraries load on first attribute access.
_LAZY_SUBMODULES = {"tracking", "search", "code_version", "cli",
                    "artifacts", "data", "models", "pyfunc", "sklearn", "types", "xgboost"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "autolog":  # gitexp.autolog(): loaded on first use
        from ._autolog import autolog

        return autolog
    raise AttributeError(f"module 'gitexp' has no attribute {name!r}")


__all__ = [
    "ActiveRun",
    "Client",
    "GitexpError",
    "MlflowClient",
    "MlflowException",
    "active_run",
    "autolog",
    "create_experiment",
    "delete_experiment",
    "delete_experiment_tag",
    "delete_run",
    "delete_tag",
    "end_run",
    "entities",
    "exceptions",
    "flush",
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "get_parent_run",
    "get_run",
    "get_tracking_uri",
    "is_tracking_uri_set",
    "last_active_run",
    "load_table",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_image",
    "log_input",
    "log_inputs",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "metric_history_frame",
    "register_model",
    "rename_experiment",
    "restore_experiment",
    "restore_run",
    "search_experiments",
    "search_model_versions",
    "search_registered_models",
    "search_runs",
    "set_experiment",
    "set_experiment_tag",
    "set_experiment_tags",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
]
