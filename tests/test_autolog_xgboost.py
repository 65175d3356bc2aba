"""XGBoost autologging: per-iteration metrics, early stopping, feature importance, models, datasets, safety.

(The comparison of logged keys with MLflow's own xgboost autolog runs in
test_autolog_sklearn.py, in the same MLflow process as the scikit-learn one.)
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import xgboost as xgb

import gitexp
from gitexp.exceptions import InvalidParameterValue

from .autolog_helpers import artifact_paths, no_autolog_left_behind, only_run, read_json_artifact, runs_of  # noqa: F401

PARAMS = {"max_depth": 2, "learning_rate": 0.3, "objective": "reg:squarederror", "seed": 42}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.random((240, 4))
    y = X @ np.array([1.0, 2.0, 3.0, 0.0]) + rng.normal(0, 0.05, 240)
    return X[:160], y[:160], X[160:], y[160:]


def test_train_logs_every_iteration_and_the_best_one(client, data, tmp_path):
    X_train, y_train, X_val, y_val = data
    gitexp.xgboost.autolog()
    train = xgb.DMatrix(X_train, label=y_train)
    valid = xgb.DMatrix(X_val, label=y_val)
    booster = xgb.train(params=PARAMS, dtrain=train, num_boost_round=200, evals=[(valid, "validation")],
                        early_stopping_rounds=5, verbose_eval=False)
    run = only_run(client)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.autologging"] == "xgboost"
    assert {k: run.data.params[k] for k in PARAMS} == {k: str(v) for k, v in PARAMS.items()}
    assert run.data.params["num_boost_round"] == "200" and run.data.params["early_stopping_rounds"] == "5"
    assert "dtrain" not in run.data.params and "evals" not in run.data.params

    iterations = booster.num_boosted_rounds()
    history = client.get_metric_history(run.info.run_id, "validation-rmse")
    assert [m.step for m in history] == list(range(iterations)) + [iterations]
    assert run.data.metrics["best_iteration"] == booster.best_iteration
    assert run.data.metrics["stopped_iteration"] == iterations - 1
    assert history[-1].value == history[booster.best_iteration].value  # the best iteration, one step after the last

    paths = artifact_paths(client, run.info.run_id)
    assert paths == ["feature_importance_weight.json", "feature_importance_weight.png", "model"]
    assert read_json_artifact(client, run.info.run_id, "feature_importance_weight.json", tmp_path) == \
        booster.get_score(importance_type="weight")
    loaded = gitexp.xgboost.load_model(f"runs:/{run.info.run_id}/model")
    assert isinstance(loaded, xgb.Booster)
    np.testing.assert_allclose(loaded.predict(valid), booster.predict(valid))
    datasets = sorted((i.dataset.name, i.tags[0].value) for i in run.inputs.dataset_inputs)
    assert datasets == [("dataset", "train"), ("validation", "eval")]


def test_positional_train_without_evals(client, data):
    X_train, y_train, _, _ = data
    gitexp.xgboost.autolog(log_models=False, importance_types=["weight", "gain"])
    xgb.train(PARAMS, xgb.DMatrix(X_train, label=y_train), 7)
    run = only_run(client)
    assert run.data.params["num_boost_round"] == "7"
    assert "best_iteration" not in run.data.metrics
    assert artifact_paths(client, run.info.run_id) == [
        "feature_importance_gain.json", "feature_importance_gain.png",
        "feature_importance_weight.json", "feature_importance_weight.png"]


def test_metric_names_with_at_signs_are_made_valid(client, data):
    X_train, y_train, X_val, y_val = data
    gitexp.xgboost.autolog(log_models=False)
    params = {"objective": "binary:logistic", "eval_metric": ["error@0.6", "logloss"], "max_depth": 2}
    xgb.train(params, xgb.DMatrix(X_train, label=y_train > 3), 3,
              evals=[(xgb.DMatrix(X_val, label=y_val > 3), "valid")], verbose_eval=False)
    metrics = only_run(client).data.metrics
    assert set(metrics) == {"valid-error_at_0.6", "valid-logloss"}


def test_input_example_and_signature_come_from_the_dmatrix(client, data, tmp_path, caplog):
    from gitexp.models import Model

    X_train, y_train, _, _ = data
    early = xgb.DMatrix(X_train, label=y_train)  # built before autolog(): nothing to sample
    gitexp.xgboost.autolog(log_input_examples=True)
    with caplog.at_level(logging.WARNING, logger="gitexp"):
        xgb.train(PARAMS, early, 3)
    assert "before gitexp.xgboost.autolog()" in caplog.text
    xgb.train(PARAMS, xgb.DMatrix(X_train, label=y_train), 3)
    first, second = runs_of(client)
    bare = Model.load(client.download_artifacts(first.info.run_id, "model", str(tmp_path / "a")))
    assert bare.signature is None
    full = Model.load(client.download_artifacts(second.info.run_id, "model", str(tmp_path / "b")))
    assert full.signature is not None and full.saved_input_example_info is not None


def test_sklearn_api_logs_its_own_class_and_post_training_metrics(client, data):
    import sklearn.metrics

    X_train, y_train, X_val, y_val = data
    gitexp.xgboost.autolog()
    model = xgb.XGBRegressor(n_estimators=12, max_depth=2).fit(X_train, y_train, eval_set=[(X_val, y_val)],
                                                               verbose=False)
    mse = sklearn.metrics.mean_squared_error(y_val, model.predict(X_val))
    run = only_run(client)
    assert run.data.params["max_depth"] == "2" and run.data.params["num_boost_round"] == "12"
    assert len(client.get_metric_history(run.info.run_id, "validation_0-rmse")) == 12
    assert run.data.metrics["mean_squared_error_X_val"] == pytest.approx(mse)
    loaded = gitexp.xgboost.load_model(f"runs:/{run.info.run_id}/model")
    assert type(loaded) is xgb.XGBRegressor
    np.testing.assert_allclose(loaded.predict(X_val), model.predict(X_val), rtol=1e-6)


def test_sklearn_api_inside_a_grid_search_is_one_parent_with_children(client, data):
    from sklearn.model_selection import GridSearchCV

    X_train, y_train, _, _ = data
    gitexp.sklearn.autolog(log_models=False)
    gitexp.xgboost.autolog(log_models=False)
    GridSearchCV(xgb.XGBRegressor(n_estimators=5), {"max_depth": [1, 2]}, cv=2).fit(X_train, y_train)
    runs = runs_of(client)
    assert len(runs) == 3
    assert sum("mlflow.parentRunId" not in r.data.tags for r in runs) == 1


def test_train_inside_a_user_run_and_failures(client, data, caplog):
    X_train, y_train, _, _ = data
    gitexp.xgboost.autolog(log_models=False)
    with gitexp.start_run() as run:
        xgb.train(PARAMS, xgb.DMatrix(X_train, label=y_train), 2)
    assert client.get_run(run.info.run_id).data.params["max_depth"] == "2"

    with pytest.raises(xgb.core.XGBoostError):
        xgb.train({"objective": "no-such-objective"}, xgb.DMatrix(X_train, label=y_train), 2)
    assert runs_of(client)[-1].info.status == "FAILED"

    # A logging failure (a param that clashes in the user's run) warns; training goes on.
    with gitexp.start_run():
        gitexp.log_param("max_depth", "99")
        with caplog.at_level(logging.WARNING, logger="gitexp"):
            booster = xgb.train(PARAMS, xgb.DMatrix(X_train, label=y_train), 2)
    assert booster.num_boosted_rounds() == 2
    assert "max_depth" in caplog.text


def test_bad_arguments_are_refused_with_the_allowed_values():
    with pytest.raises(InvalidParameterValue, match="importance_types"):
        gitexp.xgboost.autolog(importance_types=["weight", "entropy"])
    with pytest.raises(InvalidParameterValue, match="model_format"):
        gitexp.xgboost.autolog(model_format="pickle")
    assert gitexp._autolog.is_disabled("xgboost")
