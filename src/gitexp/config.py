"""``gitexp.config``: MLflow's ``mlflow.config``, for ``import gitexp as mlflow``.

The tracking and registry URIs and the system metrics settings are the fluent API's own
functions. Async logging: gitexp's logging is always what MLflow calls asynchronous -- a
call appends one line to the run's journal and returns, and a background thread commits
(durable from the journal line on: a killed process loses nothing logged) -- so
``enable_async_logging`` and ``disable_async_logging`` change nothing; they record the
choice in ``MLFLOW_ENABLE_ASYNC_LOGGING`` as MLflow does, for libraries that read it.
``gitexp.flush_async_logging()`` (or ``gitexp.flush()``) waits until everything logged
is committed.
"""

from __future__ import annotations

import os

from .fluent import (
    disable_system_metrics_logging,
    enable_system_metrics_logging,
    get_registry_uri,
    get_tracking_uri,
    is_tracking_uri_set,
    set_registry_uri,
    set_system_metrics_node_id,
    set_system_metrics_samples_before_logging,
    set_system_metrics_sampling_interval,
    set_tracking_uri,
)


def enable_async_logging(enable: bool = True) -> None:
    """Accepted for MLflow compatibility; gitexp always logs in the background (see the module doc)."""
    os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "true" if enable else "false"


def disable_async_logging() -> None:
    """Accepted for MLflow compatibility; the same as enable_async_logging(False): changes nothing."""
    enable_async_logging(False)


__all__ = [
    "disable_async_logging",
    "disable_system_metrics_logging",
    "enable_async_logging",
    "enable_system_metrics_logging",
    "get_registry_uri",
    "get_tracking_uri",
    "is_tracking_uri_set",
    "set_registry_uri",
    "set_system_metrics_node_id",
    "set_system_metrics_samples_before_logging",
    "set_system_metrics_sampling_interval",
    "set_tracking_uri",
]
