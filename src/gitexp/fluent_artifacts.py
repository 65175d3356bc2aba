"""Module-level artifact and dataset logging (``gitexp.log_artifact``, ``gitexp.log_input``...).

Each function logs to the active run (starting one if none is active, as
MLflow does) through the Client.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .exceptions import InvalidParameterValue
from .fluent import _client, _experiment_id, _run_id

if TYPE_CHECKING:
    import pandas as pd

    from .data import Dataset
    from .entities import DatasetInput


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None,
                 run_id: str | None = None) -> None:
    """Log a local file or directory as an artifact of the active run.

    ``artifact_path`` is the directory inside the run's artifacts to put it in.
    """
    _client().log_artifact(_run_id(run_id), os.fspath(local_path), artifact_path)


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None,
                  run_id: str | None = None) -> None:
    """Log every file below ``local_dir`` as artifacts of the active run."""
    _client().log_artifacts(_run_id(run_id), os.fspath(local_dir), artifact_path)


def log_text(text: str, artifact_file: str, run_id: str | None = None) -> None:
    """Log a string as a text file artifact (UTF-8)."""
    _client().log_text(_run_id(run_id), text, artifact_file)


def log_dict(dictionary: Any, artifact_file: str, run_id: str | None = None) -> None:
    """Log a dict as a JSON or YAML artifact (chosen by the file's extension)."""
    _client().log_dict(_run_id(run_id), dictionary, artifact_file)


def log_figure(figure: Any, artifact_file: str, *, save_kwargs: dict[str, Any] | None = None) -> None:
    """Log a matplotlib or plotly figure as an image (or plotly .html) artifact."""
    _client().log_figure(_run_id(), figure, artifact_file, save_kwargs=save_kwargs)


def log_image(image: Any, artifact_file: str | None = None, key: str | None = None, step: int | None = None,
              timestamp: int | None = None, synchronous: bool | None = False) -> None:
    """Log a numpy array or PIL image: as a file, or as one step of the image series ``key``."""
    _client().log_image(_run_id(), image, artifact_file, key, step, timestamp)


def log_table(data: Any, artifact_file: str, run_id: str | None = None) -> None:
    """Log a DataFrame or dict as a table artifact (.json or .parquet); appends to an existing one."""
    _client().log_table(_run_id(run_id), data, artifact_file)


def load_table(artifact_file: str, run_ids: list[str] | None = None,
               extra_columns: list[str] | None = None) -> pd.DataFrame:
    """The table artifact_file of the given runs (default: all runs of the active experiment) as one DataFrame."""
    return _client().load_table(_experiment_id(), artifact_file, run_ids, extra_columns)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    """The URI of the active run's artifacts, or of one artifact below them: ``runs:/<run_id>/<path>``.

    gitexp's artifact URIs are ``runs:/`` URIs (MLflow returns the storage
    location instead); every gitexp function that takes an artifact or model
    URI accepts them.
    """
    from .store.artifacts import validate_artifact_path

    run_id = _run_id()
    path = validate_artifact_path(artifact_path)
    return f"runs:/{run_id}/{path}" if path else f"runs:/{run_id}"


# -- datasets -----------------------------------------------------------------------------------------
def _as_dataset(dataset: Any) -> Dataset:
    from .data import Dataset, from_numpy, from_pandas

    if isinstance(dataset, Dataset):
        return dataset
    module = type(dataset).__module__
    if module.startswith("pandas") and type(dataset).__name__ == "DataFrame":
        return from_pandas(dataset)
    if module.startswith("numpy") and type(dataset).__name__ == "ndarray":
        return from_numpy(dataset)
    raise InvalidParameterValue(
        f"log_input takes a dataset from gitexp.data.from_pandas / from_numpy (or a DataFrame / "
        f"ndarray to wrap), got {type(dataset).__module__}.{type(dataset).__name__}")


def _dataset_input(dataset: Any, context: str | None, tags: dict[str, str] | None) -> DatasetInput:
    from .entities import DatasetInput, InputTag

    ds = _as_dataset(dataset)
    input_tags = [InputTag(k, str(v)) for k, v in (tags or {}).items()]
    if context:
        input_tags.append(InputTag("mlflow.data.context", str(context)))
    return DatasetInput(ds._to_mlflow_entity(), input_tags)


def log_input(dataset: Any, context: str | None = None, tags: dict[str, str] | None = None,
              model: Any = None) -> None:
    """Record that the active run used ``dataset`` (e.g. context="training")."""
    _client().log_inputs(_run_id(), [_dataset_input(dataset, context, tags)])


def log_inputs(datasets: list[Any] | None = None, contexts: list[str | None] | None = None,
               tags_list: list[dict[str, str] | None] | None = None, models: list[Any] | None = None) -> None:
    """Record several dataset inputs of the active run at once."""
    datasets = list(datasets or [])
    contexts = list(contexts or [None] * len(datasets))
    tags_list = list(tags_list or [None] * len(datasets))
    if not len(datasets) == len(contexts) == len(tags_list):
        raise InvalidParameterValue(
            f"log_inputs got {len(datasets)} datasets, {len(contexts)} contexts and {len(tags_list)} tag "
            "dicts; pass one of each per dataset")
    _client().log_inputs(_run_id(), [_dataset_input(d, c, t)
                                     for d, c, t in zip(datasets, contexts, tags_list, strict=True)])


__all__ = [
    "get_artifact_uri", "load_table", "log_artifact", "log_artifacts", "log_dict", "log_figure", "log_image",
    "log_input", "log_inputs", "log_table", "log_text",
]
