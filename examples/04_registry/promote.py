"""Model registry promotion (mlops-zoomcamp 2.5/2.6): register two taxi-duration models, move one
to Staging and then Production, compare them on new data loaded as models:/name/Stage, promote the
better one and archive the other.

    python examples/04_registry/promote.py          # inside a git repository
    python examples/04_registry/promote.py --small --repo /tmp/registry-demo
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gitexp  # noqa: E402
from _shared import read_dataframe, setup, synthetic_trips, trip_dicts, with_int32_indices  # noqa: E402
from gitexp import MlflowClient  # noqa: E402

MODEL_NAME = "nyc-taxi-regressor"


def train_and_log(model, name: str, X_train, y_train, X_val, y_val, dv, work: str) -> str:
    """One run: params, rmse, the model (as 'model') and the DictVectorizer (as 'preprocessor/')."""
    from sklearn.metrics import root_mean_squared_error

    with gitexp.start_run(run_name=name) as run:
        gitexp.set_tag("model", name)
        gitexp.log_params(model.get_params())
        model.fit(X_train, y_train)
        gitexp.log_metric("rmse", root_mean_squared_error(y_val, model.predict(X_val)))
        path = os.path.join(work, "preprocessor.b")
        with open(path, "wb") as f_out:
            pickle.dump(dv, f_out)
        gitexp.log_artifact(path, artifact_path="preprocessor")
        gitexp.sklearn.log_model(model, name="model")
    return run.info.run_id


def main() -> None:
    args = setup(__doc__.splitlines()[0])
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import Lasso
    from sklearn.metrics import root_mean_squared_error

    n = 3000 if args.small else 30000
    df_train, df_val = read_dataframe(synthetic_trips(1, n)), read_dataframe(synthetic_trips(2, n // 2))
    dv = DictVectorizer()
    X_train = with_int32_indices(dv.fit_transform(trip_dicts(df_train)))
    X_val = with_int32_indices(dv.transform(trip_dicts(df_val)))
    y_train, y_val = df_train["duration"].values, df_val["duration"].values
    work = tempfile.mkdtemp(prefix="registry-")

    gitexp.set_experiment("nyc-taxi-registry")
    client = MlflowClient()
    lasso_run = train_and_log(Lasso(alpha=0.01), "lasso", X_train, y_train, X_val, y_val, dv, work)
    forest_run = train_and_log(RandomForestRegressor(n_estimators=10 if args.small else 50, max_depth=12,
                                                     random_state=0, n_jobs=1),
                               "random-forest", X_train, y_train, X_val, y_val, dv, work)

    # Register both; every version starts in stage None.
    for run_id in (lasso_run, forest_run):
        gitexp.register_model(model_uri=f"runs:/{run_id}/model", name=MODEL_NAME)
    latest_versions = client.get_latest_versions(name=MODEL_NAME)
    for version in latest_versions:
        print(f"version: {version.version}, stage: {version.current_stage}")
    lasso_version = next(v.version for v in client.search_model_versions(f"run_id = '{lasso_run}'"))
    forest_version = next(v.version for v in client.search_model_versions(f"run_id = '{forest_run}'"))

    # The first model goes Staging, then Production; the challenger goes to Staging.
    date = datetime.today().date()
    for version, stage in ((lasso_version, "Staging"), (lasso_version, "Production"), (forest_version, "Staging")):
        client.transition_model_version_stage(name=MODEL_NAME, version=version, stage=stage,
                                              archive_existing_versions=False)
        client.update_model_version(name=MODEL_NAME, version=version,
                                    description=f"The model version {version} was transitioned to {stage} on {date}")

    # A deployment engineer compares Staging with Production on unseen data (March).
    df_test = read_dataframe(synthetic_trips(3, n // 2))
    preprocessor = client.download_artifacts(run_id=forest_run, path="preprocessor", dst_path=work)
    with open(os.path.join(preprocessor, "preprocessor.b"), "rb") as f_in:
        dv_test = pickle.load(f_in)
    X_test = with_int32_indices(dv_test.transform(trip_dicts(df_test)))
    y_test = df_test["duration"].values

    def test_model(name: str, stage: str) -> dict[str, float]:
        model = gitexp.pyfunc.load_model(f"models:/{name}/{stage}")
        return {"rmse": root_mean_squared_error(y_test, model.predict(X_test))}

    production = test_model(MODEL_NAME, "Production")
    staging = test_model(MODEL_NAME, "Staging")
    print(f"Production (v{lasso_version}) test rmse: {production['rmse']:.3f}")
    print(f"Staging    (v{forest_version}) test rmse: {staging['rmse']:.3f}")

    if staging["rmse"] < production["rmse"]:
        client.transition_model_version_stage(name=MODEL_NAME, version=forest_version, stage="Production",
                                              archive_existing_versions=True)
        print(f"promoted version {forest_version} to Production; version {lasso_version} archived")
    for version in client.search_model_versions(f"name = '{MODEL_NAME}'"):
        print(f"version: {version.version}, stage: {version.current_stage}, description: {version.description}")

    # Whatever is in Production now is what a service would load.
    served = gitexp.pyfunc.load_model(f"models:/{MODEL_NAME}/Production")
    print("Production model predicts", round(float(served.predict(X_test[:1])[0]), 2), "minutes for the first trip")
    for entry in client.get_registered_model_history(MODEL_NAME):
        if entry.action == "transition_stage":
            print(f"  audit: {entry.user} moved version {entry.version}: {entry.detail}")


if __name__ == "__main__":
    main()
