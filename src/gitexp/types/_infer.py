"""Inferring schemas from data, with MLflow's rules.

DataFrames, Series, lists and dicts of scalars become column specs; numpy
arrays, dicts of arrays and scipy sparse matrices become tensor specs whose
first dimension is variable (-1).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np

from ..exceptions import InvalidParameterValue
from .schema import AnyType, Array, ColSpec, DataType, Object, ParamSchema, ParamSpec, Property, Schema, TensorSpec

_SCALARS = {
    bool: DataType.boolean, np.bool_: DataType.boolean,
    int: DataType.long, np.int64: DataType.long, np.int32: DataType.integer, np.int16: DataType.integer,
    np.int8: DataType.integer, np.uint8: DataType.integer, np.uint16: DataType.integer, np.uint32: DataType.long,
    float: DataType.double, np.float64: DataType.double, np.float32: DataType.float, np.float16: DataType.float,
    str: DataType.string, np.str_: DataType.string,
    bytes: DataType.binary, bytearray: DataType.binary, np.bytes_: DataType.binary,
}


def _is_none_or_nan(x: Any) -> bool:
    if x is None:
        return True
    try:
        return isinstance(x, float) and math.isnan(x) or (isinstance(x, np.floating) and bool(np.isnan(x)))
    except TypeError:
        return False


def _is_sparse(x: Any) -> bool:
    return type(x).__module__.startswith("scipy.sparse") and hasattr(x, "tocsr")


def clean_tensor_type(dtype: np.dtype) -> np.dtype:
    """Strip the size from string dtypes (<U12 -> str, |S4 -> bytes)."""
    if dtype.char == "U":
        return np.dtype("str")
    if dtype.char == "S":
        return np.dtype("bytes")
    return dtype


def tensor_shape(data: Any) -> tuple[int, ...]:
    shape = list(data.shape)
    if shape:
        shape[0] = -1
    return tuple(shape)


def infer_numpy_dtype(dtype: Any) -> DataType:
    kind, size = dtype.kind, dtype.itemsize
    if kind == "b":
        return DataType.boolean
    if kind in "iu":
        if size < 4 or (kind == "i" and size == 4):
            return DataType.integer
        if size < 8 or (kind == "i" and size == 8):
            return DataType.long
    elif kind == "f":
        if size <= 4:
            return DataType.float
        if size <= 8:
            return DataType.double
    elif kind == "U":
        return DataType.string
    elif kind == "S":
        return DataType.binary
    elif kind == "M":
        return DataType.datetime
    raise InvalidParameterValue(f"Unsupported numpy data type {dtype!r} in a model signature")


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, AnyType):
        return b
    if isinstance(b, AnyType) or a == b:
        return a
    numeric = (DataType.integer, DataType.long, DataType.float, DataType.double)
    if a in numeric and b in numeric:
        return DataType.double if DataType.double in (a, b) or DataType.float in (a, b) else DataType.long
    if isinstance(a, Array) and isinstance(b, Array):
        return Array(_merge(a.dtype, b.dtype))
    if isinstance(a, Object) and isinstance(b, Object):
        props = {p.name: p for p in a.properties}
        for p in b.properties:
            if p.name in props:
                q = props[p.name]
                props[p.name] = Property(p.name, _merge(q.dtype, p.dtype), q.required and p.required)
            else:
                props[p.name] = Property(p.name, p.dtype, False)
        for name in {p.name for p in a.properties} - {p.name for p in b.properties}:
            props[name] = Property(name, props[name].dtype, False)
        return Object(list(props.values()))
    raise InvalidParameterValue(f"Values of different types ({a!r} and {b!r}) in one column or list")


def infer_datatype(data: Any) -> Any:
    """The type of a value: a DataType for scalars, Array for lists, Object for dicts."""
    if _is_none_or_nan(data) or (isinstance(data, (list, dict)) and not data):
        return AnyType()
    if isinstance(data, dict):
        if not all(isinstance(k, str) for k in data):
            raise InvalidParameterValue(f"Dictionary keys must be strings to infer a schema, got {list(data)[:5]}")
        return Object([Property(k, infer_datatype(v), not _is_none_or_nan(v)) for k, v in data.items()])
    if isinstance(data, (list, np.ndarray)):
        items = data.tolist() if isinstance(data, np.ndarray) and data.dtype.kind != "O" else list(data)
        if isinstance(data, np.ndarray) and data.size == 0:
            return None
        merged: Any = AnyType()
        for item in items:
            merged = _merge(merged, infer_datatype(item))
        return Array(merged)
    return infer_scalar_datatype(data)


def infer_scalar_datatype(data: Any) -> DataType:
    kind = _SCALARS.get(type(data))
    if kind is not None:
        return kind
    if isinstance(data, (dt.date, dt.datetime, np.datetime64)) or type(data).__name__ == "Timestamp":
        return DataType.datetime
    raise InvalidParameterValue(
        f"Cannot infer a schema type for {data!r} ({type(data).__name__}); supported are bool, int, float, "
        "str, bytes, datetime and numpy scalars")


def infer_pandas_column(col: Any) -> Any:
    import pandas as pd

    if col.dtype.kind == "O":
        col = col.infer_objects()
    if col.dtype.kind == "O" or isinstance(col.dtype, pd.StringDtype):
        try:
            inferred = infer_datatype(col.to_list())
            return inferred.dtype if isinstance(inferred, Array) else inferred
        except InvalidParameterValue:
            if pd.api.types.is_string_dtype(col):
                return DataType.string
            raise
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return DataType.datetime
    return infer_numpy_dtype(col.dtype)


def _required(values: Any) -> bool:
    if isinstance(values, (list, tuple)):
        return not any(_is_none_or_nan(v) for v in values)
    if hasattr(values, "isna"):
        return not bool(values.isna().any())
    return not _is_none_or_nan(values)


def infer_schema(data: Any) -> Schema:
    """An MLflow-compatible schema describing `data`."""
    module = type(data).__module__
    if isinstance(data, list) and not data:
        return Schema([ColSpec(DataType.string)])
    if isinstance(data, list) and all(isinstance(v, dict) for v in data):
        columns: dict[str, list[Any]] = {}
        for row in data:
            for k, v in row.items():
                columns.setdefault(k, []).append(v)
        return Schema([ColSpec(_column_type(values), name,
                               all(row.get(name) is not None for row in data))
                       for name, values in columns.items()])
    if isinstance(data, dict):
        if data and all(isinstance(v, np.ndarray) for v in data.values()):
            return Schema([TensorSpec(clean_tensor_type(v.dtype), tensor_shape(v), name) for name, v in data.items()])
        if not all(isinstance(k, str) for k in data):
            raise InvalidParameterValue("To infer a schema from a dict, its keys must be strings (column names)")
        return Schema([ColSpec(infer_datatype(v), k, _required(v)) for k, v in data.items()])
    if module.startswith("pandas"):
        import pandas as pd

        if isinstance(data, pd.Series):
            return Schema([ColSpec(infer_pandas_column(data), data.name, _required(data))])
        if isinstance(data, pd.DataFrame):
            if data.shape[1] == 0:
                raise InvalidParameterValue("Cannot infer a schema from a DataFrame without columns")
            return Schema([ColSpec(infer_pandas_column(data[c]), str(c) if not isinstance(c, str) else c,
                                   _required(data[c])) for c in data.columns])
    if isinstance(data, np.ndarray):
        if data.dtype.kind == "O":
            raise InvalidParameterValue(
                "Cannot infer a tensor schema from a numpy array of Python objects; convert it to a "
                "concrete dtype (e.g. arr.astype('float64')) or pass a DataFrame")
        return Schema([TensorSpec(clean_tensor_type(data.dtype), tensor_shape(data))])
    if _is_sparse(data):
        return Schema([TensorSpec(clean_tensor_type(data.data.dtype), tensor_shape(data))])
    if isinstance(data, (list, tuple)):
        return Schema([ColSpec(_column_type(list(data)))])
    return Schema([ColSpec(infer_scalar_datatype(data))])


def _column_type(values: list[Any]) -> Any:
    """The element type of a column given as a list (a list of lists is an Array column)."""
    inferred = infer_datatype(values)
    if isinstance(inferred, Array):
        return inferred.dtype
    return inferred


def infer_param_schema(params: dict[str, Any]) -> ParamSchema:
    """Param specs from example values (lists become shape (-1,))."""
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise InvalidParameterValue(f"params must be a dict with string keys, got {params!r}")
    specs = []
    problems = []
    for name, value in params.items():
        try:
            if isinstance(value, (list, np.ndarray)):
                values = value.tolist() if isinstance(value, np.ndarray) else value
                inner = _column_type(values) if values else AnyType()
                if not isinstance(inner, DataType):
                    raise InvalidParameterValue("lists of params must hold scalars of one type")
                specs.append(ParamSpec(name, inner, values, (-1,)))
            else:
                specs.append(ParamSpec(name, infer_scalar_datatype(value), value))
        except InvalidParameterValue as exc:
            problems.append(f"{name!r}: {exc.message}")
    if problems:
        raise InvalidParameterValue("Cannot infer the param schema: " + "; ".join(problems))
    return ParamSchema(specs)
