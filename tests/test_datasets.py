"""Datasets: MLflow's digests, schemas and profiles; log_input and run.inputs.dataset_inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import gitexp
from gitexp.exceptions import InvalidParameterValue

from .conftest import require_mlflow


@pytest.fixture
def frame():
    return pd.DataFrame({"distance": [1.5, 2.0, 3.25], "zone": ["a", "b", "c"], "label": [0, 1, 0]})


def test_pandas_dataset_matches_mlflow(frame):
    mlflow = require_mlflow("mlflow.data")

    ours = gitexp.data.from_pandas(frame, source="data/train.csv", targets="label", name="train")
    theirs = mlflow.data.from_pandas(frame, source="data/train.csv", targets="label", name="train")
    assert ours.to_dict() == theirs.to_dict()
    assert ours.profile == {"num_rows": 3, "num_elements": 9}
    assert json.loads(ours.to_dict()["schema"])["mlflow_colspec"][1] == {"type": "string", "name": "zone",
                                                                        "required": True}


def test_numpy_dataset_matches_mlflow():
    mlflow = require_mlflow("mlflow.data")

    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = np.array([0, 1, 0, 1])
    ours = gitexp.data.from_numpy(x, source="s3://bucket/x.npy", targets=y, name="features")
    theirs = mlflow.data.from_numpy(x, source="s3://bucket/x.npy", targets=y, name="features")
    assert ours.to_dict() == theirs.to_dict()
    assert ours.source.source_type == "s3"
    assert gitexp.data.from_numpy({"a": x}).digest == mlflow.data.from_numpy({"a": x}).digest


def test_log_input_records_dataset_inputs(repo, frame):
    train = gitexp.data.from_pandas(frame, source="data/train.csv", targets="label", name="train")
    with gitexp.start_run() as run:
        gitexp.log_input(train, context="training", tags={"split": "2021-01"})
        gitexp.log_input(frame.iloc[:2], "validation")  # a bare DataFrame is wrapped, as the tutorials do
        gitexp.log_inputs([gitexp.data.from_numpy(np.ones((2, 2)), name="ones")], ["eval"])
        pending = gitexp.get_run(run.info.run_id).inputs.dataset_inputs
        assert len(pending) == 3
    inputs = gitexp.get_run(run.info.run_id).inputs.dataset_inputs
    first = inputs[0]
    assert (first.dataset.name, first.dataset.digest, first.dataset.source_type) == ("train", train.digest, "local")
    assert json.loads(first.dataset.source) == {"uri": "data/train.csv"}
    assert json.loads(first.dataset.profile) == {"num_rows": 3, "num_elements": 9}
    assert {t.key: t.value for t in first.tags} == {"split": "2021-01", "mlflow.data.context": "training"}
    second = inputs[1]
    assert second.dataset.source_type == "code"
    assert {t.key: t.value for t in second.tags} == {"mlflow.data.context": "validation"}
    assert gitexp.data.get_source(first) == gitexp.data.LocalArtifactDatasetSource("data/train.csv")
    # Readable on the branch too.
    run_dir = f".tracking/runs/{run.info.run_id[:2]}/{run.info.run_id}"
    from .conftest import git

    assert "mlflow.data.context: training" in git("show", f"gitexp:{run_dir}/inputs.yaml", cwd=repo)


def test_dataset_errors_name_the_problem(frame):
    with pytest.raises(InvalidParameterValue, match="no targets column 'price'"):
        gitexp.data.from_pandas(frame, targets="price")
    with pytest.raises(InvalidParameterValue, match="takes a pandas DataFrame"):
        gitexp.data.from_pandas([1, 2, 3])
    with pytest.raises(InvalidParameterValue, match="numpy arrays"):
        gitexp.data.from_numpy([[1, 2]])
    with pytest.raises(InvalidParameterValue, match="log_input takes a dataset"):
        gitexp.fluent_artifacts._as_dataset({"not": "a dataset"})


def test_local_source_loads_the_file(tmp_path, frame):
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    dataset = gitexp.data.from_pandas(frame, source=str(path))
    assert dataset.source.load() == str(path)
    copied = dataset.source.load(str(tmp_path / "copy"))
    assert pd.read_csv(copied).equals(frame)
    with pytest.raises(InvalidParameterValue, match="built in code"):
        gitexp.data.from_pandas(frame).source.load()
