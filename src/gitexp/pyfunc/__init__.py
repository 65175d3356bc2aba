"""``gitexp.pyfunc``: any model as a Python function, in MLflow's ``python_function`` flavor.

``load_model`` loads models saved by gitexp or by MLflow (sklearn, xgboost
and PythonModel models natively; other MLflow flavors when mlflow is
installed) and returns a :class:`PyFuncModel` whose ``predict`` checks its
input against the model signature first.  ``save_model``/``log_model`` store
a custom :class:`PythonModel`.

Loading a model unpickles it: that runs code written by whoever saved the
model.  Only load models from people you trust.
"""

from __future__ import annotations

import inspect
import os
import shutil
from typing import Any

from ..exceptions import InvalidParameterValue
from ..models.model import Model, ModelInfo
from .model import PythonModel, PythonModelContext

FLAVOR_NAME = "python_function"
MAIN = "loader_module"
CODE = "code"
DATA = "data"
ENV = "env"
PY_VERSION = "python_version"


def add_to_model(model: Model, loader_module: str, data: str | None = None, code: str | None = None,
                 conda_env: str | None = None, python_env: str | None = None,
                 model_config: dict[str, Any] | None = None, **kwargs: Any) -> Model:
    """Add the python_function flavor to a Model (MLflow's layout of the flavor's fields)."""
    import platform

    params = dict(kwargs)
    params[MAIN] = loader_module
    params[PY_VERSION] = platform.python_version()
    if code:
        params[CODE] = code
    if data:
        params[DATA] = data
    if conda_env or python_env:
        params[ENV] = {}
        if conda_env:
            params[ENV]["conda"] = conda_env
        if python_env:
            params[ENV]["virtualenv"] = python_env
    if model_config:
        params["config"] = model_config
    return model.add_flavor(FLAVOR_NAME, **params)


