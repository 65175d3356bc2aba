"""Model signatures: the schema of a model's inputs, outputs and params (MLflow's format)."""

from __future__ import annotations

import logging
from typing import Any

from ..exceptions import InvalidParameterValue
from ..types.schema import AnyType, ColSpec, ParamSchema, Schema

_log = logging.getLogger("gitexp")


class ModelSignature:
    """What a model takes and returns. Stored in MLmodel as JSON strings, as MLflow does."""

    def __init__(self, inputs: Schema | None = None, outputs: Schema | None = None,
                 params: ParamSchema | None = None) -> None:
        for what, value, kind in (("inputs", inputs, Schema), ("outputs", outputs, Schema),
                                  ("params", params, ParamSchema)):
            if value is not None and not isinstance(value, kind):
                raise InvalidParameterValue(
                    f"ModelSignature {what} must be a {kind.__name__} (or None), got {type(value).__name__}")
        if inputs is None and outputs is None:
            raise InvalidParameterValue("A ModelSignature needs inputs, outputs or both")
        self.inputs = inputs
        self.outputs = outputs
        self.params = params
        self._is_signature_from_type_hint = False
        self._is_type_hint_from_example = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs.to_json() if self.inputs is not None else None,
            "outputs": self.outputs.to_json() if self.outputs is not None else None,
            "params": self.params.to_json() if self.params is not None else None,
        }

    @classmethod
    def from_dict(cls, signature_dict: dict[str, Any]) -> ModelSignature:
        inputs = signature_dict.get("inputs")
        outputs = signature_dict.get("outputs")
        params = signature_dict.get("params")
        return cls(Schema.from_json(inputs) if inputs else None, Schema.from_json(outputs) if outputs else None,
                   ParamSchema.from_json(params) if params else None)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ModelSignature) and (self.inputs, self.outputs, self.params)
                == (other.inputs, other.outputs, other.params))

    def __repr__(self) -> str:
        return f"inputs:\n  {self.inputs!r}\noutputs:\n  {self.outputs!r}\nparams:\n  {self.params!r}\n"


def infer_signature(model_input: Any = None, model_output: Any = None,
                    params: dict[str, Any] | None = None) -> ModelSignature:
    """A signature from example inputs, outputs and params (as ``mlflow.models.infer_signature``).

    >>> infer_signature(X_train, model.predict(X_train))
    """
    from ..types._infer import infer_param_schema, infer_schema

    schemas: dict[str, Any] = {"inputs": None, "outputs": None}
    for key, data in (("inputs", model_input), ("outputs", model_output)):
        if data is None:
            continue
        try:
            schemas[key] = infer_schema(data)
        except InvalidParameterValue as exc:
            _log.warning("gitexp: could not infer the %s schema (%s); using Any", key, exc.message)
            schemas[key] = Schema([ColSpec(AnyType())])
    param_schema = infer_param_schema(params) if params else None
    return ModelSignature(schemas["inputs"], schemas["outputs"], param_schema)


def infer_from_example(example: Any, wrapped_model: Any) -> ModelSignature | None:
    """Inputs from the saved example, outputs from predicting on it (None if that fails)."""
    import copy

    import numpy as np

    from ..types._infer import infer_param_schema, infer_schema
    from ._enforce import enforce_params, enforce_schema

    try:
        data = copy.deepcopy(example.data)
        input_schema = infer_schema(data)
        params_schema = infer_param_schema(example.params) if example.params else None
        data = enforce_schema(data, input_schema)
        params = enforce_params(example.params, params_schema)
        kwargs = {"params": params} if params else {}
        prediction = wrapped_model.predict(data, **kwargs)
        if not input_schema.is_tensor_spec() and isinstance(prediction, np.ndarray) and prediction.ndim == 1:
            import pandas as pd

            prediction = pd.Series(prediction)  # one prediction per row: a column
        try:
            output_schema = infer_schema(prediction)
        except Exception:
            output_schema = Schema([ColSpec(AnyType())])
        return ModelSignature(input_schema, output_schema, params_schema)
    except Exception as exc:
        _log.warning("gitexp: could not infer the model signature from the input example (%s); the model is "
                     "saved without one. Pass signature=infer_signature(X, model.predict(X)) to set it.", exc)
        return None
