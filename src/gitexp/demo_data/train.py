"""Train a random forest on the wine dataset and track every run with gitexp.

This is the script `gitexp demo` writes into a scratch repository and runs.
Read it as an example: only the `mlflow.` lines are about tracking.
"""

from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

import gitexp as mlflow

X, y = load_wine(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=42)

mlflow.set_experiment("wine-quality")
for max_depth in (2, 4, 8):
    for max_features in ("sqrt", "log2"):
        with mlflow.start_run(tags={"model": "random-forest"}):
            mlflow.log_params({"max_depth": max_depth, "max_features": max_features})
            model = RandomForestClassifier(max_depth=max_depth, max_features=max_features,
                                           n_estimators=5, warm_start=True, random_state=0)
            # Grow the forest step by step so each run has a metric history.
            for step in range(10):
                model.set_params(n_estimators=5 + 5 * step)
                model.fit(X_train, y_train)
                mlflow.log_metric("test_accuracy", accuracy_score(y_test, model.predict(X_test)), step=step)
            mlflow.log_metric("test_f1", f1_score(y_test, model.predict(X_test), average="macro"))
            mlflow.log_metric("train_accuracy", model.score(X_train, y_train))
            mlflow.sklearn.log_model(model, name="model", input_example=X_test[:3])
