"""scikit-learn autologging: what a fit logs, post-training metrics, parameter search, safety, switches."""

from __future__ import annotations

import json
import logging
import math
import os
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import gitexp
from gitexp.exceptions import InvalidParameterValue

from .autolog_helpers import (  # noqa: F401
    artifact_paths,
    no_autolog_left_behind,
    only_run,
    read_artifact,
    read_json_artifact,
    runs_of,
)
from .conftest import require_mlflow, run_python

CLASSIFIER_METRICS = {"training_precision_score", "training_recall_score", "training_f1_score",
                      "training_accuracy_score", "training_log_loss", "training_roc_auc", "training_score"}
REGRESSOR_METRICS = {"training_mean_squared_error", "training_mean_absolute_error", "training_r2_score",
                     "training_root_mean_squared_error", "training_score"}


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def test_fit_logs_params_metrics_tags_model_and_dataset(client, wine, tmp_path):
    X, y = wine
    gitexp.sklearn.autolog()
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    run = only_run(client)
    assert run.info.status == "FINISHED"
    assert run.data.params == {k: str(v) for k, v in model.get_params().items()}
    assert set(run.data.metrics) == CLASSIFIER_METRICS
    assert run.data.metrics["training_score"] == run.data.metrics["training_accuracy_score"]
    assert run.data.tags["estimator_name"] == "RandomForestClassifier"
    assert run.data.tags["estimator_class"] == "sklearn.ensemble._forest.RandomForestClassifier"
    assert run.data.tags["mlflow.autologging"] == "sklearn"
    assert artifact_paths(client, run.info.run_id) == ["estimator.html", "model", "training_confusion_matrix.png"]
    assert "RandomForestClassifier" in read_artifact(client, run.info.run_id, "estimator.html", tmp_path)
    loaded = gitexp.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    [train] = run.inputs.dataset_inputs
    assert [(t.key, t.value) for t in train.tags] == [("mlflow.data.context", "train")]
    assert json.loads(train.dataset.profile)["features_shape"] == [178, 13]


def test_regressor_metrics_match_sklearn(client, wine):
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    X, y = wine
    gitexp.sklearn.autolog(log_models=False)
    model = LinearRegression().fit(X, y)
    metrics = only_run(client).data.metrics
    assert set(metrics) == REGRESSOR_METRICS
    pred = model.predict(X)
    assert metrics["training_mean_squared_error"] == pytest.approx(mean_squared_error(y, pred))
    assert metrics["training_root_mean_squared_error"] == pytest.approx(math.sqrt(mean_squared_error(y, pred)))
    assert metrics["training_mean_absolute_error"] == pytest.approx(mean_absolute_error(y, pred))
    assert metrics["training_r2_score"] == pytest.approx(r2_score(y, pred))


def test_binary_classifier_plots_and_pos_label(client, wine):
    from sklearn.metrics import f1_score

    X, y = wine
    X, y = X[y < 2], y[y < 2]
    gitexp.sklearn.autolog(log_models=False, pos_label=1)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    run = only_run(client)
    assert {"training_roc_curve.png", "training_precision_recall_curve.png",
            "training_confusion_matrix.png"} <= set(artifact_paths(client, run.info.run_id))
    assert run.data.metrics["training_f1_score"] == pytest.approx(f1_score(y, model.predict(X), pos_label=1))


def test_fit_inside_a_user_run_logs_into_it_and_exclusive_stays_out(client, wine):
    X, y = wine
    gitexp.sklearn.autolog(log_models=False)
    with gitexp.start_run() as run:
        gitexp.log_param("source", "mine")
        LinearRegression().fit(X, y)
    logged = client.get_run(run.info.run_id)
    assert logged.data.params["source"] == "mine" and "fit_intercept" in logged.data.params
    assert "mlflow.autologging" not in logged.data.tags  # not a managed run

    gitexp.sklearn.autolog(log_models=False, exclusive=True)
    with gitexp.start_run() as mine:
        LinearRegression().fit(X, y)
    assert client.get_run(mine.info.run_id).data.metrics == {}
    LinearRegression().fit(X, y)  # no user run: exclusive still autologs into its own run
    assert len(runs_of(client)) == 3


