"""Registered models load from every models:/ URI form, with every flavor, and with real mlflow."""

from __future__ import annotations

import numpy as np
import pytest

import gitexp

from .conftest import require_mlflow


@pytest.fixture
def registered(repo):
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.random((30, 3))
    models = []
    for coef in ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]):
        with gitexp.start_run():
            model = LinearRegression().fit(X, X @ coef)
            gitexp.sklearn.log_model(model, name="model", input_example=X[:2], registered_model_name="demand")
            models.append(model)
    client = gitexp.MlflowClient()
    client.transition_model_version_stage("demand", 1, "Staging")
    client.transition_model_version_stage("demand", 2, "Production", archive_existing_versions=True)
    client.set_registered_model_alias("demand", "champion", 1)
    return X, models


@pytest.mark.parametrize("uri, which", [
    ("models:/demand/1", 0), ("models:/demand/2", 1), ("models:/demand/Production", 1),
    ("models:/demand/production", 1), ("models:/demand/latest", 1), ("models:/demand@champion", 0),
])
def test_pyfunc_and_sklearn_load_every_models_uri_form(registered, uri, which):
    X, models = registered
    expected = models[which].predict(X[:5])
    np.testing.assert_allclose(gitexp.pyfunc.load_model(uri).predict(X[:5]), expected)
    np.testing.assert_allclose(gitexp.sklearn.load_model(uri).predict(X[:5]), expected)


def test_stage_moves_change_what_a_stage_uri_loads(registered):
    X, models = registered
    client = gitexp.MlflowClient()
    client.transition_model_version_stage("demand", 1, "Production", archive_existing_versions=True)
    assert client.get_model_version("demand", 2).current_stage == "Archived"
    np.testing.assert_allclose(gitexp.pyfunc.load_model("models:/demand/Production").predict(X[:3]),
                               models[0].predict(X[:3]))
    with pytest.raises(gitexp.MlflowException, match="Staging"):
        gitexp.pyfunc.load_model("models:/demand/Staging")


def test_download_artifacts_of_a_models_uri_is_loadable_by_real_mlflow(registered, tmp_path):
    mlflow = require_mlflow("mlflow.pyfunc")

    X, models = registered
    local = gitexp.artifacts.download_artifacts(artifact_uri="models:/demand@champion", dst_path=str(tmp_path))
    loaded = mlflow.pyfunc.load_model(local)
    np.testing.assert_allclose(loaded.predict(X[:4]), models[0].predict(X[:4]))


def test_xgboost_model_from_the_registry(repo):
    import xgboost as xgb

    rng = np.random.default_rng(1)
    X, y = rng.random((50, 4)), rng.random(50)
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(X, label=y), num_boost_round=5)
    with gitexp.start_run():
        info = gitexp.xgboost.log_model(booster, name="booster")
    version = gitexp.register_model(info.model_uri, "xgb-demand")
    assert version.version == 1
    loaded = gitexp.xgboost.load_model("models:/xgb-demand/1")
    np.testing.assert_allclose(loaded.predict(xgb.DMatrix(X[:3])), booster.predict(xgb.DMatrix(X[:3])))


def test_unknown_models_uri_is_a_clear_error(registered):
    with pytest.raises(gitexp.MlflowException, match="nope"):
        gitexp.pyfunc.load_model("models:/nope/1")
    with pytest.raises(gitexp.MlflowException, match="9"):
        gitexp.pyfunc.load_model("models:/demand/9")
