"""``gitexp.types``: schema types of model signatures (as ``mlflow.types``)."""

from .schema import (
    AnyType,
    Array,
    ColSpec,
    DataType,
    Map,
    Object,
    ParamSchema,
    ParamSpec,
    Property,
    Schema,
    TensorSpec,
)

__all__ = ["AnyType", "Array", "ColSpec", "DataType", "Map", "Object", "ParamSchema", "ParamSpec", "Property",
           "Schema", "TensorSpec"]