def test_disable_restores_the_original_methods(client, wine):
    X, y = wine
    original_fit = LinearRegression.fit
    original_metric = sklearn.metrics.r2_score
    gitexp.sklearn.autolog()
    assert LinearRegression.fit is not original_fit
    gitexp.sklearn.autolog(disable=True)
    assert LinearRegression.fit is original_fit and sklearn.metrics.r2_score is original_metric
    LinearRegression().fit(X, y)
    assert runs_of(client) == []


def test_post_training_metrics_are_named_after_the_metric_and_dataset(client, wine, tmp_path):
    X, y = wine
    gitexp.sklearn.autolog(log_models=False)
    from sklearn.metrics import f1_score  # imported after autolog(): patched, as MLflow documents

    X_train, X_test, y_train, y_test = X[::2], X[1::2], y[::2], y[1::2]
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X_train, y_train)
    pred = model.predict(X_test)
    acc = sklearn.metrics.accuracy_score(y_test, pred)
    sklearn.metrics.accuracy_score(y_test, pred, normalize=False)
    f1 = f1_score(y_test, pred, average="macro")
    score = model.score(X_test, y_test)
    X_test = X_test[:40].copy()  # another object under the same name
    sklearn.metrics.accuracy_score(y_test[:40], model.predict(X_test))
    sklearn.metrics.accuracy_score(y_test, np.asarray(pred).copy())  # a derived object: not a prediction

    run = only_run(client)
    post = {k: v for k, v in run.data.metrics.items() if not k.startswith("training_")}
    assert post == {"accuracy_score_X_test": pytest.approx(acc),
                    "accuracy_score-2_X_test": pytest.approx(acc * len(y_test)),
                    "f1_score_X_test": pytest.approx(f1),
                    "RandomForestClassifier_score_X_test": pytest.approx(score),
                    "accuracy_score-3_X_test-2": pytest.approx(
                        sklearn.metrics.accuracy_score(y_test[:40], model.predict(X_test)))}
    info = read_json_artifact(client, run.info.run_id, "metric_info.json", tmp_path)
    assert info["accuracy_score_X_test"] == "accuracy_score(y_true=y_test, y_pred=pred)"
    assert info["accuracy_score-2_X_test"] == "accuracy_score(y_true=y_test, y_pred=pred, normalize=False)"
    assert info["RandomForestClassifier_score_X_test"] == "RandomForestClassifier.score(X=X_test, y=y_test)"
    contexts = sorted(t.value for i in run.inputs.dataset_inputs for t in i.tags)
    assert contexts == ["eval", "eval", "train"]


def test_post_training_metrics_can_be_turned_off(client, wine):
    X, y = wine
    gitexp.sklearn.autolog(log_models=False, log_post_training_metrics=False, log_datasets=False)
    model = LinearRegression().fit(X, y)
    sklearn.metrics.r2_score(y, model.predict(X))
    run = only_run(client)
    assert set(run.data.metrics) == REGRESSOR_METRICS
    assert run.inputs.dataset_inputs == []


