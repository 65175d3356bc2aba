"""Models: the MLflow model format, flavors, signatures and their enforcement, model URIs."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import yaml

import gitexp
import gitexp.pyfunc
import gitexp.sklearn
import gitexp.xgboost
from gitexp.exceptions import GitexpError, InvalidParameterValue, ResourceAlreadyExists
from gitexp.models import Model, ModelSignature, infer_signature
from gitexp.models._enforce import SchemaEnforcementError
from gitexp.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema, TensorSpec

from .conftest import require_mlflow


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"temperature": rng.normal(20, 5, 60), "rain": rng.integers(0, 10, 60)})
    y = X["temperature"] * 3 + X["rain"]
    return X, y


@pytest.fixture(scope="module")
def forest(data):
    from sklearn.ensemble import RandomForestRegressor

    X, y = data
    return RandomForestRegressor(n_estimators=4, max_depth=3, random_state=0).fit(X, y)


def test_sklearn_log_model_as_in_the_tutorial(repo, data, forest):
    X, y = data
    with gitexp.start_run() as run:
        info = gitexp.sklearn.log_model(sk_model=forest, input_example=X.head(5), artifact_path="rf_apples")
    assert info.model_uri == f"runs:/{run.info.run_id}/rf_apples"
    assert info.signature.inputs == Schema([ColSpec(DataType.double, "temperature"), ColSpec(DataType.long, "rain")])
    assert info.signature.outputs == Schema([ColSpec(DataType.double)])
    names = {f.path.split("/")[-1] for f in gitexp.Client().list_artifacts(run.info.run_id, "rf_apples")}
    assert names == {"MLmodel", "model.pkl", "requirements.txt", "python_env.yaml", "conda.yaml",
                     "input_example.json", "serving_input_example.json"}

    local = gitexp.artifacts.download_artifacts(info.model_uri)
    meta = yaml.safe_load(open(os.path.join(local, "MLmodel")))
    assert meta["run_id"] == run.info.run_id and meta["artifact_path"] == "rf_apples"
    assert meta["flavors"]["python_function"]["loader_module"] == "mlflow.sklearn"
    assert meta["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"
    assert meta["saved_input_example_info"] == {"artifact_path": "input_example.json", "type": "dataframe",
                                                "pandas_orient": "split",
                                                "serving_input_path": "serving_input_example.json"}
    assert meta["model_size_bytes"] > 0 and len(meta["model_uuid"]) == 32
    example = json.load(open(os.path.join(local, "input_example.json")))
    assert example["columns"] == ["temperature", "rain"] and len(example["data"]) == 5
    assert "dataframe_split" in json.load(open(os.path.join(local, "serving_input_example.json")))
    reqs = open(os.path.join(local, "requirements.txt")).read().splitlines()
    assert any(r.startswith("scikit-learn==") for r in reqs) and any(r.startswith("cloudpickle==") for r in reqs)
    assert yaml.safe_load(open(os.path.join(local, "python_env.yaml")))["dependencies"] == ["-r requirements.txt"]
    assert yaml.safe_load(open(os.path.join(local, "conda.yaml")))["name"] == "mlflow-env"

    # Seed tutorial 003: load it back by run URI.
    model = gitexp.sklearn.load_model(f"runs:/{run.info.run_id}/rf_apples")
    np.testing.assert_allclose(model.predict(X), forest.predict(X))
    pyfunc_model = gitexp.pyfunc.load_model(info.model_uri)
    np.testing.assert_allclose(pyfunc_model.predict(X), forest.predict(X))
    pd.testing.assert_frame_equal(pyfunc_model.input_example, X.head(5).reset_index(drop=True))
    assert gitexp.pyfunc.load_model(info.model_uri)._model_dir == pyfunc_model._model_dir  # cached copy reused
    history = json.loads(gitexp.get_run(run.info.run_id).data.tags["mlflow.log-model.history"])
    assert history[0]["artifact_path"] == "rf_apples" and "sklearn" in history[0]["flavors"]


def test_xgboost_booster_as_in_the_tutorial(repo, data):
    import xgboost as xgb

    X, y = data
    with gitexp.start_run() as run:
        booster = xgb.train({"max_depth": 2, "objective": "reg:squarederror"}, xgb.DMatrix(X, label=y), 5)
        gitexp.xgboost.log_model(booster, artifact_path="models_mlflow")
    logged_model = f"runs:/{run.info.run_id}/models_mlflow"
    loaded_model = gitexp.pyfunc.load_model(logged_model)
    xgboost_model = gitexp.xgboost.load_model(logged_model)
    assert isinstance(xgboost_model, xgb.Booster)
    expected = booster.predict(xgb.DMatrix(X))
    np.testing.assert_allclose(xgboost_model.predict(xgb.DMatrix(X)), expected)
    np.testing.assert_allclose(loaded_model.predict(X), expected)
    meta = Model.load(gitexp.models.resolve_model_uri(logged_model))
    assert meta.flavors["xgboost"]["model_class"] == "xgboost.core.Booster"
    assert meta.flavors["xgboost"]["data"] == "model.ubj"


def test_name_and_artifact_path(repo, forest):
    with gitexp.start_run() as run:
        assert gitexp.sklearn.log_model(forest, name="by_name").artifact_path == "by_name"
        assert gitexp.sklearn.log_model(forest, "positional").artifact_path == "positional"
        assert gitexp.sklearn.log_model(forest).artifact_path == "model"
        with pytest.raises(InvalidParameterValue, match="once"):
            gitexp.sklearn.log_model(forest, artifact_path="a", name="b")
        with pytest.raises(ResourceAlreadyExists, match="already has an artifact directory 'by_name'"):
            gitexp.sklearn.log_model(forest, name="by_name")
        with pytest.raises(InvalidParameterValue, match="'..'"):
            gitexp.sklearn.log_model(forest, name="../outside")
        with pytest.raises(InvalidParameterValue, match="logged model"):
            gitexp.sklearn.log_model(forest, name="x", params={"a": 1})
    assert {f.path for f in gitexp.Client().list_artifacts(run.info.run_id)} == {"by_name", "positional", "model"}


def test_save_model_refuses_a_non_empty_directory(tmp_path, forest):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("mine")
    with pytest.raises(ResourceAlreadyExists, match="not empty"):
        gitexp.sklearn.save_model(forest, tmp_path / "m")
    assert (tmp_path / "m" / "keep.txt").read_text() == "mine"


def test_signature_enforcement_errors(tmp_path, data, forest):
    X, _ = data
    gitexp.sklearn.save_model(forest, tmp_path / "m", input_example=X.head(3))
    model = gitexp.pyfunc.load_model(str(tmp_path / "m"))
    with pytest.raises(SchemaEnforcementError, match=r"missing required input column\(s\) \['rain'\]"):
        model.predict(X[["temperature"]])
    with pytest.raises(SchemaEnforcementError, match="named columns.*numpy array of shape"):
        model.predict(X.to_numpy())
    with pytest.raises(SchemaEnforcementError, match="column 'rain' holds .* long.*pd.to_numeric"):
        model.predict(X.assign(rain=X["rain"].astype(str)))
    with pytest.raises(SchemaEnforcementError, match="'temperature' has type int64 but the signature says double"):
        model.predict(X.assign(temperature=np.arange(60) * 10))
    assert isinstance(SchemaEnforcementError("x"), InvalidParameterValue)
    # Safe conversions pass: int32 -> long, int32 -> double; extra columns are dropped; dict rows work.
    ok = X.assign(rain=X["rain"].astype("int32"), temperature=X["temperature"].astype("float32"), extra=1)
    np.testing.assert_allclose(model.predict(ok), forest.predict(X.astype({"temperature": "float32"})), rtol=1e-5)
    one = model.predict({"temperature": 21.5, "rain": 3})
    assert one.shape == (1,)
    rows = model.predict([{"temperature": 21.5, "rain": 3}, {"temperature": 10.0, "rain": 0}])
    assert rows.shape == (2,)


def test_tensor_signatures_accept_numpy_and_scipy_sparse(tmp_path):
    from scipy import sparse
    from sklearn.linear_model import LinearRegression

    X = np.arange(40, dtype=np.float64).reshape(10, 4)
    model = LinearRegression().fit(X, X.sum(axis=1))
    gitexp.sklearn.save_model(model, tmp_path / "m", input_example=X[:2])
    loaded = gitexp.pyfunc.load_model(str(tmp_path / "m"))
    assert loaded.metadata.get_input_schema() == Schema([TensorSpec(np.dtype("float64"), (-1, 4))])
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict(sparse.csr_matrix(X)), model.predict(X))
    np.testing.assert_allclose(loaded.predict(pd.DataFrame(X)), model.predict(X))
    with pytest.raises(SchemaEnforcementError, match=r"dtype float32 but the signature expects float64.*astype"):
        loaded.predict(X.astype(np.float32))
    with pytest.raises(SchemaEnforcementError, match=r"shape \(10, 3\) but the signature expects \(-1, 4\)"):
        loaded.predict(X[:, :3])
    with pytest.raises(SchemaEnforcementError, match="takes a numpy array"):
        loaded.predict("not data")


def test_params_are_checked_and_defaulted(tmp_path):
    class Scaled(gitexp.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input["x"] * params["factor"]

    signature = infer_signature(pd.DataFrame({"x": [1.0]}), params={"factor": 2.0})
    gitexp.pyfunc.save_model(tmp_path / "m", python_model=Scaled(), signature=signature)
    model = gitexp.pyfunc.load_model(str(tmp_path / "m"))
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    assert list(model.predict(frame)) == [2.0, 4.0]
    assert list(model.predict(frame, params={"factor": 3})) == [3.0, 6.0]  # int widens to double
    with pytest.raises(SchemaEnforcementError, match="'factor': expected a double, got 'big'"):
        model.predict(frame, params={"factor": "big"})
    assert signature.params == ParamSchema([ParamSpec("factor", DataType.double, 2.0)])


def test_custom_python_model_with_artifacts_and_code(repo, tmp_path):
    (tmp_path / "vocab.txt").write_text("a b c")
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "gitexp_test_helper.py").write_text("def shout(s):\n    return s.upper()\n")

    class Lookup(gitexp.pyfunc.PythonModel):
        def load_context(self, context):
            self.vocab = open(context.artifacts["vocab"]).read().split()
            self.run_vocab = open(context.artifacts["remote"]).read()

        def predict(self, context, model_input, params=None):
            import gitexp_test_helper

            return [gitexp_test_helper.shout(w) for w in model_input["word"] if w in self.vocab]

    with gitexp.start_run() as run:
        gitexp.log_text("from the run", "inputs/note.txt")
        info = gitexp.pyfunc.log_model(
            name="lookup", python_model=Lookup(), code_paths=[str(tmp_path / "helpers" / "gitexp_test_helper.py")],
            artifacts={"vocab": str(tmp_path / "vocab.txt"), "remote": f"runs:/{run.info.run_id}/inputs/note.txt"},
            input_example=pd.DataFrame({"word": ["a", "z"]}))
    model = gitexp.pyfunc.load_model(info.model_uri)
    assert model.predict(pd.DataFrame({"word": ["a", "c", "q"]})) == ["A", "C"]
    assert model.unwrap_python_model().run_vocab == "from the run"
    conf = model.metadata.flavors["python_function"]
    assert conf["loader_module"] == "mlflow.pyfunc.model" and conf["code"] == "code"
    assert conf["artifacts"]["vocab"]["path"] == "artifacts/vocab.txt"
    reqs = gitexp.artifacts.load_text(f"{info.model_uri}/requirements.txt").splitlines()
    assert any(r.startswith("cloudpickle==") for r in reqs) and any(r.startswith("gitexp") for r in reqs)

    # predict without the context argument, and a plain function as the model
    class NoContext(gitexp.pyfunc.PythonModel):
        def predict(self, model_input, params=None):
            return len(model_input)

    gitexp.pyfunc.save_model(tmp_path / "nc", python_model=NoContext())
    assert gitexp.pyfunc.load_model(str(tmp_path / "nc")).predict([1, 2, 3]) == 3
    gitexp.pyfunc.save_model(tmp_path / "fn", python_model=lambda df: df * 2, input_example=np.array([1.0, 2.0]))
    np.testing.assert_allclose(gitexp.pyfunc.load_model(str(tmp_path / "fn")).predict(np.array([3.0])), [6.0])


def test_environment_options(tmp_path, forest):
    gitexp.sklearn.save_model(forest, tmp_path / "a", pip_requirements=["scikit-learn", "pandas>=2"])
    assert (tmp_path / "a" / "requirements.txt").read_text().splitlines() == ["scikit-learn", "pandas>=2"]
    gitexp.sklearn.save_model(forest, tmp_path / "b", extra_pip_requirements=["my-features==1.0"])
    assert (tmp_path / "b" / "requirements.txt").read_text().splitlines()[-1] == "my-features==1.0"
    conda = {"name": "env", "dependencies": ["python=3.11", {"pip": ["scikit-learn==1.0"]}]}
    gitexp.sklearn.save_model(forest, tmp_path / "c", conda_env=conda)
    assert (tmp_path / "c" / "requirements.txt").read_text() == "scikit-learn==1.0"
    assert yaml.safe_load((tmp_path / "c" / "conda.yaml").read_text()) == conda
    with pytest.raises(InvalidParameterValue, match="only one of"):
        gitexp.sklearn.save_model(forest, tmp_path / "d", conda_env=conda, pip_requirements=["x"])


def test_unpickling_can_be_switched_off(tmp_path, forest, monkeypatch):
    gitexp.sklearn.save_model(forest, tmp_path / "m")
    monkeypatch.setenv("GITEXP_ALLOW_PICKLE_DESERIALIZATION", "false")
    with pytest.raises(GitexpError, match="runs code from whoever saved the model"):
        gitexp.sklearn.load_model(str(tmp_path / "m"))
    with pytest.raises(GitexpError, match="GITEXP_ALLOW_PICKLE_DESERIALIZATION=false"):
        gitexp.pyfunc.load_model(str(tmp_path / "m"))


def test_unknown_flavors_and_missing_models_are_clear(tmp_path):
    (tmp_path / "odd").mkdir()
    Model(flavors={"python_function": {"loader_module": "some_vendor.flavor_that_does_not_exist"}}).save(
        str(tmp_path / "odd" / "MLmodel"))
    with pytest.raises(GitexpError, match="'some_vendor.flavor_that_does_not_exist', a flavor gitexp does not include"):
        gitexp.pyfunc.load_model(str(tmp_path / "odd"))
    with pytest.raises(gitexp.exceptions.ResourceDoesNotExist, match="does not exist"):
        gitexp.pyfunc.load_model(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(gitexp.exceptions.ResourceDoesNotExist, match="No MLmodel file"):
        gitexp.sklearn.load_model(str(tmp_path / "empty"))


def test_model_uri_schemes_can_be_registered(repo, forest):
    with gitexp.start_run() as run:
        gitexp.sklearn.log_model(forest, name="model")
    calls = []

    def models_scheme(uri: str) -> str:
        calls.append(uri)
        return f"runs:/{run.info.run_id}/model"

    gitexp.artifacts.register_uri_scheme("testmodels", models_scheme)
    try:
        loaded = gitexp.sklearn.load_model("testmodels:/forest/1")
    finally:
        gitexp.artifacts._SCHEMES.pop("testmodels")
    assert calls == ["testmodels:/forest/1"] and type(loaded).__name__ == "RandomForestRegressor"


def test_signature_json_round_trip_matches_mlflow(data):
    require_mlflow()
    from mlflow.models import infer_signature as mlflow_infer

    X, y = data
    frame = X.assign(name=["n"] * len(X), when=pd.Timestamp("2024-01-01"), flag=True,
                     tags=[["a", "b"]] * len(X))
    for inputs, outputs, params in ((frame, y.to_numpy(), {"k": 3, "mode": "fast", "ws": [1.0, 2.0]}),
                                    (np.zeros((2, 3), dtype=np.float32), None, None),
                                    ({"ids": np.array([1, 2])}, None, None)):
        ours = infer_signature(inputs, outputs, params).to_dict()
        assert ours == mlflow_infer(inputs, outputs, params).to_dict()
        assert ModelSignature.from_dict(ours).to_dict() == ours
