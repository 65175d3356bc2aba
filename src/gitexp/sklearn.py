"""``gitexp.sklearn``: scikit-learn models in MLflow's ``sklearn`` flavor.

A model saved here is the directory MLflow writes (``model.pkl`` or
``model.skops``, MLmodel with the ``sklearn`` and ``python_function``
flavors, loader module ``mlflow.sklearn``), so ``mlflow.sklearn.load_model``
and ``mlflow.pyfunc.load_model`` read it, and this module reads MLflow's.

The default serialization is cloudpickle (MLflow 3.17 defaults to skops,
which refuses custom classes); pass ``serialization_format="skops"`` for
skops or ``"pickle"`` for plain pickle.  Loading a pickled model runs code
from whoever saved it: only load models from people you trust.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any

from .exceptions import InvalidParameterValue
from .models.model import Model, ModelInfo

FLAVOR_NAME = "sklearn"
SERIALIZATION_FORMAT_PICKLE = "pickle"
SERIALIZATION_FORMAT_CLOUDPICKLE = "cloudpickle"
SERIALIZATION_FORMAT_SKOPS = "skops"
SUPPORTED_SERIALIZATION_FORMATS = [SERIALIZATION_FORMAT_PICKLE, SERIALIZATION_FORMAT_CLOUDPICKLE,
                                   SERIALIZATION_FORMAT_SKOPS]
_PICKLE_FILE = "model.pkl"
_SKOPS_FILE = "model.skops"


def get_default_pip_requirements(include_cloudpickle: bool = False, include_skops: bool = False) -> list[str]:
    from .models._environment import pinned

    reqs = [pinned("scikit-learn")]
    if include_cloudpickle:
        reqs.append(pinned("cloudpickle"))
    if include_skops:
        reqs.append(pinned("skops"))
    return reqs


class _SklearnModelWrapper:
    """The pyfunc face of an estimator: predict (or predict_proba... when chosen at save time)."""

    def __init__(self, sklearn_model: Any) -> None:
        self.sklearn_model = sklearn_model
        for name in ("predict_proba", "predict_log_proba", "predict_joint_log_proba", "score"):
            fn = getattr(sklearn_model, name, None)
            if fn is not None:
                setattr(self, name, fn)

    def get_raw_model(self) -> Any:
        return self.sklearn_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.sklearn_model.predict(data)


def _dump(sk_model: Any, path: str, serialization_format: str, skops_trusted_types: list[str] | None) -> None:
    if serialization_format == SERIALIZATION_FORMAT_SKOPS:
        try:
            import skops.io
        except ImportError:
            raise InvalidParameterValue("serialization_format='skops' needs skops: pip install skops") from None
        try:
            skops.io.dump(sk_model, path)
            skops.io.load(path, trusted=skops_trusted_types)
        except Exception as exc:
            if os.path.exists(path):
                os.unlink(path)
            raise InvalidParameterValue(
                f"skops cannot save this model safely ({exc}). Pass the types you trust as "
                "skops_trusted_types=[...], or use serialization_format='cloudpickle'.") from exc
        return
    if serialization_format == SERIALIZATION_FORMAT_CLOUDPICKLE:
        import cloudpickle as module
    else:
        module = pickle
    try:
        with open(path, "wb") as fh:
            # The default protocol, not the newest: models stay loadable by older Pythons.
            module.dump(sk_model, fh, protocol=pickle.DEFAULT_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise InvalidParameterValue(
            f"Cannot pickle the {type(sk_model).__name__} model: {exc}. Custom classes defined in a notebook "
            "or script need serialization_format='cloudpickle'.") from exc


def save_model(sk_model: Any, path: str | os.PathLike[str], conda_env: Any = None, code_paths: list[str] | None = None,
               mlflow_model: Model | None = None, serialization_format: str = SERIALIZATION_FORMAT_CLOUDPICKLE,
               signature: Any = None, input_example: Any = None, pip_requirements: Any = None,
               extra_pip_requirements: Any = None, pyfunc_predict_fn: str = "predict",
               metadata: dict[str, Any] | None = None, skops_trusted_types: list[str] | None = None) -> None:
    """Save a scikit-learn model to a local directory in the MLflow model format.

    With ``input_example`` and no ``signature``, the signature is inferred by
    predicting on the example.
    """
    import sklearn

    from . import pyfunc
    from .models._environment import CONDA_ENV_FILE, PYTHON_ENV_FILE
    from .models._flavor import begin_model, finish_model

    if serialization_format not in SUPPORTED_SERIALIZATION_FORMATS:
        raise InvalidParameterValue(
            f"Unknown serialization_format {serialization_format!r}; use one of {SUPPORTED_SERIALIZATION_FORMATS}")
    if pyfunc_predict_fn not in ("predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba", "score"):
        raise InvalidParameterValue(
            f"pyfunc_predict_fn must be predict, predict_proba, predict_log_proba, predict_joint_log_proba or "
            f"score, got {pyfunc_predict_fn!r}")
    path, code, model = begin_model(path, code_paths, mlflow_model, input_example, signature, metadata,
                                    _SklearnModelWrapper(sk_model))
    data_file = _SKOPS_FILE if serialization_format == SERIALIZATION_FORMAT_SKOPS else _PICKLE_FILE
    _dump(sk_model, os.path.join(path, data_file), serialization_format, skops_trusted_types)
    if hasattr(sk_model, pyfunc_predict_fn):
        pyfunc.add_to_model(model, loader_module="mlflow.sklearn", model_path=data_file, conda_env=CONDA_ENV_FILE,
                            python_env=PYTHON_ENV_FILE, code=code, predict_fn=pyfunc_predict_fn)
    model.add_flavor(FLAVOR_NAME, pickled_model=data_file, sklearn_version=sklearn.__version__,
                     serialization_format=serialization_format, code=code, skops_trusted_types=skops_trusted_types)
    finish_model(model, path, get_default_pip_requirements(
        serialization_format == SERIALIZATION_FORMAT_CLOUDPICKLE, serialization_format == SERIALIZATION_FORMAT_SKOPS),
        conda_env, pip_requirements, extra_pip_requirements)


def log_model(sk_model: Any, artifact_path: str | None = None, conda_env: Any = None,
              code_paths: list[str] | None = None, serialization_format: str = SERIALIZATION_FORMAT_CLOUDPICKLE,
              registered_model_name: str | None = None, signature: Any = None, input_example: Any = None,
              pip_requirements: Any = None, extra_pip_requirements: Any = None, pyfunc_predict_fn: str = "predict",
              metadata: dict[str, Any] | None = None, name: str | None = None,
              skops_trusted_types: list[str] | None = None, **kwargs: Any) -> ModelInfo:
    """Log a scikit-learn model to the active run (``name=`` or the older ``artifact_path=``).

    >>> info = gitexp.sklearn.log_model(model, name="model", input_example=X_val[:5])
    >>> gitexp.sklearn.load_model(info.model_uri)
    """
    from .models._flavor import log_model as _log

    return _log(save_model, artifact_path, name, registered_model_name, kwargs, sk_model=sk_model,
                conda_env=conda_env, code_paths=code_paths, serialization_format=serialization_format,
                signature=signature, input_example=input_example, pip_requirements=pip_requirements,
                extra_pip_requirements=extra_pip_requirements, pyfunc_predict_fn=pyfunc_predict_fn,
                metadata=metadata, skops_trusted_types=skops_trusted_types)


def _load_file(path: str, serialization_format: str, skops_trusted_types: list[str] | None = None) -> Any:
    from .models._flavor import check_deserialization_allowed

    if serialization_format not in SUPPORTED_SERIALIZATION_FORMATS:
        raise InvalidParameterValue(f"Unknown sklearn serialization_format {serialization_format!r} in MLmodel")
    check_deserialization_allowed(path)
    if serialization_format == SERIALIZATION_FORMAT_SKOPS:
        import skops.io

        return skops.io.load(path, trusted=skops_trusted_types)
    with open(path, "rb") as fh:
        if serialization_format == SERIALIZATION_FORMAT_CLOUDPICKLE:
            import cloudpickle

            return cloudpickle.load(fh)
        return pickle.load(fh)  # unpickling is documented: models run their author's code


def load_model(model_uri: str | os.PathLike[str], dst_path: str | None = None) -> Any:
    """Load a scikit-learn model from ``runs:/<run_id>/<name>``, a local path (or ``models:/``)."""
    from .models._flavor import add_code_to_sys_path, flavor_conf
    from .models._resolve import resolve_model_uri

    local = resolve_model_uri(model_uri, dst_path)
    conf = flavor_conf(local, FLAVOR_NAME)
    add_code_to_sys_path(local, conf)
    return _load_file(os.path.join(local, conf["pickled_model"]), conf.get("serialization_format", "pickle"),
                      conf.get("skops_trusted_types"))


def _load_pyfunc(path: str) -> _SklearnModelWrapper:
    """Called by gitexp.pyfunc.load_model: `path` is the model directory or its model file."""
    from .models._flavor import flavor_conf

    model_dir = os.path.dirname(path) if os.path.isfile(path) else path
    conf = flavor_conf(model_dir, FLAVOR_NAME)
    if not os.path.isfile(path):
        pyfunc_conf = flavor_conf(model_dir, "python_function")
        path = os.path.join(model_dir, pyfunc_conf.get("model_path", conf["pickled_model"]))
    return _SklearnModelWrapper(_load_file(path, conf.get("serialization_format", "pickle"),
                                           conf.get("skops_trusted_types")))


__all__ = ["FLAVOR_NAME", "SERIALIZATION_FORMAT_CLOUDPICKLE", "SERIALIZATION_FORMAT_PICKLE",
           "SERIALIZATION_FORMAT_SKOPS", "SUPPORTED_SERIALIZATION_FORMATS", "get_default_pip_requirements",
           "load_model", "log_model", "save_model"]


# Autologging lives with the other integrations; it logs models through this module, which
# hands itself over (the integration never imports it: no import cycle).
from ._autolog import sklearn as _integration  # noqa: E402

_integration.use_flavor(sys.modules[__name__])
autolog = _integration.autolog

__all__ += ["autolog"]
