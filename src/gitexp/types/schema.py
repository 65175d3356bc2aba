"""Schemas of model inputs, outputs and params, in MLflow's JSON form.

A :class:`Schema` is a list of :class:`ColSpec` (named or unnamed columns of a
DataFrame-like input) or of :class:`TensorSpec` (numpy arrays of a dtype and a
shape, -1 for a variable dimension).  Their ``to_dict`` output is exactly what
MLflow writes into the ``signature`` of an MLmodel file, and ``from_json``
reads MLflow's, so signatures move between the two unchanged.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
from collections.abc import Iterator
from enum import Enum
from typing import Any, cast

import numpy as np

from ..exceptions import InvalidParameterValue

ARRAY_TYPE, OBJECT_TYPE, MAP_TYPE, ANY_TYPE = "array", "object", "map", "any"


class DataType(Enum):
    """The column types of MLflow signatures (value, numpy dtype, pandas dtype, Python type)."""

    _numpy_type: np.dtype[Any]
    _pandas_type: Any
    _python_type: type

    def __new__(cls, value: int, numpy_type: Any, pandas_type: Any, python_type: Any) -> DataType:
        member = object.__new__(cls)
        member._value_ = value
        member._numpy_type = numpy_type
        member._pandas_type = pandas_type
        member._python_type = python_type
        return member

    boolean = (1, np.dtype("bool"), np.dtype("bool"), bool)
    integer = (2, np.dtype("int32"), np.dtype("int32"), int)
    long = (3, np.dtype("int64"), np.dtype("int64"), int)
    float = (4, np.dtype("float32"), np.dtype("float32"), builtins.float)  # shadows the builtin: MLflow's names
    double = (5, np.dtype("float64"), np.dtype("float64"), builtins.float)
    string = (6, np.dtype("str"), object, str)
    binary = (7, np.dtype("bytes"), object, bytes)
    datetime = (8, np.dtype("datetime64[ns]"), np.dtype("datetime64[ns]"), dt.date)

    def __repr__(self) -> str:
        return self.name

    def to_numpy(self) -> np.dtype:
        return self._numpy_type

    def to_pandas(self) -> Any:
        return self._pandas_type

    def to_python(self) -> type:
        return self._python_type


def _type_from_json(d: dict[str, Any]) -> Any:
    kind = d.get("type")
    if kind == ARRAY_TYPE:
        return Array(_type_from_json(d["items"]))
    if kind == OBJECT_TYPE:
        return Object([Property(name, _type_from_json(spec), spec.get("required", True))
                       for name, spec in d["properties"].items()])
    if kind == MAP_TYPE:
        return Map(_type_from_json(d["values"]))
    if kind == ANY_TYPE:
        return AnyType()
    try:
        return DataType[cast(str, kind)]  # not a name (None, a number...): KeyError below
    except KeyError:
        raise InvalidParameterValue(
            f"Unknown type {kind!r} in a model signature; known types are "
            f"{[t.name for t in DataType] + [ARRAY_TYPE, OBJECT_TYPE, MAP_TYPE, ANY_TYPE]}") from None


def _type_to_json(t: Any) -> dict[str, Any]:
    return {"type": t.name} if isinstance(t, DataType) else t.to_dict()


def _as_type(t: Any) -> Any:
    if isinstance(t, str):
        try:
            return DataType[t]
        except KeyError:
            raise InvalidParameterValue(
                f"Unknown column type {t!r}; use one of {[x.name for x in DataType]}") from None
    if not isinstance(t, (DataType, Array, Object, Map, AnyType)):
        raise InvalidParameterValue(f"Expected a DataType, Array, Object, Map or AnyType, got {t!r}")
    return t


class Array:
    """A list of values of one type (a column holding lists)."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = _as_type(dtype)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Array) and self.dtype == other.dtype

    def __repr__(self) -> str:
        return f"Array({self.dtype!r})"

    def to_dict(self) -> dict[str, Any]:
        return {"type": ARRAY_TYPE, "items": _type_to_json(self.dtype)}


