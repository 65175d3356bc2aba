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
import sys
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
    disable_system_metrics_logging,
    enable_system_metrics_logging,
    end_run,
    flush,
    flush_async_logging,
    get_experiment,
    get_experiment_by_name,
    get_parent_run,
    get_registry_uri,
    get_run,
    get_tracking_uri,
    is_tracking_uri_set,
    last_active_run,
    last_logged_model,
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
    set_registry_uri,
    set_system_metrics_node_id,
    set_system_metrics_samples_before_logging,
    set_system_metrics_sampling_interval,
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
_LAZY_SUBMODULES = {"tracking", "search", "code_version", "cli", "config", "system_metrics",
                    "artifacts", "data", "models", "pyfunc", "sklearn", "types", "xgboost"}

# What MLflow's own package has and gitexp's light path does not: gitexp.<name> and
# `import gitexp.<name>` say in one line to use mlflow.<name> with gitexp as its store.
_PLUGIN_ONLY = {f"gitexp.{name}": f"mlflow.{name}" for name in (
    "catboost", "diffusers", "evaluate", "h2o", "keras", "lightgbm", "onnx", "paddle", "pmdarima", "prophet",
    "pyspark", "pytorch", "sentence_transformers", "shap", "spacy", "spark", "statsmodels", "tensorflow",
    "transformers", "models.evaluate", "models.make_metric", "models.list_evaluators", "models.EvaluationResult",
    "models.EvaluationMetric", "models.EvaluationArtifact", "models.MetricThreshold")}
_PLUGIN_ONLY["gitexp.lightning"] = "mlflow.pytorch"


class _PluginOnlyFinder:
    """Last on sys.meta_path: consulted only when no module was found, and then only for these names.
    The error names the mlflow module as the one missing, so `from gitexp import lightgbm` shows it too."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname in _PLUGIN_ONLY:
            raise ModuleNotFoundError(exceptions.plugin_message(fullname, _PLUGIN_ONLY[fullname]),
                                      name=_PLUGIN_ONLY[fullname])


if not any(getattr(f, "__name__", "") == "_PluginOnlyFinder" for f in sys.meta_path):
    sys.meta_path.append(_PluginOnlyFinder)  # a finder class with a static find_spec


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "autolog":  # gitexp.autolog(): loaded on first use
        from ._autolog import autolog

        return autolog
    if f"gitexp.{name}" in _PLUGIN_ONLY:
        raise exceptions.PluginRequired(f"gitexp.{name}", _PLUGIN_ONLY[f"gitexp.{name}"])
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
    "disable_system_metrics_logging",
    "enable_system_metrics_logging",
    "end_run",
    "entities",
    "exceptions",
    "flush",
    "flush_async_logging",
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "get_parent_run",
    "get_registry_uri",
    "get_run",
    "get_tracking_uri",
    "is_tracking_uri_set",
    "last_active_run",
    "last_logged_model",
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
    "set_registry_uri",
    "set_system_metrics_node_id",
    "set_system_metrics_samples_before_logging",
    "set_system_metrics_sampling_interval",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
]