def test_grid_search_logs_a_parent_and_the_best_candidates_as_children(client, wine, tmp_path):
    X, y = wine
    gitexp.sklearn.autolog(max_tuning_runs=2)
    grid = {"C": [0.01, 0.1, 1.0], "fit_intercept": [True, False]}
    search = GridSearchCV(LogisticRegression(max_iter=300), grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 6
    runs = runs_of(client)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 3
    parent = client.get_run(parents[0].info.run_id)
    assert parent.data.params["best_C"] == str(search.best_params_["C"])
    assert parent.data.params["estimator"] == str(search.estimator)
    assert "C" not in parent.data.params  # the seed estimator's untuned params are not logged
    assert parent.data.metrics["best_cv_score"] == pytest.approx(search.best_score_)
    assert CLASSIFIER_METRICS <= set(parent.data.metrics)
    assert {"best_estimator", "cv_results.csv", "model"} <= set(artifact_paths(client, parent.info.run_id))
    csv = read_artifact(client, parent.info.run_id, "cv_results.csv", tmp_path)
    assert len(csv.strip().splitlines()) == 1 + 6
    children = sorted((client.get_run(r.info.run_id) for r in runs if r is not parents[0]),
                      key=lambda r: r.data.metrics["rank_test_score"])
    assert [c.data.metrics["rank_test_score"] for c in children] == sorted(search.cv_results_["rank_test_score"])[:2]
    best = children[0]
    assert best.data.params["C"] == str(search.best_params_["C"])
    assert best.data.params["max_iter"] == "300"
    assert {"mean_test_score", "std_test_score", "mean_fit_time"} <= set(best.data.metrics)
    assert not any(k.startswith("split") for k in best.data.metrics)
    assert best.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert best.data.tags["estimator_name"] == "LogisticRegression"
    assert best.info.status == "FINISHED" and best.info.start_time == parent.info.start_time
    assert [i.dataset.digest for i in best.inputs.dataset_inputs] == [
        i.dataset.digest for i in parent.inputs.dataset_inputs if i.tags[0].value == "train"]
    gitexp.sklearn.load_model(f"runs:/{parent.info.run_id}/best_estimator").predict(X[:3])


def test_max_tuning_runs_none_logs_every_candidate_and_negative_is_refused(client, wine):
    X, y = wine
    gitexp.sklearn.autolog(max_tuning_runs=None, log_models=False)
    GridSearchCV(LinearRegression(), {"fit_intercept": [True, False], "positive": [True, False]}, cv=2).fit(X, y)
    assert len(runs_of(client)) == 1 + 4
    with pytest.raises(InvalidParameterValue, match="max_tuning_runs"):
        gitexp.sklearn.autolog(max_tuning_runs=-1)


def test_threaded_search_logs_one_parent_only(client, wine):
    import joblib

    X, y = wine
    gitexp.sklearn.autolog(log_models=False, max_tuning_runs=None)
    with joblib.parallel_backend("threading", n_jobs=2):
        GridSearchCV(LinearRegression(), {"fit_intercept": [True, False]}, cv=2, n_jobs=2).fit(X, y)
    assert len(runs_of(client)) == 1 + 2


def test_pipeline_is_one_run_with_its_steps_params_and_preprocessors_alone_are_not_logged(client, wine):
    X, y = wine
    gitexp.sklearn.autolog(log_models=False)
    StandardScaler().fit(X)
    assert runs_of(client) == []
    Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)
    run = only_run(client)
    assert run.data.tags["estimator_name"] == "Pipeline"
    assert run.data.params["clf__max_iter"] == "500" and "scale__with_mean" in run.data.params


def test_fit_predict_of_a_clusterer_is_one_run_without_training_metrics(client, wine, caplog):
    from sklearn.cluster import KMeans

    X, _ = wine
    gitexp.sklearn.autolog(log_models=False)
    with caplog.at_level(logging.WARNING, logger="gitexp"):
        labels = KMeans(n_clusters=3, n_init=2, random_state=0).fit_predict(X)
    assert len(labels) == len(X)
    run = only_run(client)
    assert run.data.tags["estimator_name"] == "KMeans" and run.data.params["n_clusters"] == "3"
    assert run.data.metrics == {}
    assert "given no labels" in caplog.text


def test_cross_validation_calls_log_nothing(client, wine):
    from sklearn.model_selection import cross_val_score

    X, y = wine
    gitexp.sklearn.autolog()
    cross_val_score(LinearRegression(), X, y, cv=3)
    assert runs_of(client) == []


def test_input_example_and_signature_switches(client, wine, tmp_path):
    from gitexp.models import Model

    X, y = wine
    gitexp.sklearn.autolog(log_input_examples=True)
    LinearRegression().fit(X, y)
    gitexp.sklearn.autolog(log_model_signatures=False)
    LinearRegression().fit(X, y)
    first, second = runs_of(client)
    with_both = Model.load(client.download_artifacts(first.info.run_id, "model", str(tmp_path / "a")))
    assert with_both.signature is not None and with_both.saved_input_example_info is not None
    bare = Model.load(client.download_artifacts(second.info.run_id, "model", str(tmp_path / "b")))
    assert bare.signature is None and bare.saved_input_example_info is None


