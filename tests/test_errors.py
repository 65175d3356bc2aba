"""Bad input gets a clear error that names the offending value, and loses nothing."""

from __future__ import annotations

import pytest

import gitexp
from gitexp.exceptions import (
    GitexpError,
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)

from .conftest import git, reset_gitexp


def _snapshot(client, run_id):
    run = client.get_run(run_id)
    history = client.get_metric_history(run_id, "loss")
    return (run.data.params, run.data.metrics, run.data.tags, [(m.step, m.value) for m in history])


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: gitexp.log_metric("loss", "abc"), InvalidParameterValue, ["'loss'", "'abc'", "number"]),
        (lambda: gitexp.log_metric("loss", None), InvalidParameterValue, ["'loss'", "None"]),
        (lambda: gitexp.log_metric("loss", True), InvalidParameterValue, ["'loss'", "True"]),
        (lambda: gitexp.log_metric("loss", 1.0, step="x"), InvalidParameterValue, ["Step", "'x'"]),
        (lambda: gitexp.log_param("lr", 0.5), InvalidParameterValue, ["'lr'", "'0.1'", "'0.5'"]),
        (lambda: gitexp.log_params({"lr": 0.1, "depth": 9}), InvalidParameterValue, ["'depth'", "'3'", "'9'"]),
        (lambda: gitexp.log_param("../escape", 1), InvalidParameterValue, ["'../escape'"]),
        (lambda: gitexp.log_metric("/abs", 1), InvalidParameterValue, ["'/abs'"]),
        (lambda: gitexp.log_metric("a//b", 1), InvalidParameterValue, ["'a//b'"]),
        (lambda: gitexp.set_tag("k" * 300, "v"), InvalidParameterValue, ["300", "250"]),
        (lambda: gitexp.log_param("p" * 251, 1), InvalidParameterValue, ["251", "250"]),
        (lambda: gitexp.log_metric("bad\x00key", 1), InvalidParameterValue, ["bad"]),
    ],
)
def test_bad_input_is_rejected_with_a_clear_error_and_loses_nothing(repo, call, error, words):
    client = gitexp.Client()
    with gitexp.start_run() as run:
        gitexp.log_params({"lr": 0.1, "depth": 3})
        gitexp.log_metric("loss", 0.5, step=0)
        gitexp.log_metric("loss", 0.4, step=1)
        gitexp.set_tag("team", "ml")
        gitexp.flush()
        tip = git("rev-parse", "gitexp", cwd=repo)
        before = _snapshot(client, run.info.run_id)
        with pytest.raises(error) as info:
            call()
        message = str(info.value)
        for word in words:
            assert word in message, (word, message)
        assert info.value.error_code == "INVALID_PARAMETER_VALUE"
        # Nothing was half-written: the branch did not move and the run is unchanged.
        assert git("rev-parse", "gitexp", cwd=repo) == tip
        assert _snapshot(client, run.info.run_id) == before
        # The run goes on after the error.
        gitexp.log_metric("loss", 0.3, step=2)
    reset_gitexp()
    params, metrics, tags, history = _snapshot(gitexp.Client(), run.info.run_id)
    assert params == {"lr": "0.1", "depth": "3"}
    assert metrics == {"loss": 0.3}
    assert tags["team"] == "ml"
    assert history == [(0, 0.5), (1, 0.4), (2, 0.3)]
    assert gitexp.get_run(run.info.run_id).info.status == "FINISHED"


def test_a_batch_with_one_bad_value_writes_nothing_of_it(client):
    from gitexp.entities import Metric, Param

    run = client.create_run("0")
    run_id = run.info.run_id
    client.log_param(run_id, "a", 1)
    with pytest.raises(InvalidParameterValue, match="'b'"):
        client.log_batch(run_id, metrics=[Metric("ok", 1.0, 0, 0), Metric("b", "nan?", 0, 0)],
                         params=[Param("c", "3")])
    data = client.get_run(run_id).data
    assert data.metrics == {} and data.params == {"a": "1"}


def test_logging_the_same_param_value_twice_is_fine(client):
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "lr", 0.1)
    client.log_param(run_id, "lr", "0.1")
    assert client.get_run(run_id).data.params == {"lr": "0.1"}


def test_unknown_run_id_names_it_and_says_what_to_do(client):
    for call in (lambda: client.get_run("0123456789abcdef0123456789abcdef"),
                 lambda: client.log_metric("nope", "m", 1.0),
                 lambda: client.set_tag("nope", "k", "v"),
                 lambda: client.delete_run("nope"),
                 lambda: client.get_metric_history("nope", "m")):
        with pytest.raises(ResourceDoesNotExist) as info:
            call()
        assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
        assert "not found" in str(info.value) and "gitexp runs list" in str(info.value)


def test_unknown_experiment_and_duplicate_names(client):
    with pytest.raises(ResourceDoesNotExist, match="'12345'"):
        client.get_experiment("12345")
    assert client.get_experiment_by_name("nope") is None
    client.create_experiment("churn")
    with pytest.raises(ResourceAlreadyExists, match="'churn'"):
        client.create_experiment("churn")
    with pytest.raises(ResourceAlreadyExists, match="'Default'"):
        client.create_experiment("Default")
    with pytest.raises(InvalidParameterValue):
        client.create_experiment("")


def test_logging_to_a_deleted_run_is_refused(client):
    run_id = client.create_run("0").info.run_id
    client.set_terminated(run_id)
    client.delete_run(run_id)
    with pytest.raises(GitexpError, match=run_id):
        client.log_metric(run_id, "m", 1.0)
