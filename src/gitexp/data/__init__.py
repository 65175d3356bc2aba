"""``gitexp.data``: datasets a run used, with MLflow's names, digests, schemas and profiles.

    import gitexp
    dataset = gitexp.data.from_pandas(df, source="data/train.csv", targets="label", name="train")
    with gitexp.start_run():
        gitexp.log_input(dataset, context="training")

A dataset is recorded by reference (name, digest, source, schema, profile),
not by content; the digest is computed as MLflow computes it, so the same
data gets the same digest in both.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from ..exceptions import InvalidParameterValue
from .sources import (
    CodeDatasetSource,
    DatasetSource,
    HTTPDatasetSource,
    LocalArtifactDatasetSource,
    URIDatasetSource,
    code_source,
    resolve_dataset_source,
    source_from_entity,
)

if TYPE_CHECKING:
    from ..entities import Dataset as DatasetEntity

MAX_DIGEST_ROWS = 10000


def _md5_digest(elements: list[Any]) -> str:
    if not elements:
        raise InvalidParameterValue("Nothing to compute a dataset digest from")
    md5 = hashlib.md5(usedforsecurity=False)
    for element in elements:
        md5.update(element)
    return md5.hexdigest()[:8]


def compute_pandas_digest(df: Any) -> str:
    """MLflow's digest of a DataFrame: first 10000 rows of its string and numeric columns."""
    import numpy as np
    import pandas as pd

    head = df.head(MAX_DIGEST_ROWS)
    string_cols = head.columns[(df.map(type) == str).all(axis=0)]  # noqa: E721 - elementwise, not a type check
    numeric_cols = head.select_dtypes(include=[np.number]).columns
    head = head[string_cols.union(numeric_cols)]
    return _md5_digest([pd.util.hash_pandas_object(head).values, np.int64(len(df))]
                       + [str(c).encode() for c in df.columns])


def compute_numpy_digest(features: Any, targets: Any = None) -> str:
    """MLflow's digest of arrays: the first 10000 flattened values and the shapes."""
    import numpy as np
    import pandas as pd

    elements: list[Any] = []

    def add(array: Any) -> None:
        flat = array.flatten()[:MAX_DIGEST_ROWS]
        try:
            elements.append(pd.util.hash_array(flat))
        except TypeError:
            elements.append(np.int64(flat.size))
        elements.extend(np.int64(x) for x in array.shape)

    for item in (features, targets):
        if item is None:
            continue
        if isinstance(item, dict):
            for key in sorted(item):
                add(item[key])
        else:
            add(item)
    return _md5_digest(elements)


class Dataset:
    """A dataset recorded by reference: name, digest and source (subclasses add schema and profile)."""

    def __init__(self, source: DatasetSource, name: str | None = None, digest: str | None = None) -> None:
        self._source = source
        self._name = name
        self._digest = digest or self._compute_digest()

    def _compute_digest(self) -> str:
        raise InvalidParameterValue(f"{type(self).__name__} needs an explicit digest")

    @property
    def name(self) -> str:
        return self._name if self._name is not None else "dataset"

    @property
    def digest(self) -> str:
        return self._digest

    @property
    def source(self) -> DatasetSource:
        return self._source

    @property
    def profile(self) -> Any:
        return None

    @property
    def schema(self) -> Any:
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "digest": self.digest, "source": self.source.to_json(),
                "source_type": self.source._get_source_type()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def _to_mlflow_entity(self) -> DatasetEntity:
        from ..entities import Dataset as DatasetEntity

        d = self.to_dict()
        return DatasetEntity(name=d["name"], digest=d["digest"], source_type=d["source_type"], source=d["source"],
                             schema=d.get("schema"), profile=d.get("profile"))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: name={self.name!r}, digest={self.digest!r}, source={self.source!r}>"


class PandasDataset(Dataset):
    """A pandas DataFrame used by a run."""

    def __init__(self, df: Any, source: DatasetSource, targets: str | None = None, name: str | None = None,
                 digest: str | None = None, predictions: str | None = None) -> None:
        for what, column in (("targets", targets), ("predictions", predictions)):
            if column is not None and column not in df.columns:
                raise InvalidParameterValue(
                    f"The DataFrame has no {what} column {column!r}; its columns are {list(df.columns)}")
        self._df = df
        self._targets = targets
        self._predictions = predictions
        self._schema: Any = False
        super().__init__(source, name, digest)

    def _compute_digest(self) -> str:
        return compute_pandas_digest(self._df)

    @property
    def df(self) -> Any:
        return self._df

    @property
    def targets(self) -> str | None:
        return self._targets

    @property
    def predictions(self) -> str | None:
        return self._predictions

    @property
    def profile(self) -> dict[str, int]:
        return {"num_rows": len(self._df), "num_elements": int(self._df.size)}

    @property
    def schema(self) -> Any:
        """The columns as an MLflow column schema (None if it cannot be inferred)."""
        if self._schema is False:
            from ..types._infer import infer_schema

            try:
                self._schema = infer_schema(self._df)
            except Exception:
                self._schema = None
        return self._schema

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        schema = self.schema
        d["schema"] = json.dumps({"mlflow_colspec": schema.to_dict()}) if schema is not None else None
        d["profile"] = json.dumps(self.profile)
        return d


