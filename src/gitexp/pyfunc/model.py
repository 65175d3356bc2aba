"""Custom Python models: PythonModel, its context, and how such a model is saved and loaded.

The format is MLflow's (loader module ``mlflow.pyfunc.model``, the model
object cloudpickled as ``python_model.pkl``, artifacts under ``artifacts/``),
so MLflow loads a gitexp PythonModel and gitexp loads MLflow's.
"""

from __future__ import annotations

import inspect
import os
import pickle
from collections import namedtuple
from collections.abc import Callable
from typing import Any

from ..exceptions import InvalidParameterValue

PYTHON_MODEL_FILE = "python_model.pkl"
_TypeHints = namedtuple("_TypeHints", ["input", "output"])


class PythonModel:
    """Subclass this and implement ``predict`` to log any Python code as a model.

    >>> class AddN(gitexp.pyfunc.PythonModel):
    ...     def __init__(self, n):
    ...         self.n = n
    ...     def predict(self, context, model_input, params=None):
    ...         return model_input + self.n
    """

    def load_context(self, context: PythonModelContext) -> None:
        """Called once when the model loads: read artifacts from ``context.artifacts`` here."""

    def predict(self, context: PythonModelContext, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        raise InvalidParameterValue(
            f"{type(self).__name__} must implement predict(self, context, model_input, params=None)")

    @property
    def predict_type_hints(self) -> _TypeHints:
        # MLflow's loader asks for these; gitexp models declare types with signatures instead.
        return _TypeHints(None, None)


class _FunctionPythonModel(PythonModel):
    """A plain function given as python_model."""

    def __init__(self, func: Any) -> None:
        self.func = func

    # MLflow's context-free form: _PythonModelWrapper calls predict by its signature (takes_context).
    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:  # type: ignore[override]
        return self.func(model_input)


class PythonModelContext:
    """What a PythonModel sees at load and predict time: its artifacts and config."""

    def __init__(self, artifacts: dict[str, str], model_config: dict[str, Any] | None = None) -> None:
        self._artifacts = artifacts
        self._model_config = model_config

    @property
    def artifacts(self) -> dict[str, str]:
        """Artifact name -> absolute path of the file or directory in the loaded model."""
        return self._artifacts

    @property
    def model_config(self) -> dict[str, Any] | None:
        return self._model_config


def takes_context(func: Any) -> bool:
    """MLflow's rule: predict(self, context, model_input, ...) versus predict(self, model_input, ...)."""
    parameters = inspect.signature(func).parameters
    return "context" in parameters or len([p for p in parameters if p not in ("self", "params")]) == 2


class _PythonModelWrapper:
    """A loaded PythonModel behind the pyfunc predict(data, params) interface."""

    def __init__(self, python_model: Any, context: PythonModelContext) -> None:
        self.python_model = python_model
        self.context = context

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        predict = self.python_model.predict
        kwargs = {"params": params} if "params" in inspect.signature(predict).parameters else {}
        if takes_context(predict):
            return predict(self.context, model_input, **kwargs)
        return predict(model_input, **kwargs)

    def get_raw_model(self) -> Any:
        return self.python_model


def dump_python_model(python_model: Any, path: str) -> None:
    import cloudpickle

    try:
        with open(path, "wb") as fh:
            cloudpickle.dump(python_model, fh, protocol=pickle.DEFAULT_PROTOCOL)
    except Exception as exc:
        raise InvalidParameterValue(
            f"Cannot pickle the python_model {type(python_model).__name__}: {exc}. Keep open files, locks "
            "and connections out of the model object; open them in load_context instead.") from exc


def _load_pyfunc(model_dir: str, model_config: dict[str, Any] | None = None) -> _PythonModelWrapper:
    """Load a PythonModel saved by gitexp or MLflow (pyfunc loader module 'mlflow.pyfunc.model')."""
    import cloudpickle

    from ..models._flavor import check_deserialization_allowed, flavor_conf

    conf = flavor_conf(model_dir, "python_function")
    if "model_code_path" in conf:
        raise InvalidParameterValue(
            f"The model at {model_dir} is an MLflow 'model from code'; gitexp loads pickled PythonModels only. "
            "Load it with mlflow.pyfunc.load_model.")
    pickled = os.path.join(model_dir, conf.get("python_model", PYTHON_MODEL_FILE))
    check_deserialization_allowed(pickled)
    compression = conf.get("python_model_compression")
    if compression:
        import bz2
        import gzip
        import lzma

        openers: dict[str, Callable[..., Any]] = {"lzma": lzma.open, "bzip2": bz2.open, "gzip": gzip.open}
        opener = openers.get(compression)
        if opener is None:
            raise InvalidParameterValue(f"Unknown python_model_compression {compression!r} in {model_dir}")
        with opener(pickled, "rb") as fh:
            python_model = cloudpickle.load(fh)
    else:
        with open(pickled, "rb") as fh:
            python_model = cloudpickle.load(fh)
    artifacts = {name: os.path.join(model_dir, info["path"]) for name, info in (conf.get("artifacts") or {}).items()}
    config = model_config if model_config is not None else conf.get("config")
    context = PythonModelContext(artifacts, config)
    python_model.load_context(context)
    return _PythonModelWrapper(python_model, context)