class Property:
    """A named field of an :class:`Object`."""

    def __init__(self, name: str, dtype: Any, required: bool = True) -> None:
        self.name = name
        self.dtype = _as_type(dtype)
        self.required = required

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Property) and (self.name, self.dtype, self.required)
                == (other.name, other.dtype, other.required))

    def __lt__(self, other: Property) -> bool:
        return self.name < other.name

    def __repr__(self) -> str:
        return f"{self.name}: {self.dtype!r} ({'required' if self.required else 'optional'})"

    def to_dict(self) -> dict[str, Any]:
        return {self.name: {**_type_to_json(self.dtype), "required": self.required}}


class Object:
    """A dict with known keys (a column holding JSON objects)."""

    def __init__(self, properties: list[Property]) -> None:
        if not properties:
            raise InvalidParameterValue("An Object type needs at least one property")
        self.properties = sorted(properties)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Object) and self.properties == other.properties

    def __repr__(self) -> str:
        return "{" + ", ".join(map(repr, self.properties)) + "}"

    def to_dict(self) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for p in self.properties:
            props.update(p.to_dict())
        return {"type": OBJECT_TYPE, "properties": props}


class Map:
    """A dict from strings to values of one type."""

    def __init__(self, value_type: Any) -> None:
        self.value_type = _as_type(value_type)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Map) and self.value_type == other.value_type

    def __repr__(self) -> str:
        return f"Map(str -> {self.value_type!r})"

    def to_dict(self) -> dict[str, Any]:
        return {"type": MAP_TYPE, "values": _type_to_json(self.value_type)}


class AnyType:
    """Any JSON-like value, including None."""

    name = ANY_TYPE

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnyType)

    def __repr__(self) -> str:
        return "Any"

    def to_dict(self) -> dict[str, Any]:
        return {"type": ANY_TYPE}


class ColSpec:
    """One column: a type, an optional name, and whether it is required."""

    def __init__(self, type: Any, name: str | None = None, required: bool = True) -> None:
        self.type = _as_type(type)
        self.name = name
        self.required = True if required is None else bool(required)

    def to_dict(self) -> dict[str, Any]:
        d = _type_to_json(self.type)
        if self.name is not None:
            d["name"] = self.name
        d["required"] = self.required
        return d

    @classmethod
    def from_json_dict(cls, **kwargs: Any) -> ColSpec:
        name = kwargs.pop("name", None)
        required = kwargs.pop("required", True)
        return cls(_type_from_json(kwargs), name, required)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ColSpec) and (self.name, self.type, self.required)
                == (other.name, other.type, other.required))

    def __repr__(self) -> str:
        req = "required" if self.required else "optional"
        return f"{self.type!r} ({req})" if self.name is None else f"{self.name!r}: {self.type!r} ({req})"


class TensorSpec:
    """A numpy array of one dtype and shape (-1 marks a variable dimension)."""

    def __init__(self, type: np.dtype, shape: tuple[int, ...] | list[int], name: str | None = None) -> None:
        if not isinstance(type, np.dtype):
            raise InvalidParameterValue(f"TensorSpec type must be a numpy dtype, got {type!r}")
        if type.char in ("U", "S") and not type.name.isalpha():
            raise InvalidParameterValue(
                f"TensorSpec takes flexible dtypes without a size: use np.dtype({type.name.rstrip('0123456789')!r})")
        self.type = type
        self.shape = tuple(shape)
        self.name = name

    @property
    def required(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        spec = {"dtype": self.type.name, "shape": list(self.shape)}
        if self.name is None:
            return {"type": "tensor", "tensor-spec": spec}
        return {"name": self.name, "type": "tensor", "tensor-spec": spec}

    @classmethod
    def from_json_dict(cls, **kwargs: Any) -> TensorSpec:
        spec = kwargs["tensor-spec"]
        return cls(np.dtype(spec["dtype"]), tuple(spec["shape"]), kwargs.get("name"))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TensorSpec) and (self.name, self.type, self.shape)
                == (other.name, other.type, other.shape))

    def __repr__(self) -> str:
        tensor = f"Tensor({self.type.name!r}, {self.shape!r})"
        return tensor if self.name is None else f"{self.name!r}: {tensor}"


