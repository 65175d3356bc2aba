"""A repository full of what the UI shows, written by a real user process (a script run with python).

Everything the pages and actions need: two experiments, a hyperparameter search
(parent run with child runs), a long metric history, artifacts of every preview
kind (text, JSON, CSV, image, HTML, a scikit-learn model), a dataset input, a
run made on uncommitted code, a registered model, and a run whose name and tags
are HTML/script injection attempts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..conftest import git, make_repo

XSS_NAME = "<script>window.__xss=1</script>evil-run"
XSS_TAG = '<img src=x onerror="window.__xss=2">'
LONG_POINTS = 20000

SCRIPT = r'''
import json, math, sys
import numpy as np
import pandas as pd
import gitexp
import gitexp.sklearn
from sklearn.linear_model import LogisticRegression

out = {}
gitexp.set_experiment("tutorial")
exp = gitexp.get_experiment_by_name("tutorial")
gitexp.set_experiment_tags({"mlflow.note.content": "Runs of the **UI** tests", "project_name": "ui-tests"})
out["experiment_id"] = exp.experiment_id

# A hyperparameter search: a parent run and three child runs.
with gitexp.start_run(run_name="search") as parent:
    gitexp.log_param("optimizer", "tpe")
    children = []
    for i, (lr, depth) in enumerate([(0.1, 2), (0.05, 4), (0.01, 8)]):
        with gitexp.start_run(run_name=f"trial-{i}", nested=True) as child:
            gitexp.log_params({"learning_rate": lr, "max_depth": depth, "booster": "gbtree" if i % 2 else "dart",
                               "seed": 42})
            for step in range(5):
                gitexp.log_metric("rmse", 1.0 / (1 + step) + lr + depth / 100, step=step)
            gitexp.log_metric("accuracy", 0.8 + i / 20)
            children.append(child.info.run_id)
    gitexp.log_metric("best_rmse", 0.3)
out["parent"] = parent.info.run_id
out["children"] = children

# A long metric history (downsampled in charts) and artifacts of every preview kind.
with gitexp.start_run(run_name="long-training") as run:
    client = gitexp.Client()
    from gitexp.entities import Metric
    points = [Metric("loss", math.exp(-s / 4000) + 0.02 * math.sin(s / 7), 1_700_000_000_000 + s * 50, s)
              for s in range(LONG_POINTS)]
    for k in range(0, len(points), 5000):
        client.log_batch(run.info.run_id, metrics=points[k:k + 5000])
    gitexp.log_param("epochs", 40)
    gitexp.log_text("epoch 1: loss 0.9\nepoch 2: loss 0.5\n<b>not bold</b>\n", "logs/train.log")
    gitexp.log_dict({"layers": [64, 32], "activation": "relu"}, "config.json")
    gitexp.log_text("feature,importance\nage,0.4\nincome,0.35\n", "importance.csv")
    image = np.zeros((24, 48, 3), dtype=np.uint8)
    image[:, :24] = [37, 99, 235]
    image[:, 24:] = [22, 163, 74]
    gitexp.log_image(image, "plots/colors.png")
    gitexp.log_text("<html><body><h1>report</h1><script>parent.__framed = 1</script></body></html>", "report.html")
    gitexp.log_text(bytes(range(256)).decode("latin-1"), "blob.bin")
    df = pd.DataFrame({"age": [20, 30, 40], "income": [1.0, 2.0, 3.0], "label": [0, 1, 1]})
    gitexp.log_input(gitexp.data.from_pandas(df, source="data/train.csv", targets="label", name="train-set"),
                     context="training")
    X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    y = np.array([0, 1, 1, 0])
    gitexp.sklearn.log_model(LogisticRegression().fit(X, y), name="model", input_example=X[:2])
out["long"] = run.info.run_id

# Hostile text where user strings go.
with gitexp.start_run(run_name=XSS_NAME) as run:
    gitexp.set_tag("note", XSS_TAG)
    gitexp.log_param("payload", "</td><script>window.__xss=3</script>")
    gitexp.log_metric("rmse", 0.9)
out["xss"] = run.info.run_id

# Runs for the actions to change (one each, so tests do not depend on each other).
names = ["to-delete", "to-tag", "to-rename", "to-note", "to-restore"]
out["action_runs"] = {}
for name in names:
    with gitexp.start_run(run_name=name) as run:
        gitexp.log_metric("rmse", 0.5)
    out["action_runs"][name] = run.info.run_id
gitexp.delete_run(out["action_runs"]["to-restore"])

# A second experiment, for the runs table across experiments.
gitexp.set_experiment("other-experiment")
with gitexp.start_run(run_name="other-run") as run:
    gitexp.log_param("learning_rate", 0.2)
    gitexp.log_metric("rmse", 0.7)
out["other"] = run.info.run_id
out["other_experiment_id"] = gitexp.get_experiment_by_name("other-experiment").experiment_id

# A registered model with two versions, the first in Production.
client = gitexp.Client()
client.create_registered_model("ui-model", description="A model for the UI tests")
v1 = client.create_model_version("ui-model", f"runs:/{out['long']}/model", run_id=out["long"])
v2 = client.create_model_version("ui-model", f"runs:/{out['long']}/model", run_id=out["long"])
client.transition_model_version_stage("ui-model", v1.version, "Production")
client.create_registered_model("actions-model")
client.create_model_version("actions-model", f"runs:/{out['long']}/model", run_id=out["long"])
client.create_model_version("actions-model", f"runs:/{out['long']}/model", run_id=out["long"])
gitexp.flush()
print(json.dumps(out))
'''

DIRTY_SCRIPT = r'''
import json, gitexp
gitexp.set_experiment("tutorial")
with gitexp.start_run(run_name="dirty-run") as run:
    gitexp.log_param("learning_rate", 0.3)
    gitexp.log_metric("rmse", 0.4)
print(json.dumps({"dirty": run.info.run_id}))
'''


def build_repo(path: Path, env: dict | None = None) -> dict:
    """Create the repository and its runs (two real processes); returns the ids they print."""
    make_repo(path)
    git("config", "user.name", "UI Tester", cwd=path)
    git("config", "user.email", "ui-tester@example.com", cwd=path)
    run_env = {**os.environ, **(env or {})}
    code = f"XSS_NAME = {XSS_NAME!r}\nXSS_TAG = {XSS_TAG!r}\nLONG_POINTS = {LONG_POINTS}\n" + SCRIPT
    result = subprocess.run([sys.executable, "-c", code], cwd=path, capture_output=True, text=True,
                            env=run_env, timeout=300)
    assert result.returncode == 0, result.stderr
    ids = json.loads(result.stdout.strip().splitlines()[-1])
    # A run on uncommitted code: edit the committed script, run, leave the edit uncommitted.
    (path / "train.py").write_text("print('training')\nlearning_rate = 0.3  # tuned\n")
    result = subprocess.run([sys.executable, "-c", DIRTY_SCRIPT], cwd=path, capture_output=True, text=True,
                            env=run_env, timeout=120)
    assert result.returncode == 0, result.stderr
    ids.update(json.loads(result.stdout.strip().splitlines()[-1]))
    return ids