class NumpyDataset(Dataset):
    """Numpy feature (and target) arrays used by a run."""

    def __init__(self, features: Any, source: DatasetSource, targets: Any = None, name: str | None = None,
                 digest: str | None = None) -> None:
        self._features = features
        self._targets = targets
        super().__init__(source, name, digest)

    def _compute_digest(self) -> str:
        return compute_numpy_digest(self._features, self._targets)

    @property
    def features(self) -> Any:
        return self._features

    @property
    def targets(self) -> Any:
        return self._targets

    @property
    def profile(self) -> dict[str, Any]:
        def attr(data: Any, name: str) -> Any:
            if isinstance(data, dict):
                return {k: _jsonable(getattr(v, name)) for k, v in data.items()}
            return _jsonable(getattr(data, name))

        profile = {f"features_{a}": attr(self._features, a) for a in ("shape", "size", "nbytes")}
        if self._targets is not None:
            profile.update({f"targets_{a}": attr(self._targets, a) for a in ("shape", "size", "nbytes")})
        return profile

    @property
    def schema(self) -> dict[str, Any] | None:
        from ..types._infer import infer_schema

        try:
            features = infer_schema(self._features)
            targets = infer_schema(self._targets) if self._targets is not None else None
        except Exception:
            return None
        return {"features": features, "targets": targets}

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        schema = self.schema
        d["schema"] = json.dumps({"mlflow_tensorspec": {
            "features": schema["features"].to_json(),
            "targets": schema["targets"].to_json() if schema["targets"] is not None else None,
        }}) if schema is not None else None
        d["profile"] = json.dumps(self.profile)
        return d


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return int(value) if hasattr(value, "__index__") else value


def _source(source: Any) -> DatasetSource:
    return code_source() if source is None else resolve_dataset_source(source)


def from_pandas(df: Any, source: Any = None, targets: str | None = None, name: str | None = None,
                digest: str | None = None, predictions: str | None = None) -> PandasDataset:
    """A dataset for a DataFrame. ``source`` is a path or URI (default: the running script)."""
    if type(df).__name__ != "DataFrame":
        raise InvalidParameterValue(f"from_pandas takes a pandas DataFrame, got {type(df).__name__}")
    return PandasDataset(df, _source(source), targets, name, digest, predictions)


def from_numpy(features: Any, source: Any = None, targets: Any = None, name: str | None = None,
               digest: str | None = None) -> NumpyDataset:
    """A dataset for numpy arrays (or dicts of arrays) of features and optional targets."""
    import numpy as np

    for what, value in (("features", features), ("targets", targets)):
        if value is None and what == "targets":
            continue
        arrays = value.values() if isinstance(value, dict) else [value]
        if not all(isinstance(a, np.ndarray) for a in arrays):
            raise InvalidParameterValue(
                f"from_numpy takes numpy arrays (or dicts of them) as {what}, got {type(value).__name__}")
    return NumpyDataset(features, _source(source), targets, name, digest)


def get_source(dataset: Any) -> DatasetSource:
    """The source of a dataset, a logged dataset entity or a DatasetInput (to load it again)."""
    from ..entities import Dataset as DatasetEntity
    from ..entities import DatasetInput

    if isinstance(dataset, Dataset):
        return dataset.source
    if isinstance(dataset, DatasetInput):
        dataset = dataset.dataset
    if isinstance(dataset, DatasetEntity):
        return source_from_entity(dataset.source_type, dataset.source)
    raise InvalidParameterValue(f"get_source takes a dataset or a logged dataset, got {type(dataset).__name__}")


__all__ = [
    "CodeDatasetSource", "Dataset", "DatasetSource", "HTTPDatasetSource", "LocalArtifactDatasetSource",
    "NumpyDataset", "PandasDataset", "URIDatasetSource", "compute_numpy_digest", "compute_pandas_digest",
    "from_numpy", "from_pandas", "get_source",
]
