"""XGBoost autologging: ``gitexp.xgboost.autolog()`` (MLflow's ``mlflow.xgboost.autolog``).

``xgboost.train`` (and the scikit-learn API's fit: XGBRegressor, XGBClassifier...)
log, to the active run or to a run they start: the booster params and train()'s
other arguments, every evaluation metric at every iteration (``validation-rmse``
at step i), ``best_iteration``/``stopped_iteration`` and the metrics of the best
iteration (one step after the last) under early stopping, feature importance as
``feature_importance_<type>.json`` and ``.png``, the datasets, and the model
(a Booster from train(), the estimator's own class from fit()).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable
from copy import deepcopy
from typing import Any

from ..exceptions import InvalidParameterValue
from ._config import INPUT_EXAMPLE_SAMPLE_ROWS, check_extra_tags, get_config
from ._helpers import (
    FlavorHandle,
    active_run_id,
    dataset_input,
    make_dataset,
    resolve_input_example_and_signature,
    tracking_client,
)
from ._patching import integration, safe_patch
from ._sessions import TrainingSession

_log = logging.getLogger("gitexp.autolog")

# The flavor module that saves the models (log_model, serialization formats): see FlavorHandle.
_flavor = FlavorHandle("gitexp.xgboost.autolog()")
use_flavor = _flavor.use
_the_flavor = _flavor.get

FLAVOR_NAME = "xgboost"
IMPORTANCE_TYPES = ("weight", "gain", "cover", "total_gain", "total_cover")
_MODEL_FORMATS = ("ubj", "json", "xgb")
# train() arguments that are data or code, not hyperparameters (as MLflow leaves them out).
_UNLOGGED_TRAIN_ARGS = ("params", "dtrain", "evals", "obj", "feval", "evals_result", "xgb_model", "callbacks",
                        "learning_rates")
_EXAMPLE_ATTR = "_gitexp_input_example"


@integration(FLAVOR_NAME)
def autolog(importance_types: list[str] | None = None, log_input_examples: bool = False,
            log_model_signatures: bool = True, log_models: bool = True, log_datasets: bool = True,
            disable: bool = False, exclusive: bool = False, disable_for_unsupported_versions: bool = False,
            silent: bool = False, registered_model_name: str | None = None, model_format: str = "ubj",
            extra_tags: dict[str, str] | None = None) -> None:
    """Enable (or disable) and configure autologging of XGBoost training.

    ``importance_types`` (default ``["weight"]``) are the feature importance
    kinds logged as JSON and a plot; ``model_format`` is the file format of the
    logged model ("ubj", "json" or "xgb").  The other arguments are those of
    ``gitexp.sklearn.autolog``.  XGBoost's scikit-learn estimators are covered
    too (the model is logged as its own class).

    >>> gitexp.xgboost.autolog()
    >>> booster = xgb.train(params, dtrain, 1000, evals=[(dvalid, "validation")], early_stopping_rounds=50)
    """
    import xgboost

    from .sklearn import patch_sklearn

    types = ["weight"] if importance_types is None else importance_types
    if isinstance(types, str) or not all(t in IMPORTANCE_TYPES for t in types):
        raise InvalidParameterValue(
            f"importance_types must be a list drawn from {list(IMPORTANCE_TYPES)}, got {importance_types!r}")
    if model_format not in _MODEL_FORMATS:
        raise InvalidParameterValue(f"Unknown model_format {model_format!r}; use one of {list(_MODEL_FORMATS)}")
    tags = check_extra_tags(extra_tags)
    settings = dict(importance_types=list(types), log_input_examples=log_input_examples,
                    log_model_signatures=log_model_signatures, log_models=log_models, log_datasets=log_datasets,
                    model_format=model_format, max_tuning_runs=None, log_post_training_metrics=True)

    safe_patch(FLAVOR_NAME, xgboost, "train", functools.partial(_train, settings, log_models),
               manage_run=True, extra_tags=tags)
    # fit() of the scikit-learn API logs the model itself, as its own class.
    safe_patch(FLAVOR_NAME, xgboost.sklearn, "train", functools.partial(_train, settings, False),
               manage_run=True, extra_tags=tags)
    safe_patch(FLAVOR_NAME, xgboost.DMatrix, "__init__", _dmatrix_init)
    patch_sklearn(FLAVOR_NAME, _sklearn_estimators(), _fit_sklearn_api, allow_children=True, settings=settings,
                  extra_tags=tags)


def _sklearn_estimators() -> list[type]:
    import xgboost.sklearn

    return [cls for _, cls in inspect.getmembers(xgboost.sklearn, inspect.isclass)
            if issubclass(cls, xgboost.sklearn.XGBModel) and cls is not xgboost.sklearn.XGBModel]


def _dmatrix_init(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    """Keep the first rows of the data a DMatrix is built from: DMatrix cannot give them back."""
    data = args[0] if args else kwargs.get("data")
    if data is not None:
        try:
            if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):
                raise ValueError("the DMatrix was loaded from a file, which has no rows to sample")
            example: Any = ("ok", deepcopy(data[:INPUT_EXAMPLE_SAMPLE_ROWS]))
        except Exception as exc:
            example = ("error", str(exc))
        try:
            setattr(self, _EXAMPLE_ATTR, example)
        except Exception:
            pass
    return original(self, *args, **kwargs)


def _train(settings: dict[str, Any], log_models: bool, original: Callable[..., Any], *args: Any,
           **kwargs: Any) -> Any:
    session = TrainingSession.current()
    if session is not None and not session.should_log():
        return original(*args, **kwargs)
    return _train_and_log(settings, log_models, original, args, kwargs)


def _train_and_log(settings: dict[str, Any], log_models: bool, original: Callable[..., Any], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
    from .sklearn import log_metrics, log_params

    client = tracking_client()
    run_id = active_run_id()
    signature = inspect.signature(original)
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    call = dict(bound.arguments)
    params = call.get("params") or {}
    log_params(client, run_id, dict(params.items()) if hasattr(params, "items") else dict(params))
    log_params(client, run_id, {k: v for k, v in call.items() if k not in _UNLOGGED_TRAIN_ARGS})

    dtrain = call.get("dtrain")
    evals = list(call.get("evals") or [])
    if settings["log_datasets"] and dtrain is not None:
        _log_datasets(client, run_id, dtrain, evals)

    history: list[dict[str, float]] = []
    callbacks = list(call.get("callbacks") or [])
    callbacks.append(_callback(client, run_id, history))
    # Call with the user's own arguments, plus our callback (a new list: theirs is left as it was).
    if "callbacks" in kwargs or len(args) <= list(signature.parameters).index("callbacks"):
        kwargs = {**kwargs, "callbacks": callbacks}
    else:
        index = list(signature.parameters).index("callbacks")
        args = args[:index] + (callbacks,) + args[index + 1:]
    model = original(*args, **kwargs)

    if log_models:
        _log_booster(model, dtrain, settings)
    if call.get("early_stopping_rounds") and history:
        best = getattr(model, "best_iteration", None)
        log_metrics(client, run_id, {"stopped_iteration": len(history) - 1,
                                     **({"best_iteration": best} if best is not None else {})})
        if best is not None and 0 <= best < len(history):
            log_metrics(client, run_id, history[best], step=len(history))
    _log_feature_importance(client, run_id, model, settings["importance_types"])
    return model


def _callback(client: Any, run_id: str, history: list[dict[str, float]]) -> Any:
    import xgboost

    from ..entities import Metric
    from ..store.layout import now_ms

    class _AutologCallback(xgboost.callback.TrainingCallback):
        """Logs each evaluation metric at each iteration as <data name>-<metric> at step = iteration."""

        def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
            try:
                values = {}
                for data_name, per_metric in evals_log.items():
                    for metric_name, series in per_metric.items():
                        value = series[-1]
                        value = value[0] if isinstance(value, tuple) else value  # (mean, std) under cv
                        values[f"{data_name}-{metric_name.replace('@', '_at_')}"] = float(value)
                history.append(values)
                if values:
                    now = now_ms()
                    client.log_batch(run_id, metrics=[Metric(k, v, now, epoch) for k, v in values.items()])
            except Exception as exc:  # never stop training because a metric could not be logged
                _log.warning("gitexp: iteration %d metrics are not logged: %s", epoch, exc)
            return False

    return _AutologCallback()


def _log_datasets(client: Any, run_id: str, dtrain: Any, evals: list[Any]) -> None:
    try:
        inputs = []
        dataset = make_dataset(dtrain.get_data())
        if dataset is not None:
            inputs.append(dataset_input(dataset, "train"))
        for data, name in evals:
            dataset = make_dataset(data.get_data(), name=name)
            if dataset is not None:
                inputs.append(dataset_input(dataset, "eval"))
        if inputs:
            client.log_inputs(run_id, inputs)
    except Exception as exc:
        _log.warning("gitexp: could not record the datasets of the run: %s", exc)


def _log_booster(model: Any, dtrain: Any, settings: dict[str, Any]) -> None:
    import xgboost

    from ..models import infer_signature

    def get_example() -> Any:
        kept = getattr(dtrain, _EXAMPLE_ATTR, None)
        if kept is None:
            raise ValueError("please ensure that autologging is enabled before constructing the dataset "
                             "(the DMatrix was built before gitexp.xgboost.autolog() was called)")
        if kept[0] == "error":
            raise ValueError(kept[1])
        return kept[1]

    def infer(example: Any) -> Any:
        return infer_signature(example, model.predict(xgboost.DMatrix(example)))

    example, signature = resolve_input_example_and_signature(
        get_example, infer, settings["log_input_examples"], settings["log_model_signatures"])
    _the_flavor().log_model(model, name="model", signature=signature, input_example=example,
                     model_format=settings["model_format"],
                     registered_model_name=get_config(FLAVOR_NAME, "registered_model_name"))


def _fit_sklearn_api(original: Callable[..., Any], estimator: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                     settings: dict[str, Any], flavor: str) -> Any:
    """fit() of XGBRegressor & co.: train() (patched) logs the rest; the model is logged here as its class."""
    from ..models import infer_signature
    from .sklearn import METRICS, fit_data

    try:
        X = fit_data(estimator.fit, args, kwargs)[0]
        example_rows: Any = ("ok", deepcopy(X[:INPUT_EXAMPLE_SAMPLE_ROWS]))
    except Exception as exc:
        example_rows = ("error", str(exc))
    result = original(estimator, *args, **kwargs)
    if settings["log_models"]:
        def get_example() -> Any:
            if example_rows[0] == "error":
                raise ValueError(example_rows[1])
            return example_rows[1]

        def infer(example: Any) -> Any:
            return infer_signature(example, estimator.predict(deepcopy(example)))

        with METRICS.disabled():
            example, signature = resolve_input_example_and_signature(
                get_example, infer, settings["log_input_examples"], settings["log_model_signatures"])
        _the_flavor().log_model(estimator, name="model", signature=signature, input_example=example,
                             model_format=settings["model_format"],
                             registered_model_name=get_config(FLAVOR_NAME, "registered_model_name"))
    return result


def _log_feature_importance(client: Any, run_id: str, model: Any, importance_types: list[str]) -> None:
    for kind in importance_types:
        try:
            importance = model.get_score(importance_type=kind)
        except Exception as exc:
            _log.warning("gitexp: feature importance %r is not logged: %s", kind, exc)
            continue
        client.log_text(run_id, json.dumps(importance), f"feature_importance_{kind}.json")
        if importance:
            try:
                client.log_figure(run_id, _importance_figure(importance, kind), f"feature_importance_{kind}.png")
            except ImportError:
                _log.info("gitexp: matplotlib is not installed; the feature importance plot is not logged")
            except Exception as exc:
                _log.warning("gitexp: the feature importance plot %r is not logged: %s", kind, exc)


def _importance_figure(importance: dict[str, Any], kind: str) -> Any:
    """A horizontal bar chart of importance per feature (per class when values are lists), largest on top."""
    import numpy as np
    from matplotlib.figure import Figure

    features = np.array(list(importance))
    values = np.array([np.atleast_1d(v) for v in importance.values()], dtype=float)
    order = np.argsort(np.abs(values).sum(axis=1))
    features, values = features[order], values[order]
    n_features, n_classes = values.shape
    height = 4.8 + (0.1 * n_features if n_features > 10 else 0) + (0.1 * n_classes if n_classes > 1 else 0)
    figure = Figure(figsize=(6.4, height))
    ax = figure.subplots()
    y = np.arange(n_features)
    offsets = np.linspace(-0.25, 0.25, n_classes) if n_classes > 1 else np.zeros(1)
    bar_height = 0.5 / max(n_classes - 1, 1)
    for c in range(n_classes):
        ax.barh(y + offsets[c], values[:, c], height=bar_height, align="center",
                label=f"Class {c}" if n_classes > 1 else None)
    ax.set_yticks(y)
    ax.set_yticklabels(features)
    ax.set_xlabel("Importance")
    ax.set_title(f"Feature Importance ({kind})")
    if n_classes > 1:
        ax.legend()
    figure.tight_layout()
    return figure


__all__ = ["autolog"]
