"""NYC-taxi trip duration (mlops-zoomcamp, module 2) on synthetic trips: Lasso, xgboost tuned with
hyperopt in nested runs, the best run found with a filter string, the model and preprocessor logged.

    python examples/02_nyc_taxi/duration_prediction.py          # inside a git repository
    python examples/02_nyc_taxi/duration_prediction.py --small --repo /tmp/taxi-demo
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gitexp  # noqa: E402
from _shared import read_dataframe, setup, synthetic_trips, trip_dicts, with_int32_indices  # noqa: E402
from gitexp import MlflowClient  # noqa: E402
from gitexp.entities import ViewType  # noqa: E402


def main() -> None:
    args = setup(__doc__.splitlines()[0])
    import numpy as np
    import xgboost as xgb
    from hyperopt import STATUS_OK, Trials, fmin, hp, tpe
    from hyperopt.pyll import scope
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import Lasso
    from sklearn.metrics import root_mean_squared_error

    n = 2500 if args.small else 40000
    df_train = read_dataframe(synthetic_trips(1, n))
    df_val = read_dataframe(synthetic_trips(2, n // 2))
    dv = DictVectorizer()
    X_train = with_int32_indices(dv.fit_transform(trip_dicts(df_train)))
    X_val = with_int32_indices(dv.transform(trip_dicts(df_val)))
    y_train, y_val = df_train["duration"].values, df_val["duration"].values
    work = tempfile.mkdtemp(prefix="taxi-")  # the tutorial's models/ folder, outside your working tree

    experiment = gitexp.set_experiment("nyc-taxi-experiment")

    # Lasso, logged by hand; the pickled (vectorizer, model) as an artifact.
    with gitexp.start_run(run_name="lasso"):
        gitexp.set_tag("developer", "example")
        gitexp.set_tag("model", "lasso")
        gitexp.log_param("train-data-path", "synthetic:green_tripdata_2021-01")
        gitexp.log_param("valid-data-path", "synthetic:green_tripdata_2021-02")
        alpha = 0.1
        gitexp.log_param("alpha", alpha)
        lr = Lasso(alpha=alpha).fit(X_train, y_train)
        lasso_rmse = root_mean_squared_error(y_val, lr.predict(X_val))
        gitexp.log_metric("rmse", lasso_rmse)
        with open(os.path.join(work, "lin_reg.bin"), "wb") as f_out:
            pickle.dump((dv, lr), f_out)
        gitexp.log_artifact(local_path=os.path.join(work, "lin_reg.bin"), artifact_path="models_pickle")
    print(f"lasso rmse: {lasso_rmse:.3f}")

    # xgboost tuned with hyperopt: one parent run, each trial a nested run.
    train = xgb.DMatrix(X_train, label=y_train)
    valid = xgb.DMatrix(X_val, label=y_val)
    rounds, patience = (40, 10) if args.small else (1000, 50)

    def objective(params):
        with gitexp.start_run(nested=True):
            gitexp.set_tag("model", "xgboost")
            gitexp.log_params(params)
            booster = xgb.train(params=params, dtrain=train, num_boost_round=rounds,
                                evals=[(valid, "validation")], early_stopping_rounds=patience, verbose_eval=False)
            rmse = root_mean_squared_error(y_val, booster.predict(valid))
            gitexp.log_metric("rmse", rmse)
        return {"loss": rmse, "status": STATUS_OK}

    search_space = {
        "max_depth": scope.int(hp.quniform("max_depth", 4, 100, 1)),
        "learning_rate": hp.loguniform("learning_rate", -3, 0),
        "reg_alpha": hp.loguniform("reg_alpha", -5, -1),
        "reg_lambda": hp.loguniform("reg_lambda", -6, -1),
        "min_child_weight": hp.loguniform("min_child_weight", -1, 3),
        "objective": "reg:squarederror",  # the tutorial's 'reg:linear' is deprecated in xgboost 2+
        "seed": 42,
    }
    with gitexp.start_run(run_name="xgboost-hyperopt") as parent:
        best = fmin(fn=objective, space=search_space, algo=tpe.suggest, max_evals=3 if args.small else 20,
                    trials=Trials(), rstate=np.random.default_rng(42), show_progressbar=False)
        gitexp.set_tag("model", "xgboost-search")
    print(f"hyperopt best: {best}")

    # The best runs, found with a filter string (as in the tutorial's MlflowClient.search_runs).
    client = MlflowClient()
    runs = client.search_runs(
        experiment_ids=experiment.experiment_id,
        filter_string=f"metrics.rmse < {lasso_rmse:.4f} and tags.model = 'xgboost' "
                      f"and tags.mlflow.parentRunId = '{parent.info.run_id}'",
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=5,
        order_by=["metrics.rmse ASC"],
    )
    for run in runs:
        print(f"run id: {run.info.run_id}, rmse: {run.data.metrics['rmse']:.4f}")
    best_run = runs[0] if runs else client.search_runs(
        experiment.experiment_id, "tags.model = 'xgboost'", order_by=["metrics.rmse ASC"], max_results=1)[0]
    best_params = {k: v for k, v in best_run.data.params.items()}
    best_params = {k: (int(v) if k == "max_depth" or k == "seed" else
                       v if k == "objective" else float(v)) for k, v in best_params.items()}

    # The final model: autolog fills the run in; the preprocessor goes in as an artifact.
    gitexp.xgboost.autolog(log_models=False)
    with gitexp.start_run(run_name="xgboost-best") as final:
        gitexp.set_tag("model", "xgboost")
        booster = xgb.train(params=best_params, dtrain=train, num_boost_round=rounds,
                            evals=[(valid, "validation")], early_stopping_rounds=patience, verbose_eval=False)
        rmse = root_mean_squared_error(y_val, booster.predict(valid))
        gitexp.log_metric("rmse", rmse)
        with open(os.path.join(work, "preprocessor.b"), "wb") as f_out:
            pickle.dump(dv, f_out)
        gitexp.log_artifact(os.path.join(work, "preprocessor.b"), artifact_path="preprocessor")
        gitexp.xgboost.log_model(booster, artifact_path="models_mlflow")
    gitexp.xgboost.autolog(disable=True)
    print(f"final run {final.info.run_id}: rmse {rmse:.3f}, "
          f"{len(client.get_metric_history(final.info.run_id, 'validation-rmse'))} validation-rmse points")

    # Predictions: the logged model as a PyFuncModel and as an xgboost Booster.
    logged_model = f"runs:/{final.info.run_id}/models_mlflow"
    loaded_model = gitexp.pyfunc.load_model(logged_model)
    xgboost_model = gitexp.xgboost.load_model(logged_model)
    y_pred = xgboost_model.predict(valid)
    assert np.allclose(y_pred, loaded_model.predict(X_val))
    local = client.download_artifacts(run_id=final.info.run_id, path="preprocessor", dst_path=work)
    with open(os.path.join(local, "preprocessor.b"), "rb") as f_in:
        dv_loaded = pickle.load(f_in)
    df_test = read_dataframe(synthetic_trips(3, n // 2))
    test_rmse = root_mean_squared_error(df_test["duration"].values,
                                        loaded_model.predict(with_int32_indices(dv_loaded.transform(trip_dicts(df_test)))))
    print(f"test rmse (March, reloaded model and preprocessor): {test_rmse:.3f}")


if __name__ == "__main__":
    main()
