"""Models move between gitexp and the real mlflow package, in both directions."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

import gitexp
import gitexp.pyfunc
import gitexp.sklearn
import gitexp.xgboost

from .conftest import require_mlflow

mlflow = require_mlflow("mlflow.pyfunc", "mlflow.sklearn", "mlflow.xgboost")


# Explicit requirements: MLflow otherwise infers them in a subprocess per save (seconds each).
NO_INFERENCE = ["scikit-learn", "xgboost"]


@pytest.fixture(autouse=True)
def quiet():
    level = logging.getLogger("mlflow").level
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    logging.getLogger("mlflow").setLevel(level)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"sepal": rng.normal(5, 1, 80), "petal": rng.normal(2, 0.5, 80), "count": rng.integers(0, 5, 80)})
    y = (X["sepal"] + X["petal"] > 7).astype(int)
    return X, y


@pytest.fixture(scope="module")
def classifier(data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)


def test_gitexp_sklearn_model_loads_in_mlflow(repo, data, classifier):
    X, _ = data
    with gitexp.start_run():
        info = gitexp.sklearn.log_model(classifier, name="clf", input_example=X.head(3))
    local = gitexp.artifacts.download_artifacts(info.model_uri)
    expected = classifier.predict(X)
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(local).predict(X), expected)
    np.testing.assert_array_equal(mlflow.sklearn.load_model(local).predict(X), expected)
    theirs = mlflow.models.Model.load(local)
    assert theirs.signature.to_dict() == info.signature.to_dict()
    assert theirs.run_id == info.run_id
    pd.testing.assert_frame_equal(theirs.load_input_example(local), X.head(3).reset_index(drop=True))
    # MLflow enforces the signature gitexp wrote.
    with pytest.raises(mlflow.exceptions.MlflowException, match="petal"):
        mlflow.pyfunc.load_model(local).predict(X[["sepal", "count"]])


@pytest.mark.parametrize("serialization_format", ["skops", "cloudpickle", "pickle"])
def test_mlflow_sklearn_model_loads_in_gitexp(tmp_path, data, classifier, serialization_format):
    X, _ = data
    path = str(tmp_path / "m")
    trusted = ["sklearn.pipeline.Pipeline"] if serialization_format == "skops" else None
    mlflow.sklearn.save_model(classifier, path, serialization_format=serialization_format, input_example=X.head(2),
                              skops_trusted_types=trusted, pip_requirements=NO_INFERENCE)
    expected = classifier.predict(X)
    np.testing.assert_array_equal(gitexp.pyfunc.load_model(path).predict(X), expected)
    np.testing.assert_array_equal(gitexp.sklearn.load_model(path).predict(X), expected)
    loaded = gitexp.pyfunc.load_model(path)
    pd.testing.assert_frame_equal(loaded.input_example, X.head(2).reset_index(drop=True))
    with pytest.raises(InvalidParameterValueError, match="missing required input column"):
        loaded.predict(X[["sepal"]])


InvalidParameterValueError = gitexp.exceptions.InvalidParameterValue


def test_xgboost_both_directions(repo, tmp_path, data):
    import xgboost as xgb

    X, y = data
    booster = xgb.train({"max_depth": 2, "objective": "binary:logistic"}, xgb.DMatrix(X, label=y), 4)
    classifier = xgb.XGBClassifier(n_estimators=4, max_depth=2).fit(X, y)
    with gitexp.start_run():
        booster_uri = gitexp.xgboost.log_model(booster, name="booster", input_example=X.head(2)).model_uri
        clf_uri = gitexp.xgboost.log_model(classifier, name="clf", model_format="json").model_uri
    booster_dir = gitexp.artifacts.download_artifacts(booster_uri)
    clf_dir = gitexp.artifacts.download_artifacts(clf_uri)
    np.testing.assert_allclose(mlflow.pyfunc.load_model(booster_dir).predict(X), booster.predict(xgb.DMatrix(X)))
    theirs = mlflow.xgboost.load_model(clf_dir)
    assert type(theirs) is xgb.XGBClassifier
    np.testing.assert_array_equal(theirs.predict(X), classifier.predict(X))

    mlflow.xgboost.save_model(booster, str(tmp_path / "b"), input_example=X.head(2), pip_requirements=NO_INFERENCE)
    mlflow.xgboost.save_model(classifier, str(tmp_path / "c"), pip_requirements=NO_INFERENCE)
    ours = gitexp.xgboost.load_model(str(tmp_path / "b"))
    np.testing.assert_allclose(ours.predict(xgb.DMatrix(X)), booster.predict(xgb.DMatrix(X)))
    np.testing.assert_allclose(gitexp.pyfunc.load_model(str(tmp_path / "b")).predict(X),
                               booster.predict(xgb.DMatrix(X)))
    assert type(gitexp.xgboost.load_model(str(tmp_path / "c"))) is xgb.XGBClassifier
    np.testing.assert_array_equal(gitexp.pyfunc.load_model(str(tmp_path / "c")).predict(X), classifier.predict(X))


class AddColumns(gitexp.pyfunc.PythonModel):
    def load_context(self, context):
        self.offset = float(open(context.artifacts["offset"]).read())

    def predict(self, context, model_input, params=None):
        return model_input["sepal"] + model_input["petal"] + self.offset


def test_custom_python_models_both_directions(tmp_path, data):
    X, _ = data
    (tmp_path / "offset.txt").write_text("10")
    gitexp.pyfunc.save_model(tmp_path / "ours", python_model=AddColumns(),
                             artifacts={"offset": str(tmp_path / "offset.txt")}, input_example=X.head(2))
    theirs = mlflow.pyfunc.load_model(str(tmp_path / "ours"))
    np.testing.assert_allclose(theirs.predict(X), X["sepal"] + X["petal"] + 10)

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input * 2

    mlflow.pyfunc.save_model(str(tmp_path / "mlflow"), python_model=Doubler(), input_example=np.array([[1.0, 2.0]]),
                             pip_requirements=NO_INFERENCE)
    loaded = gitexp.pyfunc.load_model(str(tmp_path / "mlflow"))
    np.testing.assert_allclose(loaded.predict(np.array([[3.0, 4.0]])), [[6.0, 8.0]])
    with pytest.raises(gitexp.models._enforce.SchemaEnforcementError, match="shape"):
        loaded.predict(np.array([1.0, 2.0, 3.0]))