def test_extra_tags_and_registered_model_name(client, wine):
    X, y = wine
    gitexp.sklearn.autolog(extra_tags={"team": "wine", "mlflow.autologging": "mine"},
                           registered_model_name="wine-lr")
    LinearRegression().fit(X, y)
    run = only_run(client)
    assert run.data.tags["team"] == "wine" and run.data.tags["mlflow.autologging"] == "sklearn"
    version = client.get_latest_versions("wine-lr")[0]
    assert version.run_id == run.info.run_id and version.source.endswith("/model")
    with pytest.raises(InvalidParameterValue, match="extra_tags"):
        gitexp.sklearn.autolog(extra_tags=["team"])
    with pytest.raises(InvalidParameterValue, match="serialization_format"):
        gitexp.sklearn.autolog(serialization_format="joblib")


# -- autologging never breaks training ----------------------------------------------------------------------
def test_a_logging_failure_warns_and_returns_the_trained_model(client, wine, monkeypatch, caplog):
    X, y = wine

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(gitexp.sklearn, "log_model", broken)
    gitexp.sklearn.autolog()
    with caplog.at_level(logging.WARNING, logger="gitexp"):
        model = LinearRegression().fit(X, y)
    assert hasattr(model, "coef_")
    assert "disk full" in caplog.text and "training is not affected" in caplog.text
    run = only_run(client)
    assert run.info.status == "FINISHED"  # training worked; the tag says what did not
    assert "disk full" in run.data.tags["gitexp.autolog.error"]


def test_no_repository_means_a_warning_not_an_error(fresh, wine, caplog):
    X, y = wine
    gitexp.sklearn.autolog()
    with caplog.at_level(logging.WARNING, logger="gitexp"):
        model = LinearRegression().fit(X, y)
    assert hasattr(model, "coef_")
    assert "not inside a git repository" in caplog.text


def test_a_training_error_propagates_and_fails_the_managed_run(client):
    gitexp.sklearn.autolog(log_models=False)
    with pytest.raises(ValueError):
        LinearRegression().fit(np.array([[1.0, np.nan], [2.0, 3.0]]), np.array([1.0, 2.0]))
    assert only_run(client).info.status == "FAILED"