class Schema:
    """The inputs or outputs of a model: all ColSpec or all TensorSpec."""

    def __init__(self, inputs: list[ColSpec | TensorSpec]) -> None:
        inputs = list(inputs)
        if not inputs:
            raise InvalidParameterValue("A schema needs at least one column or tensor")
        if not (all(isinstance(x, ColSpec) for x in inputs) or all(isinstance(x, TensorSpec) for x in inputs)):
            raise InvalidParameterValue("A schema is either all ColSpec or all TensorSpec, not a mix")
        named = [x.name is not None for x in inputs]
        if any(named) and not all(named):
            raise InvalidParameterValue("Either every input of a schema has a name, or none has")
        self.inputs = inputs

    def __len__(self) -> int:
        return len(self.inputs)

    def __iter__(self) -> Iterator[ColSpec | TensorSpec]:
        return iter(self.inputs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self.inputs == other.inputs

    def __repr__(self) -> str:
        return repr(self.inputs)

    def is_tensor_spec(self) -> bool:
        return isinstance(self.inputs[0], TensorSpec)

    def has_input_names(self) -> bool:
        return self.inputs[0].name is not None

    def input_names(self) -> list[str | int]:
        return [x.name if x.name is not None else i for i, x in enumerate(self.inputs)]

    def required_input_names(self) -> list[str | int]:
        return [x.name if x.name is not None else i for i, x in enumerate(self.inputs) if x.required]

    def optional_input_names(self) -> list[str | int]:
        return [x.name if x.name is not None else i for i, x in enumerate(self.inputs) if not x.required]

    def input_types(self) -> list[Any]:
        return [x.type for x in self.inputs]

    def input_dict(self) -> dict[str, ColSpec | TensorSpec]:
        return {x.name: x for x in self.inputs if x.name is not None}

    def numpy_types(self) -> list[np.dtype]:
        if self.is_tensor_spec():
            return [x.type for x in self.inputs]
        return [x.type.to_numpy() if isinstance(x.type, DataType) else np.dtype("object") for x in self.inputs]

    def to_dict(self) -> list[dict[str, Any]]:
        return [x.to_dict() for x in self.inputs]

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, json_str: str) -> Schema:
        items = json.loads(json_str)
        return cls([TensorSpec.from_json_dict(**x) if x.get("type") == "tensor" else ColSpec.from_json_dict(**x)
                    for x in items])


class ParamSpec:
    """An inference parameter: name, type, default and shape (None for a scalar, (-1,) for a list)."""

    def __init__(self, name: str, dtype: Any, default: Any, shape: tuple[int, ...] | None = None) -> None:
        self.name = name
        self.dtype = _as_type(dtype)
        if not isinstance(self.dtype, DataType):
            raise InvalidParameterValue(f"Param {name!r}: params must have a plain DataType, got {dtype!r}")
        self.shape = tuple(shape) if shape is not None else None
        self.default = default

    def to_dict(self) -> dict[str, Any]:
        default = self.default
        if isinstance(default, (dt.date, dt.datetime)):
            default = default.isoformat()
        elif isinstance(default, np.ndarray):
            default = default.tolist()
        return {"name": self.name, "default": default, "shape": list(self.shape) if self.shape else None,
                "type": self.dtype.name}

    @classmethod
    def from_json_dict(cls, **kwargs: Any) -> ParamSpec:
        shape = kwargs.get("shape")
        return cls(kwargs["name"], kwargs["type"], kwargs.get("default"), tuple(shape) if shape else None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        shape = f" (shape: {self.shape})" if self.shape else ""
        return f"{self.name!r}: {self.dtype!r} (default: {self.default}){shape}"


class ParamSchema:
    """The params a model's predict accepts."""

    def __init__(self, params: list[ParamSpec]) -> None:
        names = [p.name for p in params]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidParameterValue(f"Duplicate param names in a ParamSchema: {duplicates}")
        self.params = list(params)

    def __iter__(self) -> Iterator[ParamSpec]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSchema) and self.params == other.params

    def __repr__(self) -> str:
        return repr(self.params)

    def to_dict(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.params]

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, json_str: str) -> ParamSchema:
        return cls([ParamSpec.from_json_dict(**p) for p in json.loads(json_str)])