class PyFuncModel:
    """A loaded model with one ``predict(data, params=None)``, checked against its signature."""

    def __init__(self, model_meta: Model, model_impl: Any, predict_fn: str = "predict",
                 model_dir: str | None = None) -> None:
        if not hasattr(model_impl, predict_fn):
            raise InvalidParameterValue(f"The model implementation has no {predict_fn!r} method")
        self._model_meta = model_meta
        self._model_impl = model_impl
        self._predict_fn = getattr(model_impl, predict_fn)
        self._model_dir = model_dir
        self._input_example: Any = None

    @property
    def metadata(self) -> Model:
        return self._model_meta

    @property
    def model_id(self) -> str | None:
        return None

    @property
    def loader_module(self) -> str | None:
        module: str | None = self._model_meta.flavors.get(FLAVOR_NAME, {}).get(MAIN)
        return module

    @property
    def input_example(self) -> Any:
        return self._input_example

    @input_example.setter
    def input_example(self, value: Any) -> None:
        self._input_example = value

    @property
    def model_config(self) -> dict[str, Any]:
        config: dict[str, Any] = self._model_meta.flavors.get(FLAVOR_NAME, {}).get("config", {})
        return config

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Predict on pandas, numpy, scipy sparse, dict or list input.

        With a signature, the input is checked and converted first (required
        columns, safe type conversions, tensor shapes and dtypes) and a clear
        error says what does not fit.
        """
        from ..models._enforce import enforce_params, enforce_schema

        schema = self._model_meta.get_input_schema()
        if schema is not None:
            data = enforce_schema(data, schema)
        params = enforce_params(params, self._model_meta.get_params_schema())
        accepts = inspect.signature(self._predict_fn).parameters.get("params")
        if accepts is not None and accepts.kind != inspect.Parameter.VAR_KEYWORD:
            return self._predict_fn(data, params=params)
        return self._predict_fn(data)

    def unwrap_python_model(self) -> Any:
        """The PythonModel object of a custom model."""
        python_model = getattr(self._model_impl, "python_model", None)
        if python_model is None:
            raise InvalidParameterValue("This model is not a PythonModel; use get_raw_model() for the underlying model")
        return python_model

    def get_raw_model(self) -> Any:
        """The underlying model object (the sklearn estimator, the xgboost booster...)."""
        raw = getattr(self._model_impl, "get_raw_model", None)
        return raw() if raw is not None else self._model_impl

    def __repr__(self) -> str:
        info = {"flavor": self.loader_module}
        if self._model_meta.run_id:
            info["run_id"] = self._model_meta.run_id
        if self._model_meta.artifact_path:
            info["artifact_path"] = self._model_meta.artifact_path
        return "gitexp.pyfunc.loaded_model:\n" + "".join(f"  {k}: {v}\n" for k, v in info.items())


def load_model(model_uri: str | os.PathLike[str], suppress_warnings: bool = False, dst_path: str | None = None,
               model_config: dict[str, Any] | None = None) -> PyFuncModel:
    """Load a model as a Python function from ``runs:/<run_id>/<name>``, a local path (or ``models:/``).

    Loading unpickles the model, which runs code from whoever saved it.
    """
    from ..models._flavor import add_code_to_sys_path, pyfunc_loader
    from ..models._resolve import resolve_model_uri

    local = resolve_model_uri(model_uri, dst_path)
    meta = Model.load(local)
    conf = meta.flavors.get(FLAVOR_NAME)
    if conf is None:
        raise InvalidParameterValue(
            f"The model at {model_uri} has no python_function flavor (its flavors: {sorted(meta.flavors)}), so "
            "it cannot be loaded as a Python function; use its own flavor's load_model.")
    if not suppress_warnings:
        _warn_python_version(conf.get(PY_VERSION))
    add_code_to_sys_path(local, conf)
    data_path = os.path.join(local, conf[DATA]) if DATA in conf else local
    loader = pyfunc_loader(conf[MAIN])
    if model_config is not None and "model_config" in inspect.signature(loader._load_pyfunc).parameters:
        impl = loader._load_pyfunc(data_path, model_config=model_config)
    else:
        impl = loader._load_pyfunc(data_path)
    model = PyFuncModel(meta, impl, conf.get("predict_fn", "predict"), local)
    try:
        model.input_example = meta.load_input_example(local)
    except Exception:
        model.input_example = None
    return model


def _warn_python_version(saved: str | None) -> None:
    import logging
    import platform

    if saved and saved.split(".")[:2] != platform.python_version().split(".")[:2]:
        logging.getLogger("gitexp").warning(
            "gitexp: this model was saved with Python %s and is loaded with Python %s; pickles may not load "
            "across Python versions", saved, platform.python_version())


def _copy_artifact(name: str, uri: str, model_dir: str) -> dict[str, str]:
    from ..artifacts import download_artifacts

    base = os.path.join(model_dir, "artifacts")
    os.makedirs(base, exist_ok=True)
    staging = os.path.join(base, f".{name}.staging")
    local = download_artifacts(uri, dst_path=staging)
    target = os.path.join(base, os.path.basename(local.rstrip(os.sep)))
    if os.path.exists(target):
        raise InvalidParameterValue(
            f"Two artifacts of the model are both named {os.path.basename(target)!r}; rename one of the files")
    shutil.move(local, target)
    shutil.rmtree(staging, ignore_errors=True)
    return {"path": f"artifacts/{os.path.basename(target)}", "uri": uri}


def save_model(path: str | os.PathLike[str], loader_module: str | None = None, data_path: str | None = None,
               code_paths: list[str] | None = None, conda_env: Any = None, mlflow_model: Model | None = None,
               python_model: Any = None, artifacts: dict[str, str] | None = None, signature: Any = None,
               input_example: Any = None, pip_requirements: Any = None, extra_pip_requirements: Any = None,
               metadata: dict[str, Any] | None = None, model_config: dict[str, Any] | None = None,
               code_path: list[str] | None = None, **kwargs: Any) -> None:
    """Save a custom model: a PythonModel (pickled with cloudpickle) or a loader module with data.

    ``artifacts`` maps names to files or ``runs:/`` URIs; they are copied into the
    model and their local paths given to the model in ``context.artifacts``.
    """
    import cloudpickle

    from ..models._environment import CONDA_ENV_FILE, PYTHON_ENV_FILE, pinned
    from ..models._example import save_example
    from ..models._flavor import copy_code_paths, finish_model, prepare_save_path
    from ..models.signature import infer_from_example
    from .model import PYTHON_MODEL_FILE, _FunctionPythonModel, _PythonModelWrapper, dump_python_model

    if kwargs:
        raise InvalidParameterValue(f"save_model got unexpected arguments {sorted(kwargs)}")
    if (python_model is None) == (loader_module is None):
        raise InvalidParameterValue("save_model needs either python_model (a PythonModel) or loader_module, not both")
    if isinstance(python_model, (str, os.PathLike)):
        raise InvalidParameterValue(
            "python_model is a path: MLflow's 'models from code' are not supported by gitexp; pass a "
            "PythonModel instance instead")
    path = prepare_save_path(path)
    model = mlflow_model or Model()
    code = copy_code_paths(code_paths or code_path, path)
    example = save_example(model, input_example, path)
    if metadata is not None:
        model.metadata = metadata
    if loader_module is not None:
        data = None
        if data_path is not None:
            data = os.path.basename(os.path.normpath(data_path))
            dest = os.path.join(path, data)
            if os.path.isdir(data_path):
                shutil.copytree(data_path, dest)
            else:
                shutil.copy2(data_path, dest)
        if signature is not None:
            model.signature = signature
        add_to_model(model, loader_module=loader_module, data=data, code=code, conda_env=CONDA_ENV_FILE,
                     python_env=PYTHON_ENV_FILE, model_config=model_config)
        finish_model(model, path, [pinned("gitexp")], conda_env, pip_requirements, extra_pip_requirements)
        return
    if not isinstance(python_model, PythonModel):
        if callable(python_model):
            python_model = _FunctionPythonModel(python_model)
        elif not (hasattr(python_model, "predict") and hasattr(python_model, "load_context")):
            raise InvalidParameterValue(
                f"python_model must subclass gitexp.pyfunc.PythonModel (or be a function), got "
                f"{type(python_model).__name__}")
    saved_artifacts = {name: _copy_artifact(name, uri, path) for name, uri in (artifacts or {}).items()}
    if signature is None and example is not None:
        context = PythonModelContext({n: os.path.join(path, a["path"]) for n, a in saved_artifacts.items()},
                                     model_config)
        python_model.load_context(context)
        signature = infer_from_example(example, _PythonModelWrapper(python_model, context))
    if signature is not False and signature is not None:
        model.signature = signature
    dump_python_model(python_model, os.path.join(path, PYTHON_MODEL_FILE))
    extra: dict[str, Any] = {"cloudpickle_version": cloudpickle.__version__, "python_model": PYTHON_MODEL_FILE,
                             "streamable": False}
    if saved_artifacts:
        extra["artifacts"] = saved_artifacts
    add_to_model(model, loader_module="mlflow.pyfunc.model", code=code, conda_env=CONDA_ENV_FILE,
                 python_env=PYTHON_ENV_FILE, model_config=model_config, **extra)
    requirements = [pinned("cloudpickle"), pinned("gitexp")]
    finish_model(model, path, requirements, conda_env, pip_requirements, extra_pip_requirements)


def log_model(artifact_path: str | None = None, loader_module: str | None = None, data_path: str | None = None,
              code_paths: list[str] | None = None, conda_env: Any = None, python_model: Any = None,
              artifacts: dict[str, str] | None = None, registered_model_name: str | None = None,
              signature: Any = None, input_example: Any = None, pip_requirements: Any = None,
              extra_pip_requirements: Any = None, metadata: dict[str, Any] | None = None,
              model_config: dict[str, Any] | None = None, name: str | None = None, **kwargs: Any) -> ModelInfo:
    """Log a custom model to the active run; returns its ModelInfo (model_uri is runs:/<run_id>/<name>)."""
    from ..models._flavor import log_model as _log

    return _log(save_model, artifact_path, name, registered_model_name, kwargs, loader_module=loader_module,
                data_path=data_path, code_paths=code_paths, conda_env=conda_env, python_model=python_model,
                artifacts=artifacts, signature=signature, input_example=input_example,
                pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                metadata=metadata, model_config=model_config)


def load_pyfunc(model_uri: str, suppress_warnings: bool = False) -> PyFuncModel:
    """Deprecated MLflow alias of load_model."""
    return load_model(model_uri, suppress_warnings)


__all__ = ["FLAVOR_NAME", "PyFuncModel", "PythonModel", "PythonModelContext", "add_to_model", "load_model",
           "load_pyfunc", "log_model", "save_model"]