def test_silent_hides_warnings_and_log_messages(client, wine, monkeypatch, caplog):
    X, y = wine
    monkeypatch.setattr(gitexp.sklearn, "log_model", lambda *a, **k: 1 / 0)
    gitexp.sklearn.autolog(silent=True)
    with caplog.at_level(logging.DEBUG, logger="gitexp"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LinearRegression().fit(X, y)
    assert caplog.records == [] and caught == []
    assert "ZeroDivisionError" in only_run(client).data.tags["gitexp.autolog.error"]


def test_the_users_warnings_during_training_still_show(client, monkeypatch):
    from sklearn.exceptions import ConvergenceWarning

    gitexp.sklearn.autolog(log_models=False, silent=True)
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LogisticRegression(max_iter=1).fit(X, y)
    assert any(issubclass(w.category, ConvergenceWarning) for w in caught)


# -- gitexp.autolog() -------------------------------------------------------------------------------------
def test_universal_autolog_keeps_a_flavors_own_configuration(client, wine):
    from gitexp._autolog import get_config

    X, y = wine
    gitexp.sklearn.autolog(log_models=False)
    gitexp.autolog(log_models=True, exclude_flavors=["xgboost"])
    assert get_config("sklearn", "log_models") is False
    LinearRegression().fit(X, y)
    assert "model" not in artifact_paths(client, only_run(client).info.run_id)
    gitexp.autolog(disable=True)
    assert get_config("sklearn", "disable") is False  # still the flavor's own call
    with pytest.raises(InvalidParameterValue, match="exclude_flavors"):
        gitexp.autolog(exclude_flavors="sklearn")


def test_universal_autolog_before_importing_sklearn(repo):
    code = (
        "import sys, gitexp\n"
        "gitexp.autolog(log_models=False)\n"
        "assert 'sklearn' not in sys.modules\n"
        "import numpy as np\n"
        "from sklearn.linear_model import LinearRegression\n"
        "LinearRegression().fit(np.arange(10.0).reshape(5, 2), np.arange(5.0))\n"
        "run = gitexp.last_active_run()\n"
        "print(run.data.tags['mlflow.autologging'], sorted(run.data.metrics))\n"
    )
    result = run_python(code, cwd=repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "sklearn"
    assert "training_r2_score" in result.stdout


# -- same keys as MLflow's autolog ------------------------------------------------------------------------------
_COMPARE = """
import json, sys
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
import {lib} as tracker
{setup}
tracker.sklearn.autolog(log_models=False)
tracker.xgboost.autolog(log_models=False, importance_types=["weight", "gain"])
X, y = load_wine(return_X_y=True)
X_test = X[:30]
client = tracker.MlflowClient()

def describe(run_id):
    run = client.get_run(run_id)
    return dict(params=sorted(run.data.params), metrics=sorted(run.data.metrics),
                tags=(sorted(k for k in run.data.tags if not k.startswith("mlflow."))
                      + [run.data.tags["mlflow.autologging"]]),
                artifacts=sorted(f.path for f in client.list_artifacts(run_id)),
                inputs=sorted((i.dataset.name, i.dataset.digest, i.tags[0].value) for i in run.inputs.dataset_inputs),
                history=len(client.get_metric_history(run_id, "validation-mlogloss")))

out = {{}}
for name, est in (("lr", LinearRegression()), ("rf", RandomForestClassifier(n_estimators=3, random_state=0))):
    model = est.fit(X, y)
    model.score(X_test, y[:30])
    out[name] = describe(tracker.last_active_run().info.run_id)
dtrain = xgb.DMatrix(X[::2], label=y[::2])
dvalid = xgb.DMatrix(X[1::2], label=y[1::2])
xgb.train({{"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "seed": 0}}, dtrain, num_boost_round=30,
          evals=[(dvalid, "validation")], early_stopping_rounds=3, verbose_eval=False)
out["xgb"] = describe(tracker.last_active_run().info.run_id)
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
def test_same_params_metrics_tags_artifacts_and_datasets_as_mlflow(repo, tmp_path):
    """scikit-learn and XGBoost autologging, by MLflow and by gitexp, record the same keys and datasets."""
    require_mlflow()
    import xgboost  # noqa: F401  (a dev dependency: missing, the test fails loudly)
    mlflow_dir = tmp_path / "mlflow"
    mlflow_dir.mkdir()
    setup = f"tracker.set_tracking_uri('sqlite:///{mlflow_dir}/m.db')"
    import subprocess
    import sys

    def start(lib: str, code: str, cwd) -> subprocess.Popen:
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
        return subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    # Side by side: the two processes overlap.
    theirs = start("mlflow", _COMPARE.format(lib="mlflow", setup=setup), mlflow_dir)
    ours = start("gitexp", _COMPARE.format(lib="gitexp", setup=""), repo)
    results = {}
    for name, proc in (("gitexp", ours), ("mlflow", theirs)):
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, f"{name}: {err[-3000:]}"
        results[name] = json.loads(out.split("RESULT", 1)[1])
    assert results["gitexp"] == results["mlflow"]


def test_import_of_gitexp_sklearn_stays_light(tmp_path):
    result = run_python("import sys, gitexp, gitexp.sklearn, gitexp.xgboost\n"
                        "print(gitexp.sklearn.autolog.__name__, gitexp.xgboost.autolog.__name__)\n"
                        "print([m for m in ('sklearn', 'xgboost', 'matplotlib') if m in sys.modules])", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["autolog autolog", "[]"]
