"""Input examples saved with a model: input_example.json and serving_input_example.json.

The files and the ``saved_input_example_info`` entry of MLmodel follow MLflow 3:
DataFrames in pandas 'split' form without the index, arrays as nested lists
(NaN as null), dicts and lists as JSON; a (data, params) tuple stores both.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from typing import Any, cast

from ..exceptions import InvalidParameterValue

EXAMPLE_FILENAME = "input_example.json"
SERVING_INPUT_FILENAME = "serving_input_example.json"


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        import numpy as np

        if isinstance(o, np.ndarray):
            return [self.default(x) if isinstance(x, (bytes, np.generic)) else x for x in o.tolist()]
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, (bytes, bytearray)):
            return base64.encodebytes(bytes(o)).decode("ascii")
        if isinstance(o, np.datetime64):
            return np.datetime_as_string(o)
        if isinstance(o, (dt.date, dt.datetime, dt.time)) or type(o).__name__ == "Timestamp":
            return o.isoformat()
        return super().default(o)


def _is_sparse(x: Any) -> bool:
    return type(x).__module__.startswith("scipy.sparse") and hasattr(x, "tocsr")


def _nan_to_none(array: Any) -> Any:
    import numpy as np

    if np.issubdtype(array.dtype, np.number):
        return cast(np.ndarray, np.where(np.isnan(array), None, array)).tolist()  # 3-argument where: an array
    return array.tolist()


class Example:
    """A user's input example, ready to be written next to a model."""

    def __init__(self, input_example: Any) -> None:
        import copy

        import numpy as np

        data, params = input_example, None
        if isinstance(input_example, tuple) and len(input_example) == 2 and isinstance(input_example[1], dict):
            data, params = input_example
        if type(data).__module__.startswith("pandas") and type(data).__name__ == "Series":
            data = data.to_frame()
        self.data = copy.deepcopy(data)
        self.params = params
        self.info: dict[str, Any] = {"artifact_path": EXAMPLE_FILENAME}
        serving: dict[str, Any] | None
        module = type(self.data).__module__
        data = self.data
        if isinstance(data, dict) and data and all(isinstance(v, np.ndarray) for v in data.values()):
            stored: Any = {k: _nan_to_none(v) for k, v in data.items()}
            self.info["type"] = "ndarray"
            serving = {"inputs": stored}
        elif isinstance(data, dict):
            if any(isinstance(v, np.ndarray) for v in data.values()):
                raise InvalidParameterValue(
                    "An input example dict must hold only numpy arrays or only JSON-like values, not a mix")
            stored = data
            self.info["type"] = "json_object"
            serving = {"inputs": data}
        elif isinstance(data, np.ndarray):
            stored = _nan_to_none(data)
            self.info["type"] = "ndarray"
            serving = {"inputs": stored}
        elif isinstance(data, list):
            stored = data
            self.info["type"] = "json_object"
            serving = {"inputs": data}
        elif _is_sparse(data):
            fmt = "csc" if data.format == "csc" else "csr"
            matrix = data.tocsc() if fmt == "csc" else data.tocsr()
            stored = {"data": _nan_to_none(matrix.data), "indices": matrix.indices.tolist(),
                      "indptr": matrix.indptr.tolist(), "shape": list(matrix.shape)}
            self.info["type"] = f"sparse_matrix_{fmt}"
            serving = {"inputs": matrix.toarray()}
        elif module.startswith("pandas") and type(data).__name__ == "DataFrame":
            frame = data.astype(object).where(data.notnull(), None)
            split = frame.to_dict(orient="split")
            del split["index"]
            if list(data.columns) == list(range(len(data.columns))):
                del split["columns"]
            stored = split
            self.info.update({"type": "dataframe", "pandas_orient": "split" if "columns" in split else "values"})
            serving = {"dataframe_split": split}
        elif np.isscalar(data) or isinstance(data, dt.datetime):
            stored = data
            self.info["type"] = "json_object"
            serving = {"inputs": data}
        else:
            raise InvalidParameterValue(
                "An input example must be a pandas DataFrame, numpy array, dict of arrays, scipy sparse "
                f"matrix, dict, list or scalar (optionally as a (data, params) tuple), got {type(data).__name__}")
        if params is not None:
            stored = {"inputs": stored, "params": params}
            self.info["params"] = "true"  # MLflow's flag that the file holds data and params
            if serving is not None:
                serving = {**serving, "params": params}
        self.json_example = json.dumps(stored, cls=_Encoder)
        self.json_serving = json.dumps(serving, cls=_Encoder, indent=2) if serving is not None else None
        if self.json_serving is not None:
            self.info["serving_input_path"] = SERVING_INPUT_FILENAME

    def save(self, model_dir: str) -> None:
        with open(os.path.join(model_dir, EXAMPLE_FILENAME), "w") as fh:
            fh.write(self.json_example)
        if self.json_serving is not None:
            with open(os.path.join(model_dir, SERVING_INPUT_FILENAME), "w") as fh:
                fh.write(self.json_serving)


def save_example(model: Any, input_example: Any, path: str) -> Example | None:
    """Write the example files and record them in the Model; None if there is no example."""
    if input_example is None:
        return None
    example = Example(input_example)
    example.save(path)
    model.saved_input_example_info = example.info
    return example


def read_example(info: dict[str, Any] | None, signature: Any, path: str) -> Any:
    """The example stored with a model, in its original kind (DataFrame, array, dict...)."""
    if not info:
        return None
    with open(os.path.join(path, info.get("artifact_path", EXAMPLE_FILENAME))) as fh:
        data = json.load(fh)
    if info.get("params"):
        data = data["inputs"]
    kind = info.get("type")
    schema = signature.inputs if signature is not None else None
    if kind == "json_object":
        return data
    if kind == "ndarray":
        import numpy as np

        if isinstance(data, dict):
            types = {s.name: s.type for s in schema} if schema is not None and schema.is_tensor_spec() else {}
            return {k: np.array(v, dtype=types.get(k)) for k, v in data.items()}
        dtype = schema.inputs[0].type if schema is not None and schema.is_tensor_spec() else None
        return np.array(data, dtype=dtype)
    if kind in ("sparse_matrix_csr", "sparse_matrix_csc"):
        from scipy import sparse

        make = sparse.csc_matrix if kind.endswith("csc") else sparse.csr_matrix
        return make((data["data"], data["indices"], data["indptr"]), shape=tuple(data["shape"]))
    if kind == "dataframe":
        import pandas as pd

        frame = pd.DataFrame(data["data"], columns=data.get("columns"))
        if schema is not None and not schema.is_tensor_spec():
            from ..types.schema import DataType

            for spec in schema.inputs:
                if spec.name in frame.columns and isinstance(spec.type, DataType) and spec.type not in (
                        DataType.string, DataType.binary):
                    try:
                        frame[spec.name] = frame[spec.name].astype(spec.type.to_pandas())
                    except (TypeError, ValueError):
                        pass  # keep what JSON gave (e.g. nulls in an integer column)
        return frame
    raise InvalidParameterValue(f"Unknown input example type {kind!r} in MLmodel")
