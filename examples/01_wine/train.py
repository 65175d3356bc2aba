"""Wine classification with a random forest: logged by hand, then with autolog, then a tuned search.

    python examples/01_wine/train.py            # inside a git repository
    python examples/01_wine/train.py --small --repo /tmp/wine-demo
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gitexp  # noqa: E402
from _shared import setup  # noqa: E402


def main() -> None:
    args = setup(__doc__.splitlines()[0])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score
    from sklearn.model_selection import GridSearchCV, train_test_split

    wine = load_wine()
    X_train, X_test, y_train, y_test = train_test_split(wine.data, wine.target, test_size=0.1, random_state=42)
    max_depth, n_estimators = 5, (5 if args.small else 10)
    gitexp.set_experiment("wine-classification")

    # 1. By hand: every parameter, metric and file is logged explicitly.
    with gitexp.start_run(run_name="rf-by-hand") as run:
        rf = RandomForestClassifier(max_depth=max_depth, n_estimators=n_estimators, random_state=42)
        rf.fit(X_train, y_train)
        accuracy = accuracy_score(y_test, rf.predict(X_test))
        gitexp.log_metric("accuracy", accuracy)
        gitexp.log_param("max_depth", max_depth)
        gitexp.log_param("n_estimators", n_estimators)
        figure, ax = plt.subplots(figsize=(5, 4))
        ConfusionMatrixDisplay.from_estimator(rf, X_test, y_test, ax=ax, display_labels=wine.target_names)
        gitexp.log_figure(figure, "confusion_matrix.png")
        plt.close(figure)
        gitexp.log_artifact(__file__)  # the script itself, next to its results
        train_df = pd.DataFrame(X_train, columns=wine.feature_names).assign(target=y_train)
        gitexp.log_input(gitexp.data.from_pandas(train_df, targets="target", name="wine-train"), "training")
        gitexp.set_tags({"author": "example", "approach": "manual"})
        gitexp.sklearn.log_model(rf, name="model", input_example=X_test[:3])
        print(f"by hand:   run {run.info.run_id}  accuracy={accuracy:.3f}")

    # 2. Autolog: the same fit logs params, training metrics, the model and plots by itself;
    #    metric calls on its predictions afterwards are logged too (accuracy_score_X_test).
    gitexp.autolog()
    from sklearn.metrics import accuracy_score as accuracy  # imported after autolog(): captured

    with gitexp.start_run(run_name="rf-autolog") as run:
        rf = RandomForestClassifier(max_depth=max_depth, n_estimators=n_estimators, random_state=42)
        rf.fit(X_train, y_train)
        test_accuracy = accuracy(y_test, rf.predict(X_test))
    logged = gitexp.get_run(run.info.run_id)
    print(f"autolog:   run {run.info.run_id}  accuracy_score_X_test={logged.data.metrics['accuracy_score_X_test']:.3f}"
          f"  ({len(logged.data.params)} params, {len(logged.data.metrics)} metrics)")
    assert abs(logged.data.metrics["accuracy_score_X_test"] - test_accuracy) < 1e-12

    # 3. Hyperparameter tuning: one parent run, a child run per candidate (the best 5).
    grid = {"max_depth": [2, 5], "n_estimators": [5, 10] if args.small else [10, 50]}
    search = GridSearchCV(RandomForestClassifier(random_state=42), grid, cv=3)
    with gitexp.start_run(run_name="rf-grid-search") as parent:
        search.fit(X_train, y_train)
    children = gitexp.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                  order_by=["metrics.rank_test_score ASC"])
    print(f"search:    run {parent.info.run_id}  best {search.best_params_}  "
          f"({len(children)} child runs, best mean_test_score="
          f"{children['metrics.mean_test_score'].iloc[0]:.3f})")
    gitexp.autolog(disable=True)

    best = gitexp.search_runs(filter_string="attributes.run_name = 'rf-autolog'",
                              order_by=["metrics.training_accuracy_score DESC"], max_results=1)
    print("runs of wine-classification:", len(gitexp.search_runs()), "| best autolog run:", best.run_id.iloc[0])


if __name__ == "__main__":
    main()
