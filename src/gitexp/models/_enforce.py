"""Checking prediction input against a model signature, with MLflow's conversion rules.

Column signatures take DataFrames (and dicts, lists, Series, scalars that
become one): required columns must be present, extra columns are dropped,
and a column is converted only when no value can change (int32 -> int64,
float32 -> float64, small ints -> float64, strings, datetimes).  Tensor
signatures take numpy arrays, dicts of arrays, scipy sparse matrices or
DataFrames, whose shape and dtype must match.  Every failure names the input,
what the signature expects and what to do.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import numpy as np

from ..exceptions import InvalidParameterValue
from ..types.schema import AnyType, Array, DataType, Map, Object, ParamSchema, ParamSpec, Schema, TensorSpec

_log = logging.getLogger("gitexp")


class SchemaEnforcementError(InvalidParameterValue):
    """Prediction input that does not fit the model signature."""


def _fail(message: str) -> None:
    raise SchemaEnforcementError(f"Input does not match the model signature: {message}")


def _is_sparse(x: Any) -> bool:
    return type(x).__module__.startswith("scipy.sparse") and hasattr(x, "tocsr")


def _describe(data: Any) -> str:
    shape = getattr(data, "shape", None)
    return f"{type(data).__module__}.{type(data).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


# -- column signatures -----------------------------------------------------------------------------
def _to_frame(data: Any, schema: Schema) -> Any:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    if np.isscalar(data):
        return pd.DataFrame([data])
    if isinstance(data, dict):
        complex_cols = any(isinstance(c.type, (Array, Object, Map)) for c in schema.inputs)
        if complex_cols or all(np.isscalar(v) or v is None
                               or (isinstance(v, list) and all(isinstance(i, str) for i in v))
                               for v in data.values()):
            return pd.DataFrame([data])
        try:
            return pd.DataFrame({k: v.tolist() if isinstance(v, np.ndarray) and v.ndim > 1 else v
                                 for k, v in data.items()})
        except ValueError as exc:
            _fail(f"cannot turn the dict into a table ({exc}); pass a pandas DataFrame")
    if isinstance(data, np.ndarray):
        if schema.has_input_names():
            names = schema.input_names()
            if len(names) == 1 and data.ndim == 1:
                return pd.DataFrame({names[0]: data})
            _fail(f"the model expects named columns {names} (a pandas DataFrame), got a numpy array of shape "
                  f"{data.shape}. Pass pd.DataFrame(X, columns={names}) instead.")
        return pd.DataFrame(data)
    if isinstance(data, list):
        return pd.DataFrame(data)
    if _is_sparse(data):
        _fail(f"the model expects columns {schema.input_names()} (a pandas DataFrame), got a scipy sparse "
              f"matrix of shape {data.shape}. Convert it with pd.DataFrame.sparse.from_spmatrix(X, columns=...).")
    _fail(f"the model expects a pandas DataFrame (or dict, list, Series), got {_describe(data)}")


def _enforce_column(name: Any, values: Any, t: DataType) -> Any:
    import pandas as pd

    if values.dtype == object and t not in (DataType.binary, DataType.string):
        values = values.infer_objects()
    if t == DataType.string and (values.dtype == object or isinstance(values.dtype, pd.StringDtype)):
        return values
    if t == DataType.binary and isinstance(values.dtype, pd.StringDtype):
        return values
    if values.dtype == t.to_pandas() or values.dtype == t.to_numpy():
        return values
    if t == DataType.binary and values.dtype.kind == "S":
        return values
    if t == DataType.datetime and (values.dtype.kind == "M" or values.dtype == object):
        try:
            return values.astype("datetime64[ns]")
        except (TypeError, ValueError) as exc:
            _fail(f"column {name!r} should hold timezone-naive datetimes: {exc}")
    if t == DataType.boolean and values.dtype == object:
        return values
    target = t.to_numpy()
    kind, size = values.dtype.kind, getattr(values.dtype, "itemsize", 0)
    if kind not in "biufcM":
        kind = "O"
    if kind == target.kind:
        widening = size <= target.itemsize
    elif kind == "u" and target.kind == "i":
        widening = size < target.itemsize
    elif kind in "iu" and target == np.float64:
        widening = size <= 6
    else:
        widening = False
    if widening:
        return values.astype(target)
    if values.dtype == np.int64 and target.kind == "f" and all(pd.isnull(x) or x in (0, 1) for x in values):
        return values.astype(target)
    hint = ""
    if values.dtype == np.float64 and target.kind in "iu" and values.hasnans:
        hint = (" The column has missing values, which make integers floats: declare the column as double "
                "in the signature, or fill the missing values.")
    elif kind in "iu" and target.kind == "f":
        hint = f" Convert it first, e.g. df[{name!r}] = df[{name!r}].astype({str(target)!r})."
    numeric = f" ({target})" if target.kind in "biuf" else ""
    if kind == "O" and target.kind in "biuf":
        _fail(f"column {name!r} holds {values.dtype} values but the signature says {t.name}{numeric}; "
              f"convert it first, e.g. df[{name!r}] = pd.to_numeric(df[{name!r}])")
    _fail(f"column {name!r} has type {values.dtype} but the signature says {t.name}{numeric}; "
          f"converting could change values.{hint}")


def _check_value(name: Any, value: Any, t: Any) -> None:
    if value is None or isinstance(t, AnyType):
        return
    if isinstance(t, Array):
        if not isinstance(value, (list, np.ndarray)):
            _fail(f"column {name!r} should hold lists, found {value!r}")
        for item in value:
            _check_value(name, item, t.dtype)
    elif isinstance(t, Object):
        if not isinstance(value, dict):
            _fail(f"column {name!r} should hold dicts, found {value!r}")
        for prop in t.properties:
            if prop.name not in value and prop.required:
                _fail(f"column {name!r}: the object {value!r} lacks the required key {prop.name!r}")
            if prop.name in value:
                _check_value(name, value[prop.name], prop.dtype)
    elif isinstance(t, Map):
        if not isinstance(value, dict):
            _fail(f"column {name!r} should hold dicts, found {value!r}")
        for item in value.values():
            _check_value(name, item, t.value_type)


def _enforce_columns(data: Any, schema: Schema) -> Any:
    import pandas as pd

    frame = _to_frame(data, schema)
    out = {}
    if schema.has_input_names():
        if not all(isinstance(c, str) for c in frame.columns):
            frame = frame.rename(columns=str)  # a copy: never change the caller's frame
        names = list(frame.columns)
        required = schema.required_input_names()
        optional = set(schema.optional_input_names())
        missing = [c for c in required if c not in names]
        extra = [c for c in names if c not in required and c not in optional]
        if missing:
            _fail(f"missing required input column(s) {missing}" + (f"; got unexpected {extra}" if extra else "")
                  + f". The model takes {schema.input_names()}.")
        if extra:
            _log.warning("gitexp: input columns %s are not in the model signature and are ignored", extra)
        for spec in schema.inputs:
            if spec.name not in names:
                continue
            out[spec.name] = _enforce_one(spec.name, frame[spec.name], spec.type)
    else:
        if frame.shape[1] < len(schema.inputs):
            _fail(f"the model takes {len(schema.inputs)} unnamed input column(s), got {frame.shape[1]}")
        for i, spec in enumerate(schema.inputs):
            col = frame.columns[i]
            out[col] = _enforce_one(col, frame[col], spec.type)
    return pd.DataFrame(out, index=frame.index)


def _enforce_one(name: Any, values: Any, t: Any) -> Any:
    if isinstance(t, DataType):
        return _enforce_column(name, values, t)
    for value in values:
        _check_value(name, value, t)
    return values


# -- tensor signatures -------------------------------------------------------------------------------
def _check_tensor(value: Any, spec: TensorSpec, what: str) -> Any:
    expected, actual = spec.shape, tuple(value.shape)
    dtype = value.dtype if isinstance(value, np.ndarray) else value.data.dtype
    if len(expected) == 1 and expected[0] == -1 and spec.type == np.dtype("O"):
        return value
    if len(expected) > 1 and -1 in expected[1:] and len(actual) == 1 and dtype == np.dtype("O"):
        return value  # a ragged array
    if len(expected) != len(actual) or any(e not in (-1, a) for e, a in zip(expected, actual, strict=True)):
        _fail(f"{what} has shape {actual} but the signature expects {expected} (-1: any size)")
    from ..types._infer import clean_tensor_type

    if clean_tensor_type(dtype) != spec.type:
        _fail(f"{what} has dtype {dtype} but the signature expects {spec.type}; convert it with "
              f".astype({spec.type.name!r})")
    return value


def _column_as_tensor(name: Any, series: Any, spec: TensorSpec) -> Any:
    values = series.to_numpy()
    if values.dtype == object:
        try:
            values = np.array([np.asarray(v) for v in values])
        except ValueError as exc:
            _fail(f"column {name!r} holds arrays of different shapes ({exc})")
    try:
        if values.dtype != spec.type:
            if not np.can_cast(values.dtype, spec.type, casting="same_kind"):
                _fail(f"column {name!r} has dtype {values.dtype}, the signature expects {spec.type}")
            values = values.astype(spec.type)
        if len(spec.shape) > 1:
            values = values.reshape((-1, *spec.shape[1:]))
    except ValueError as exc:
        _fail(f"column {name!r} cannot be reshaped to {spec.shape}: {exc}")
    return _check_tensor(values, spec, f"column {name!r}")


def _enforce_tensors(data: Any, schema: Schema) -> Any:
    import pandas as pd

    inputs = cast("list[TensorSpec]", schema.inputs)  # a tensor schema: every input is a TensorSpec

    if schema.has_input_names():
        if isinstance(data, dict):
            out = {}
            for spec in inputs:
                if spec.name not in data:
                    _fail(f"missing input tensor {spec.name!r}; the model takes {schema.input_names()}")
                value = data[spec.name]
                if not isinstance(value, np.ndarray):
                    _fail(f"input {spec.name!r} should be a numpy array, got {_describe(value)}")
                out[spec.name] = _check_tensor(value, spec, f"input {spec.name!r}")
            return out
        if isinstance(data, pd.DataFrame):
            missing = [s.name for s in inputs if s.name not in data.columns]
            if missing:
                _fail(f"missing input column(s) {missing}; the model takes {schema.input_names()}")
            return {s.name: _column_as_tensor(s.name, data[s.name], s) for s in inputs}
        _fail(f"the model takes named tensors {schema.input_names()} (a dict of numpy arrays or a DataFrame), "
              f"got {_describe(data)}")
    spec = inputs[0]
    if isinstance(data, pd.DataFrame):
        if data.empty:
            _fail("the input DataFrame is empty")
        if data.shape[1] == 1:
            return _column_as_tensor(data.columns[0], data[data.columns[0]], spec)
        if spec.shape != (-1, data.shape[1]):
            _fail(f"a DataFrame with {data.shape[1]} columns needs a tensor signature of shape "
                  f"(-1, {data.shape[1]}); the model's is {spec.shape}")
        return _check_tensor(data.to_numpy(), spec, "the input")
    if isinstance(data, np.ndarray) or _is_sparse(data):
        return _check_tensor(data, spec, "the input")
    _fail(f"the model takes a numpy array (tensor of {spec.type} with shape {spec.shape}), "
          f"got {_describe(data)}; convert it with np.asarray(...)")


def enforce_schema(data: Any, schema: Schema) -> Any:
    """`data` checked and converted to fit `schema`; SchemaEnforcementError if it does not."""
    if schema.is_tensor_spec():
        return _enforce_tensors(data, schema)
    return _enforce_columns(data, schema)


# -- params -------------------------------------------------------------------------------------------
_PARAM_WIDENING = {
    DataType.long: (DataType.integer,),
    DataType.float: (DataType.integer, DataType.long),
    DataType.double: (DataType.integer, DataType.long, DataType.float),
}


def _param_value(value: Any, spec: ParamSpec) -> Any:
    from ..types._infer import infer_scalar_datatype

    def scalar(v: Any) -> Any:
        if spec.dtype == DataType.datetime:
            try:
                return np.datetime64(v).item()
            except ValueError as exc:
                raise InvalidParameterValue(f"{v!r} is not a date or datetime") from exc
        if not np.isscalar(v):
            raise InvalidParameterValue(f"expected a {spec.dtype.name}, got {v!r}")
        try:
            actual = infer_scalar_datatype(v)
        except InvalidParameterValue:
            actual = None
        if actual == spec.dtype or actual in _PARAM_WIDENING.get(spec.dtype, ()):
            return spec.dtype.to_python()(v)
        raise InvalidParameterValue(f"expected a {spec.dtype.name}, got {v!r} ({type(v).__name__})")

    if value is None:
        return None
    if spec.shape is None:
        return scalar(value)
    if not isinstance(value, (list, np.ndarray)):
        raise InvalidParameterValue(f"expected a list of {spec.dtype.name}, got {value!r}")
    return [scalar(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]


def enforce_params(params: dict[str, Any] | None, schema: ParamSchema | None) -> dict[str, Any] | None:
    """Params checked against the signature, defaults filled in (unknown ones ignored with a warning)."""
    if schema is None:
        if params:
            _log.warning("gitexp: the model's signature declares no params; ignoring %s", sorted(params))
            return {}
        return params
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidParameterValue(f"params must be a dict, got {type(params).__name__}")
    allowed = {p.name for p in schema.params}
    ignored = sorted(set(params) - allowed)
    if ignored:
        _log.warning("gitexp: params %s are not in the model signature and are ignored (it takes %s)",
                     ignored, sorted(allowed))
    out, problems = {}, []
    for spec in schema.params:
        if spec.name in params:
            try:
                out[spec.name] = _param_value(params[spec.name], spec)
            except InvalidParameterValue as exc:
                problems.append(f"{spec.name!r}: {exc.message}")
        else:
            out[spec.name] = spec.default
    if problems:
        raise SchemaEnforcementError("Invalid params for the model: " + "; ".join(problems))
    return out
