"""``gitexp.models``: the MLflow model format (MLmodel, signatures, input examples).

Flavors live in ``gitexp.pyfunc``, ``gitexp.sklearn`` and ``gitexp.xgboost``.
Every model URI (``runs:/<run_id>/<name>``, a local path, ``models:/`` once
the registry is installed) is resolved by :func:`resolve_model_uri`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._resolve import resolve_model_uri
from .model import MLMODEL_FILE_NAME, Model, ModelInfo, get_model_info
from .signature import ModelSignature, infer_signature

if TYPE_CHECKING:
    from ..types.schema import Schema


def validate_schema(data: Any, expected_schema: Schema) -> None:
    """Raise if `data` does not fit `expected_schema` (as pyfunc predict would)."""
    from ._enforce import enforce_schema

    enforce_schema(data, expected_schema)


def __getattr__(name: str) -> Any:
    from .. import _PLUGIN_ONLY  # evaluate & co.: only MLflow's own package has them

    if f"{__name__}.{name}" in _PLUGIN_ONLY:
        from ..exceptions import PluginRequired

        raise PluginRequired(f"{__name__}.{name}", _PLUGIN_ONLY[f"{__name__}.{name}"])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MLMODEL_FILE_NAME", "Model", "ModelInfo", "ModelSignature", "get_model_info", "infer_signature",
           "resolve_model_uri", "validate_schema"]
