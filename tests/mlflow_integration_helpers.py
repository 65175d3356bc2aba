"""Shared by the tests that point MLflow integrations at a repository through the plugin
(``gitexp:///<repo>`` URIs): a fresh repository as MLflow's store, MLflow's global state undone
after each test, and a gitexp Client that reads back what landed."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import pytest

from .conftest import make_repo, require_mlflow, reset_gitexp

mlflow = require_mlflow("mlflow.tracking.fluent", "mlflow.utils.autologging_utils")

# MLflow's environment variables that a test's fluent calls set (set_experiment exports the
# experiment id for child processes) or that would point it elsewhere.
_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
               "MLFLOW_RUN_ID", "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING")


def plugin_uri(path: Path) -> str:
    """The plugin's tracking URI of the repository at `path`."""
    return "gitexp://" + Path(path).resolve().as_posix()


def reset_mlflow() -> None:
    """No run, experiment, URI or autologging of one test left for the next."""
    import mlflow.tracking.fluent as fluent
    from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS

    while mlflow.active_run() is not None:
        mlflow.end_run()
    for name in list(AUTOLOGGING_INTEGRATIONS):  # each integration patched so far, turned off
        module = {"sklearn": "mlflow.sklearn", "lightgbm": "mlflow.lightgbm", "xgboost": "mlflow.xgboost",
                  "keras": "mlflow.keras"}.get(name)
        if module is not None:
            __import__(module)
            getattr(mlflow, name).autolog(disable=True)
    AUTOLOGGING_INTEGRATIONS.clear()  # mlflow.autolog() honours no earlier per-flavor call
    fluent._active_experiment_id = None
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for name in _MLFLOW_ENV:
        os.environ.pop(name, None)


@pytest.fixture(name="tracked")
def tracked_fixture(tmp_path, monkeypatch):
    """A fresh repository (the current directory) that the real mlflow tracks into through the plugin."""
    path = make_repo(tmp_path / "repo")
    monkeypatch.chdir(path)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    reset_gitexp()
    reset_mlflow()
    mlflow.set_tracking_uri(plugin_uri(path))
    level = logging.getLogger("mlflow").level
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield path
    logging.getLogger("mlflow").setLevel(level)
    reset_mlflow()
    reset_gitexp()


def reader(path: Path):
    """A gitexp Client of the repository at `path`, with nothing buffered or cached from the writers."""
    import gitexp

    reset_gitexp()
    return gitexp.Client(str(path))


def runs_of(client, experiment_name: str | None = None) -> list:
    """Every run of one experiment (or of every experiment), oldest first."""
    ids = [client.get_experiment_by_name(experiment_name).experiment_id] if experiment_name else \
        [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(ids, order_by=["attributes.start_time ASC"]))


def artifact_paths(client, run_id: str, path: str | None = None) -> list[str]:
    return sorted(f.path for f in client.list_artifacts(run_id, path))
