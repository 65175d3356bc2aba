"""MLflow's model flavors, autologging, system metrics and evaluation, with the real, unmodified
mlflow pointed at a repository through the plugin (``gitexp:///<repo>``); what they wrote is then
read back with gitexp itself: everything written through the plugin is readable by gitexp.

Optuna and Ray Tune sweeps are in test_mlflow_sweeps.py, Keras in test_mlflow_keras.py."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import yaml

import gitexp.sklearn
import gitexp.xgboost

from .conftest import require_mlflow
from .mlflow_integration_helpers import artifact_paths, reader, runs_of, tracked_fixture  # noqa: F401 (fixture "tracked")

mlflow = require_mlflow("mlflow.sklearn", "mlflow.xgboost", "mlflow.lightgbm", "mlflow.models", "mlflow.pyfunc")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = pd.DataFrame({"a": rng.random(60), "b": rng.random(60), "c": rng.random(60)})
    y = ((X["a"] + 0.3 * X["b"]) > 0.6).astype(int)
    return X, y


def _fitted(flavor: str, X, y):
    if flavor == "sklearn":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression().fit(X, y)
    if flavor == "xgboost":
        import xgboost

        return xgboost.XGBClassifier(n_estimators=4, max_depth=2, n_jobs=1).fit(X, y)
    import lightgbm

    return lightgbm.LGBMClassifier(n_estimators=4, num_leaves=4, verbose=-1, n_jobs=1).fit(X, y)


# Explicit requirements: MLflow otherwise infers them in a subprocess per model (seconds each).
REQUIREMENTS = {"sklearn": ["scikit-learn"], "xgboost": ["xgboost"], "lightgbm": ["lightgbm"]}


@pytest.mark.parametrize("flavor", ["sklearn", "xgboost", "lightgbm"])
def test_flavor_log_model_and_load_it_back_by_every_uri(tracked, data, flavor):
    X, y = data
    model = _fitted(flavor, X, y)
    module = getattr(mlflow, flavor)
    mlflow.set_experiment("flavors")
    with mlflow.start_run() as run:
        info = module.log_model(model, name="model", registered_model_name=f"{flavor}-clf",
                                input_example=X.head(3), pip_requirements=REQUIREMENTS[flavor])
    run_id = run.info.run_id
    assert info.model_uri == f"models:/{info.model_id}" and info.model_id.startswith("m-")
    expected = model.predict(X)
    for uri in (f"runs:/{run_id}/model", f"models:/{flavor}-clf/1", info.model_uri):
        np.testing.assert_array_equal(module.load_model(uri).predict(X), expected, err_msg=uri)
        np.testing.assert_array_equal(np.asarray(mlflow.pyfunc.load_model(uri).predict(X)).ravel(), expected,
                                      err_msg=uri)

    client = reader(tracked)
    [found] = runs_of(client, "flavors")
    assert found.info.run_id == run_id and found.info.status == "FINISHED"
    assert {"model/MLmodel", "model/input_example.json", "model/requirements.txt"} <= set(
        artifact_paths(client, run_id, "model"))
    mlmodel = yaml.safe_load(client.read_artifact(run_id, "model/MLmodel"))
    assert {flavor, "python_function"} <= set(mlmodel["flavors"]) and mlmodel["model_id"] == info.model_id
    logged = client.get_logged_model(info.model_id)
    assert (logged.source_run_id, logged.name, str(logged.status)) == (run_id, "model", "READY")
    version = client.get_model_version(f"{flavor}-clf", 1)
    assert (version.run_id, version.model_id, version.status) == (run_id, info.model_id, "READY")
    assert [m.name for m in client.search_registered_models()] == [f"{flavor}-clf"]
    # gitexp's own loaders read the version MLflow registered (gitexp has these two flavors).
    if flavor in ("sklearn", "xgboost"):
        gitexp.set_tracking_uri(str(tracked))
        loaded = getattr(gitexp, flavor).load_model(f"models:/{flavor}-clf/1")
        np.testing.assert_array_equal(loaded.predict(X), expected)


def _autologged_run(client, experiment: str):
    [run] = runs_of(client, experiment)
    return client.get_run(run.info.run_id)


def test_sklearn_autolog(tracked, data):
    from sklearn.linear_model import LogisticRegression

    X, y = data
    mlflow.set_experiment("sk-autolog")
    mlflow.sklearn.autolog()
    with mlflow.start_run():
        LogisticRegression(C=0.5, max_iter=50).fit(X, y)

    client = reader(tracked)
    run = _autologged_run(client, "sk-autolog")
    assert run.data.params["C"] == "0.5" and run.data.params["max_iter"] == "50"
    assert run.data.tags["estimator_name"] == "LogisticRegression"
    assert 0.5 < run.data.metrics["training_accuracy_score"] <= 1.0
    assert {"training_f1_score", "training_log_loss", "training_roc_auc"} <= set(run.data.metrics)
    assert {"estimator.html", "training_confusion_matrix.png"} <= set(artifact_paths(client, run.info.run_id))
    [model] = client.search_logged_models([run.info.experiment_id])
    assert model.source_run_id == run.info.run_id and model.params["C"] == "0.5"
    loaded = mlflow.sklearn.load_model(f"models:/{model.model_id}")
    assert loaded.get_params()["C"] == 0.5


def test_lightgbm_autolog(tracked, data):
    import lightgbm

    X, y = data
    mlflow.set_experiment("lgb-autolog")
    mlflow.lightgbm.autolog()
    params = {"objective": "binary", "num_leaves": 4, "verbose": -1, "num_threads": 1}
    with mlflow.start_run():
        lightgbm.train(params, lightgbm.Dataset(X, y), num_boost_round=4,
                       valid_sets=[lightgbm.Dataset(X, y)], valid_names=["train"])

    client = reader(tracked)
    run = _autologged_run(client, "lgb-autolog")
    assert run.data.params["num_leaves"] == "4" and run.data.params["num_boost_round"] == "4"
    history = client.get_metric_history(run.info.run_id, "train-binary_logloss")
    assert [m.step for m in history] == [0, 1, 2, 3]  # one value per boosting round
    assert history[-1].value < history[0].value
    assert {"feature_importance_gain.json", "model"} <= set(artifact_paths(client, run.info.run_id))
    [model] = client.search_logged_models([run.info.experiment_id])
    booster = mlflow.lightgbm.load_model(f"models:/{model.model_id}")
    assert booster.num_trees() == 4


def test_mlflow_autolog_every_library(tracked, data):
    from sklearn.tree import DecisionTreeClassifier

    X, y = data
    mlflow.set_experiment("autolog")
    mlflow.autolog()
    with mlflow.start_run():
        DecisionTreeClassifier(max_depth=2).fit(X, y)

    client = reader(tracked)
    run = _autologged_run(client, "autolog")
    assert run.data.params["max_depth"] == "2"
    assert run.data.tags["estimator_name"] == "DecisionTreeClassifier"
    assert "training_accuracy_score" in run.data.metrics
    [model] = client.search_logged_models([run.info.experiment_id])
    assert model.source_run_id == run.info.run_id


def test_system_metrics(tracked):
    mlflow.set_system_metrics_sampling_interval(0.2)
    mlflow.set_system_metrics_samples_before_logging(1)
    try:
        with mlflow.start_run(log_system_metrics=True) as run:
            time.sleep(1.5)
    finally:
        mlflow.set_system_metrics_sampling_interval(None)
        mlflow.set_system_metrics_samples_before_logging(None)

    client = reader(tracked)
    metrics = client.get_run(run.info.run_id).data.metrics
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes",
            "system/disk_usage_percentage"} <= set(metrics)
    history = client.get_metric_history(run.info.run_id, "system/system_memory_usage_megabytes")
    assert len(history) >= 2 and all(m.value > 0 for m in history)  # sampled over time, steps in order
    assert [m.step for m in history] == sorted(m.step for m in history)


def test_evaluate_a_classifier(tracked, data):
    from sklearn.linear_model import LogisticRegression

    X, y = data
    model = LogisticRegression().fit(X, y)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=REQUIREMENTS["sklearn"])
        result = mlflow.models.evaluate(info.model_uri, X.assign(label=y), targets="label",
                                        model_type="classifier", evaluators=["default"])

    client = reader(tracked)
    logged = client.get_run(run.info.run_id)
    assert logged.data.metrics["accuracy_score"] == pytest.approx(result.metrics["accuracy_score"])
    assert logged.data.metrics["example_count"] == len(X)
    assert {"f1_score", "roc_auc", "log_loss", "precision_score"} <= set(logged.data.metrics)
    assert {"confusion_matrix.png", "roc_curve_plot.png"} <= set(artifact_paths(client, run.info.run_id))
    [dataset] = logged.inputs.dataset_inputs
    assert '"num_rows": 60' in dataset.dataset.profile
