"""`import gitexp as mlflow` keeps working: names, parameters and entity fields match the real mlflow."""

from __future__ import annotations

import inspect

import pytest

import gitexp
import gitexp.entities

from .conftest import require_mlflow

mlflow = require_mlflow("mlflow.entities")

FLUENT = [
    "set_tracking_uri", "get_tracking_uri", "set_experiment", "create_experiment", "get_experiment",
    "get_experiment_by_name", "search_experiments", "delete_experiment", "start_run", "end_run",
    "active_run", "last_active_run", "get_run", "log_param", "log_params", "log_metric", "log_metrics",
    "set_tag", "set_tags", "delete_tag", "search_runs", "set_experiment_tag", "set_experiment_tags",
    "get_parent_run", "is_tracking_uri_set", "delete_run", "flush_async_logging", "last_logged_model",
    "set_registry_uri", "get_registry_uri", "enable_system_metrics_logging", "disable_system_metrics_logging",
    "set_system_metrics_sampling_interval", "set_system_metrics_samples_before_logging",
    "set_system_metrics_node_id",
]

CLIENT = [
    "create_experiment", "get_experiment", "get_experiment_by_name", "rename_experiment",
    "delete_experiment", "restore_experiment", "set_experiment_tag", "delete_experiment_tag",
    "search_experiments", "create_run", "get_run", "get_parent_run", "log_metric", "log_param",
    "set_tag", "delete_tag", "log_batch", "set_terminated", "update_run", "delete_run", "restore_run",
    "get_metric_history", "search_runs",
]


# GenAI tracing and workspaces are out of scope (docs/mlflow-compatibility.md).
NOT_SUPPORTED = {"trace_location", "effective_trace_archival_retention", "workspace"}


def _parameters(func) -> list[str]:
    return [p.name for p in inspect.signature(func).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"]


def _accepts(func) -> set[str] | None:
    params = inspect.signature(func).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None  # takes anything by keyword
    return {p.name for p in params}


@pytest.mark.parametrize("name", FLUENT)
def test_fluent_function_accepts_mlflows_parameters(name):
    ours = getattr(gitexp, name)
    theirs = getattr(mlflow, name)
    accepted = _accepts(ours)
    if accepted is not None:
        missing = [p for p in _parameters(theirs) if p not in accepted and p not in NOT_SUPPORTED]
        assert not missing, f"gitexp.{name} lacks mlflow's parameters {missing}"
    # Positional order of the leading parameters is the same, so positional calls work.
    lead = _parameters(theirs)[:2]
    assert _parameters(ours)[: len(lead)] == lead


@pytest.mark.parametrize("name", CLIENT)
def test_client_method_accepts_mlflows_parameters(name):
    ours = getattr(gitexp.MlflowClient, name)
    theirs = getattr(mlflow.MlflowClient, name)
    accepted = _accepts(ours)
    if accepted is not None:
        missing = [p for p in _parameters(theirs) if p not in accepted and p not in NOT_SUPPORTED]
        assert not missing, f"Client.{name} lacks mlflow's parameters {missing}"
    lead = _parameters(theirs)[:3]
    assert _parameters(ours)[: len(lead)] == lead


def test_client_is_importable_under_mlflows_names():
    from gitexp.tracking import MlflowClient

    assert MlflowClient is gitexp.Client is gitexp.MlflowClient


def _public(obj) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_") and not callable(getattr(obj, n))}


def test_entities_have_mlflows_fields(client):
    """Build the same objects with both packages and compare the attributes users read."""
    run = client.create_run("0", run_name="compat", tags={"team": "ml"})
    run_id = run.info.run_id
    client.log_param(run_id, "lr", 0.1)
    client.log_metric(run_id, "loss", 0.5, step=3)
    client.set_terminated(run_id)
    ours = client.get_run(run_id)
    experiment = client.get_experiment("0")

    theirs_metric = mlflow.entities.Metric("loss", 0.5, 0, 3)
    theirs_info = mlflow.entities.RunInfo(run_id, "0", "u", "FINISHED", 0, 1, "active", "x", "compat")
    theirs_data = mlflow.entities.RunData([theirs_metric], [mlflow.entities.Param("lr", "0.1")],
                                          [mlflow.entities.RunTag("team", "ml")])
    theirs_run = mlflow.entities.Run(theirs_info, theirs_data)
    theirs_experiment = mlflow.entities.Experiment("0", "Default", "x", "active")

    pairs = [
        (ours, theirs_run), (ours.info, theirs_info), (ours.data, theirs_data),
        (client.get_metric_history(run_id, "loss")[0], theirs_metric),
        (experiment, theirs_experiment),
        (gitexp.entities.Param("a", "b"), mlflow.entities.Param("a", "b")),
        (gitexp.entities.RunTag("a", "b"), mlflow.entities.RunTag("a", "b")),
    ]
    for mine, reference in pairs:
        missing = _public(reference) - _public(mine) - NOT_SUPPORTED
        assert not missing, f"{type(mine).__name__} lacks {sorted(missing)}"
    assert ours.info.status == "FINISHED" and ours.info.lifecycle_stage == "active"
    assert ours.data.params == {"lr": "0.1"} and ours.data.metrics == {"loss": 0.5}
    assert ours.info.run_name == "compat" and ours.data.tags["mlflow.runName"] == "compat"


@pytest.mark.parametrize("name", ["ACTIVE_ONLY", "DELETED_ONLY", "ALL"])
def test_view_type_values_match(name):
    assert getattr(gitexp.entities.ViewType, name) == getattr(mlflow.entities.ViewType, name)


def test_run_status_and_lifecycle_names_match():
    for status in ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"):
        assert gitexp.entities.RunStatus.from_string(status) == mlflow.entities.RunStatus.from_string(status)
        number = mlflow.entities.RunStatus.from_string(status)
        assert gitexp.entities.RunStatus.to_string(number) == status
    assert gitexp.entities.LifecycleStage.ACTIVE == mlflow.entities.LifecycleStage.ACTIVE
    assert gitexp.entities.LifecycleStage.DELETED == mlflow.entities.LifecycleStage.DELETED


def test_error_codes_match_mlflows_exception():
    from mlflow.exceptions import MlflowException

    with pytest.raises(gitexp.MlflowException) as info:
        gitexp.Client  # noqa: B018
        raise gitexp.exceptions.ResourceDoesNotExist("x")
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # Code that catches mlflow's exception by name still reads the same attributes.
    assert {"error_code", "message"} <= set(dir(info.value))
    assert MlflowException("x").error_code == "INTERNAL_ERROR"
