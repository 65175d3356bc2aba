"""Every example runs, at its small size, in a fresh repository, as a user would run it; then its runs are read back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hyperopt  # noqa: F401  (dev dependencies the examples use: missing, they fail here)
import matplotlib  # noqa: F401
import sklearn  # noqa: F401
import xgboost  # noqa: F401

import gitexp

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(script: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "--small", *args], cwd=cwd,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result


def test_every_example_has_a_readme_and_is_listed():
    listed = (EXAMPLES / "README.md").read_text()
    scripts = sorted(p for p in EXAMPLES.glob("0*/*.py"))
    assert len(scripts) == 5
    for script in scripts:
        assert (script.parent / "README.md").is_file(), script
        assert f"{script.parent.name}/{script.name}" in listed


def test_01_wine_by_hand_then_autolog(repo, client):
    out = run_example("01_wine/train.py", repo).stdout
    experiment = client.get_experiment_by_name("wine-classification")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    by_hand = runs["rf-by-hand"]
    assert set(by_hand.data.params) == {"max_depth", "n_estimators"} and "accuracy" in by_hand.data.metrics
    assert {f.path for f in client.list_artifacts(by_hand.info.run_id)} == {"confusion_matrix.png", "model",
                                                                           "train.py"}
    assert by_hand.inputs.dataset_inputs[0].dataset.name == "wine-train"
    auto = client.get_run(runs["rf-autolog"].info.run_id)
    assert {"training_accuracy_score", "accuracy_score_X_test"} <= set(auto.data.metrics)
    assert auto.data.tags["estimator_name"] == "RandomForestClassifier"
    search = runs["rf-grid-search"]
    children = [r for r in runs.values() if r.data.tags.get("mlflow.parentRunId") == search.info.run_id]
    assert len(children) == 4 and "best_max_depth" in search.data.params
    assert "accuracy_score_X_test" in out


def test_02_nyc_taxi_hyperopt_and_best_run(repo, client):
    out = run_example("02_nyc_taxi/duration_prediction.py", repo).stdout
    experiment = client.get_experiment_by_name("nyc-taxi-experiment")
    runs = list(client.search_runs([experiment.experiment_id]))
    by_name = {r.info.run_name: r for r in runs}
    lasso = by_name["lasso"]
    assert lasso.data.params["alpha"] == "0.1" and lasso.data.tags["developer"] == "example"
    assert [f.path for f in client.list_artifacts(lasso.info.run_id, "models_pickle")] == ["models_pickle/lin_reg.bin"]
    parent = by_name["xgboost-hyperopt"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(trials) == 3 and all(t.data.tags["model"] == "xgboost" and "rmse" in t.data.metrics for t in trials)
    final = by_name["xgboost-best"]
    assert {"models_mlflow", "preprocessor", "feature_importance_weight.json"} <= {
        f.path for f in client.list_artifacts(final.info.run_id)}
    assert "validation-rmse" in final.data.metrics and "best_iteration" in final.data.metrics
    best = min(trials, key=lambda t: t.data.metrics["rmse"])
    if best.data.metrics["rmse"] < lasso.data.metrics["rmse"]:
        assert f"run id: {best.info.run_id}" in out  # found by the filter string, best first
    assert "test rmse" in out


def test_03_apple_demand_experiment_and_run_tags(repo, client):
    out = run_example("03_apple_demand/forecast.py", repo).stdout
    [experiment] = client.search_experiments(filter_string="tags.`project_name` = 'grocery-forecasting'")
    assert experiment.name == "Apple_Models" and experiment.tags["team"] == "stores-ml"
    runs = list(client.search_runs([experiment.experiment_id], "tags.item = 'apples'", order_by=["metrics.rmse ASC"]))
    assert len(runs) == 3 and {"mae", "mse", "rmse", "r2"} <= set(runs[0].data.metrics)
    assert "rf_apples" in {f.path for f in client.list_artifacts(runs[0].info.run_id)}
    assert runs[0].info.run_name in out.split("metrics.rmse", 1)[1].split()[0:2]
    run_example("03_apple_demand/forecast.py", repo)  # a second run reuses the experiment
    assert len(list(client.search_runs([experiment.experiment_id]))) == 6


def test_04_registry_promotion(repo, client):
    out = run_example("04_registry/promote.py", repo).stdout
    versions = {v.version: v for v in client.search_model_versions("name = 'nyc-taxi-regressor'")}
    assert set(versions) == {1, 2}
    production = client.get_latest_versions("nyc-taxi-regressor", ["Production"])
    assert len(production) == 1
    other = versions[3 - production[0].version]
    assert other.current_stage in ("Archived", "Staging")
    assert "Production model predicts" in out
    model = gitexp.pyfunc.load_model("models:/nyc-taxi-regressor/Production")
    assert model.metadata.run_id == production[0].run_id


def test_05_two_clones_share_runs_with_sync(tmp_path):
    keep = tmp_path / "demo"
    out = run_example("05_sync/two_clones.py", tmp_path, "--keep", str(keep)).stdout
    assert "both clones hold all 3 runs in one 'shared-demand' experiment" in out
    for clone in ("alice", "bob"):
        runs = gitexp.Client(str(keep / clone)).search_runs(
            [gitexp.Client(str(keep / clone)).get_experiment_by_name("shared-demand").experiment_id])
        assert sorted(r.data.tags["author"] for r in runs) == ["alice", "alice", "bob"]


def test_examples_refuse_a_directory_that_is_not_a_repository(tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / "03_apple_demand/forecast.py"), "--small"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "is not inside a git repository" in result.stderr and "--repo" in result.stderr


def test_tutorial_calls_the_examples_do_not_make(repo):
    """Steps of the tutorials (shared/seeds) that no example script runs, with mlflow -> gitexp."""
    import pandas as pd

    from gitexp.entities import ViewType
    from gitexp.tracking import MlflowClient

    client = MlflowClient()
    exp_id = client.create_experiment(name="my-cool-experiment")
    assert [e.name for e in client.list_experiments()] == ["my-cool-experiment", "Default"]  # MLflow 1.x name
    with gitexp.start_run(experiment_id=int(exp_id)):  # an experiment id as a number
        train_df = pd.DataFrame({"a": [1.0, 2.0], "target": [0, 1]})
        gitexp.log_input(gitexp.data.from_pandas(train_df), "training data")
        gitexp.log_input(train_df, "training data")  # the DataFrame itself, as one write-up does
        gitexp.log_metric("rmse", 6.5)
    runs = client.search_runs(experiment_ids=exp_id, filter_string="metrics.rmse < 7",
                              run_view_type=ViewType.ACTIVE_ONLY, max_results=5, order_by=["metrics.rmse ASC"])
    assert len(runs) == 1
    assert [t.value for i in runs[0].inputs.dataset_inputs for t in i.tags] == ["training data"]
