"""Apple demand forecasting (MLflow's tracking-server lab, without a server): experiment tags,
searching experiments and runs by tag, runs with models and signatures.

    python examples/03_apple_demand/forecast.py          # inside a git repository
    python examples/03_apple_demand/forecast.py --small --repo /tmp/apples-demo
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from pprint import pprint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gitexp  # noqa: E402
from _shared import setup  # noqa: E402
from gitexp import MlflowClient  # noqa: E402


def generate_apple_sales(base_demand: int = 1000, n_rows: int = 5000, seed: int = 9999):
    """Daily apple demand with seasonality (harvests), inflation, weekends, promotions and price."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    end = datetime(2024, 6, 30)
    dates = pd.to_datetime([end - timedelta(days=i) for i in range(n_rows)][::-1])
    months = dates.month.to_numpy()
    harvest = np.sin(2 * np.pi * (months - 3) / 12) + np.sin(2 * np.pi * (months - 9) / 12)
    df = pd.DataFrame({
        "date": dates,
        "average_temperature": rng.uniform(10, 35, n_rows),
        "rainfall": rng.exponential(5, n_rows),
        "weekend": (dates.day_of_week >= 5).astype(int),
        "holiday": rng.choice([0, 1], n_rows, p=[0.97, 0.03]),
        "price_per_kg": rng.uniform(0.5, 3, n_rows) - harvest * 0.5,
    })
    # Promotions follow the harvest peaks by a month (April, October), else now and then.
    df["promo"] = np.where(np.isin(months, [4, 10]), 1, rng.choice([0, 1], n_rows, p=[0.85, 0.15]))
    inflation = 1 + (dates.year - dates.year.min()).to_numpy() * 0.03
    df["demand"] = (base_demand - df["price_per_kg"] * 50 + harvest * 50 + df["promo"] * 200
                    + df["weekend"] * 300 + rng.normal(0, 50, n_rows)) * inflation
    df["previous_days_demand"] = df["demand"].shift(1).bfill()  # the tutorial's fillna(method="bfill")
    return df


def main() -> None:
    args = setup(__doc__.splitlines()[0])
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    from sklearn.model_selection import train_test_split

    client = MlflowClient()

    # The Default experiment is always there.
    default_experiment = [{"name": e.name, "lifecycle_stage": e.lifecycle_stage}
                          for e in client.search_experiments() if e.name == "Default"][0]
    pprint(default_experiment)

    # An experiment with searchable tags (created once; a second run of this script reuses it).
    experiment_tags = {
        "project_name": "grocery-forecasting",
        "store_dept": "produce",
        "team": "stores-ml",
        "project_quarter": "Q3-2023",
        "mlflow.note.content": "This is the grocery forecasting project. "
                               "This experiment contains the produce models for apples.",
    }
    if client.get_experiment_by_name("Apple_Models") is None:
        client.create_experiment(name="Apple_Models", tags=experiment_tags)
    apples_experiment = client.search_experiments(filter_string="tags.`project_name` = 'grocery-forecasting'")
    print("found by tag:", apples_experiment[0].name, apples_experiment[0].tags["team"])

    data = generate_apple_sales(n_rows=1500 if args.small else 5000)
    X = data.drop(columns=["date", "demand"])
    y = data["demand"]
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.2, random_state=42)

    gitexp.set_experiment("Apple_Models")
    artifact_path = "rf_apples"
    for run_name, depth in (("apples_rf_test", 6), ("apples_rf_shallow", 3), ("apples_rf_deep", 12)):
        params = {"n_estimators": 20 if args.small else 100, "max_depth": depth, "min_samples_split": 10,
                  "min_samples_leaf": 4, "bootstrap": True, "oob_score": False, "random_state": 888}
        rf = RandomForestRegressor(**params).fit(X_train, y_train)
        y_pred = rf.predict(X_val)
        mse = mean_squared_error(y_val, y_pred)
        metrics = {"mae": mean_absolute_error(y_val, y_pred), "mse": mse, "rmse": float(np.sqrt(mse)),
                   "r2": r2_score(y_val, y_pred)}
        with gitexp.start_run(run_name=run_name, tags={"item": "apples", "store_dept": "produce"}) as run:
            gitexp.log_params(params)
            gitexp.log_metrics(metrics)
            gitexp.sklearn.log_model(sk_model=rf, input_example=X_val[:5], artifact_path=artifact_path)
        print(f"{run_name}: rmse={metrics['rmse']:.1f} r2={metrics['r2']:.3f}  (run {run.info.run_id})")

    # Runs by tag (and metric), best first.
    best = gitexp.search_runs(experiment_names=["Apple_Models"],
                              filter_string="tags.item = 'apples' and tags.store_dept = 'produce'",
                              order_by=["metrics.rmse ASC"])
    print(best[["tags.mlflow.runName", "params.max_depth", "metrics.rmse"]].head(3).to_string(index=False))
    model = gitexp.pyfunc.load_model(f"runs:/{best.run_id.iloc[0]}/{artifact_path}")
    print("signature inputs:", [c.name for c in model.metadata.get_input_schema().inputs][:4], "...")
    print("prediction for the first validation day:", round(float(model.predict(X_val[:1])[0]), 1))


if __name__ == "__main__":
    main()
