"""A deep-learning flavor through the plugin: Keras 3 on the JAX backend (CPU), with Keras'
MLflow callback and mlflow.keras.autolog, and a log_model/load_model roundtrip. Keras picks
its backend when first imported, so the training runs in a fresh interpreter with
KERAS_BACKEND=jax; what it logged is read back here with gitexp."""

from __future__ import annotations

import json

import pytest

from .conftest import make_repo, require_mlflow, run_python
from .mlflow_integration_helpers import artifact_paths, plugin_uri, reader, runs_of

require_mlflow()  # mlflow.keras imports keras: only in the child, whose backend is JAX

TRAIN = """
import json, os, sys, warnings
warnings.simplefilter("ignore")
import keras, mlflow, mlflow.keras, numpy as np

assert keras.backend.backend() == "jax", keras.backend.backend()
mlflow.set_tracking_uri(sys.argv[1])
x = np.random.default_rng(0).random((32, 4)).astype("float32")
y = (x[:, 0] > 0.5).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])

mlflow.set_experiment("keras-callback")
with mlflow.start_run() as run:
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[mlflow.keras.MlflowCallback()])
    info = mlflow.keras.log_model(model, name="model", pip_requirements=["keras", "jax"])
loaded = mlflow.keras.load_model(info.model_uri)
same = bool(np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0)))

mlflow.set_experiment("keras-autolog")
mlflow.keras.autolog(log_models=False)
with mlflow.start_run() as auto:
    auto_history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_split=0.25)
print(json.dumps({"run": run.info.run_id, "model_id": info.model_id, "same": same, "loss": history.history["loss"],
                  "auto": auto.info.run_id, "auto_loss": auto_history.history["loss"]}))
"""


def test_keras_on_jax_callback_autolog_and_model_roundtrip(tmp_path):
    repo = make_repo(tmp_path / "repo")
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text(TRAIN)
    result = run_python(f"import runpy, sys; sys.argv = ['train.py', {plugin_uri(repo)!r}]; "
                        "runpy.run_path('train.py', run_name='__main__')", cwd=work,
                        env={"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
                             "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}, timeout=180)
    assert result.returncode == 0, result.stderr[-6000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["same"]  # the model loaded back from git predicts as the trained one

    client = reader(repo)
    [run] = runs_of(client, "keras-callback")
    assert run.info.run_id == out["run"]
    history = client.get_metric_history(run.info.run_id, "loss")  # one value per epoch, as Keras computed it
    assert [m.step for m in history] == [0, 1, 2]
    assert [m.value for m in history] == pytest.approx(out["loss"])
    assert "accuracy" in run.data.metrics
    assert {"model_summary.txt"} <= set(artifact_paths(client, run.info.run_id))
    logged = client.get_logged_model(out["model_id"])
    assert (logged.source_run_id, str(logged.status)) == (run.info.run_id, "READY")

    [auto] = runs_of(client, "keras-autolog")
    assert auto.info.run_id == out["auto"]
    assert auto.data.params["epochs"] == "2" and auto.data.params["batch_size"] == "16"
    assert [m.value for m in client.get_metric_history(auto.info.run_id, "loss")] == pytest.approx(out["auto_loss"])
    assert {"val_loss", "val_accuracy"} <= set(auto.data.metrics)
