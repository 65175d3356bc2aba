"""``gitexp.xgboost``: XGBoost models in MLflow's ``xgboost`` flavor.

Boosters and scikit-learn-API models (XGBClassifier, XGBRegressor...) are
saved with XGBoost's own ``save_model`` as ``model.ubj`` (or ``.json``,
``.xgb``), with the model class recorded in MLmodel, exactly as MLflow does,
so either library loads what the other saved.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

from .exceptions import InvalidParameterValue
from .models.model import Model, ModelInfo

FLAVOR_NAME = "xgboost"
_FORMATS = ("ubj", "json", "xgb", "deprecated")


def get_default_pip_requirements() -> list[str]:
    from .models._environment import pinned

    return [pinned("xgboost")]


def _class_name(model: Any) -> str:
    return f"{type(model).__module__}.{type(model).__name__}"


class _XGBModelWrapper:
    """The pyfunc face of an XGBoost model: a Booster predicts on a DMatrix built from the input."""

    def __init__(self, xgb_model: Any) -> None:
        self.xgb_model = xgb_model

    def get_raw_model(self) -> Any:
        return self.xgb_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import xgboost as xgb

        params = dict(params or {})
        if isinstance(self.xgb_model, xgb.Booster):
            allowed = inspect.signature(self.xgb_model.predict).parameters
            kwargs = {k: v for k, v in params.items() if k in allowed}
            return self.xgb_model.predict(xgb.DMatrix(data), validate_features=True, **kwargs)
        allowed = inspect.signature(self.xgb_model.predict).parameters
        kwargs = {k: v for k, v in params.items() if k in allowed}
        return self.xgb_model.predict(data, validate_features=True, **kwargs)


def save_model(xgb_model: Any, path: str | os.PathLike[str], conda_env: Any = None, code_paths: list[str] | None = None,
               mlflow_model: Model | None = None, signature: Any = None, input_example: Any = None,
               pip_requirements: Any = None, extra_pip_requirements: Any = None, model_format: str = "ubj",
               metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Save an XGBoost Booster or scikit-learn-API model in the MLflow model format."""
    import xgboost as xgb

    from . import pyfunc
    from .models._environment import CONDA_ENV_FILE, PYTHON_ENV_FILE
    from .models._flavor import begin_model, finish_model

    if not isinstance(xgb_model, (xgb.Booster, xgb.XGBModel)):
        raise InvalidParameterValue(
            "gitexp.xgboost saves xgboost.Booster and XGBModel (XGBClassifier...) objects, "
            f"got {_class_name(xgb_model)}")
    if model_format not in _FORMATS:
        raise InvalidParameterValue(f"Unknown model_format {model_format!r}; use 'ubj' (default), 'json' or 'xgb'")
    path, code, model = begin_model(path, code_paths, mlflow_model, input_example, signature, metadata,
                                    _XGBModelWrapper(xgb_model))
    data_file = f"model.{model_format}"
    xgb_model.save_model(os.path.join(path, data_file), **kwargs)
    pyfunc.add_to_model(model, loader_module="mlflow.xgboost", data=data_file, conda_env=CONDA_ENV_FILE,
                        python_env=PYTHON_ENV_FILE, code=code)
    model.add_flavor(FLAVOR_NAME, xgb_version=xgb.__version__, data=data_file, model_class=_class_name(xgb_model),
                     model_format=model_format, code=code)
    finish_model(model, path, get_default_pip_requirements(), conda_env, pip_requirements, extra_pip_requirements)


def log_model(xgb_model: Any, artifact_path: str | None = None, conda_env: Any = None,
              code_paths: list[str] | None = None, registered_model_name: str | None = None,
              signature: Any = None, input_example: Any = None, pip_requirements: Any = None,
              extra_pip_requirements: Any = None, model_format: str = "ubj", metadata: dict[str, Any] | None = None,
              name: str | None = None, **kwargs: Any) -> ModelInfo:
    """Log an XGBoost model to the active run (``name=`` or the older ``artifact_path=``)."""
    from .models._flavor import _UNSUPPORTED_LOG_ARGS
    from .models._flavor import log_model as _log

    extra = {k: kwargs.pop(k) for k in list(kwargs) if k in _UNSUPPORTED_LOG_ARGS or k == "await_registration_for"}
    return _log(save_model, artifact_path, name, registered_model_name, extra, xgb_model=xgb_model,
                conda_env=conda_env, code_paths=code_paths, signature=signature, input_example=input_example,
                pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                model_format=model_format, metadata=metadata, **kwargs)


def _load(model_dir: str) -> Any:
    from .models._flavor import flavor_conf

    conf = flavor_conf(model_dir, FLAVOR_NAME)
    class_path = conf.get("model_class", "xgboost.core.Booster")
    module_name, _, class_name = class_path.rpartition(".")
    if not (module_name == "xgboost" or module_name.startswith("xgboost.")):
        raise InvalidParameterValue(
            f"The xgboost flavor of {model_dir} names model class {class_path!r}, which is not an xgboost class; "
            "refusing to import it")
    cls = getattr(importlib.import_module(module_name), class_name)
    model = cls()
    model.load_model(os.path.join(model_dir, conf.get("data", "model.xgb")))
    return model


def load_model(model_uri: str | os.PathLike[str], dst_path: str | None = None) -> Any:
    """Load an XGBoost model (the class it was saved as) from ``runs:/...``, a path (or ``models:/``)."""
    from .models._flavor import add_code_to_sys_path, flavor_conf
    from .models._resolve import resolve_model_uri

    local = resolve_model_uri(model_uri, dst_path)
    add_code_to_sys_path(local, flavor_conf(local, FLAVOR_NAME))
    return _load(local)


def _load_pyfunc(path: str) -> _XGBModelWrapper:
    """Called by gitexp.pyfunc.load_model with the model file (or directory)."""
    return _XGBModelWrapper(_load(os.path.dirname(path) if os.path.isfile(path) else path))


__all__ = ["FLAVOR_NAME", "get_default_pip_requirements", "load_model", "log_model", "save_model"]


# Autologging lives with the other integrations; it logs models through this module, which
# hands itself over (the integration never imports it: no import cycle).
from ._autolog import xgboost as _integration  # noqa: E402

_integration.use_flavor(sys.modules[__name__])
autolog = _integration.autolog

__all__ += ["autolog"]
