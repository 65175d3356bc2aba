"""scikit-learn autologging: ``gitexp.sklearn.autolog()`` (MLflow's ``mlflow.sklearn.autolog``).

A ``fit`` (``fit_transform``, ``fit_predict``) of an estimator logs, to the
active run or to a run it starts: the estimator's parameters, the tags
``estimator_name``/``estimator_class``, training metrics (``training_score``,
``training_accuracy_score``, ``training_root_mean_squared_error``...), the
fitted model, ``estimator.html`` and, for classifiers, plots.  A parameter
search (GridSearchCV, RandomizedSearchCV) also logs ``best_*`` params,
``best_cv_score``, ``cv_results.csv``, the best estimator, and a child run per
candidate (the best ``max_tuning_runs``).  Afterwards, ``sklearn.metrics``
calls on that model's predictions log "post-training" metrics named like
``accuracy_score_X_test``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
import weakref
from collections.abc import Callable
from copy import deepcopy
from typing import TYPE_CHECKING, Any

from ..exceptions import InvalidParameterValue
from ._config import AUTOLOGGING_TAG, INPUT_EXAMPLE_SAMPLE_ROWS, check_extra_tags, get_config
from ._helpers import (
    FlavorHandle,
    active_run_id,
    dataset_input,
    inspect_var_name,
    is_metric_value,
    make_dataset,
    resolve_input_example_and_signature,
    tracking_client,
    truncated,
)
from ._patching import integration, run_without_autologging, safe_patch
from ._sessions import TrainingSession

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

_log = logging.getLogger("gitexp.autolog")

# The flavor module that saves the models (log_model, serialization formats): see FlavorHandle.
_flavor = FlavorHandle("gitexp.sklearn.autolog()")
use_flavor = _flavor.use
_the_flavor = _flavor.get

FLAVOR_NAME = "sklearn"
TRAINING_PREFIX = "training_"
_EXCLUDED_MODULES = ("sklearn.preprocessing", "sklearn.impute", "sklearn.feature_extraction",
                     "sklearn.feature_selection")
_EXCLUDED_CLASSES = ("sklearn.compose._column_transformer.ColumnTransformer",)
# Calls that fit estimators many times over: no runs for those fits (as MLflow).
_APIS_WITHOUT_AUTOLOGGING = ("cross_validate", "cross_val_predict", "cross_val_score", "learning_curve",
                             "permutation_test_score", "validation_curve")
_NOT_METRICS = ("check_scoring", "get_scorer", "make_scorer", "get_scorer_names")


@integration(FLAVOR_NAME)
def autolog(log_input_examples: bool = False, log_model_signatures: bool = True, log_models: bool = True,
            log_datasets: bool = True, disable: bool = False, exclusive: bool = False,
            disable_for_unsupported_versions: bool = False, silent: bool = False, max_tuning_runs: int | None = 5,
            log_post_training_metrics: bool = True, serialization_format: str = "cloudpickle",
            registered_model_name: str | None = None, pos_label: Any = None,
            extra_tags: dict[str, str] | None = None) -> None:
    """Enable (or disable) and configure autologging of scikit-learn training.

    Arguments are MLflow's: ``log_models`` (the fitted estimator as an MLflow
    model named ``model``), ``log_input_examples`` / ``log_model_signatures``
    (stored with the model), ``log_datasets`` (training and evaluation data as
    run inputs), ``disable``, ``exclusive`` (do not log into runs you started),
    ``silent`` (no warnings or log messages from autologging),
    ``max_tuning_runs`` (child runs for the best k candidates of a parameter
    search; None for all), ``log_post_training_metrics``,
    ``serialization_format``, ``registered_model_name`` (register every logged
    model), ``pos_label`` (binary training metrics) and ``extra_tags`` (tags of
    the runs autologging starts).

    >>> gitexp.sklearn.autolog()
    >>> model = RandomForestClassifier().fit(X_train, y_train)   # one run, fully logged
    >>> accuracy_score(y_test, model.predict(X_test))             # + metric accuracy_score_X_test
    """
    formats = _the_flavor().SUPPORTED_SERIALIZATION_FORMATS
    if max_tuning_runs is not None and (not isinstance(max_tuning_runs, int) or max_tuning_runs < 0):
        raise InvalidParameterValue(
            f"max_tuning_runs must be a non-negative integer or None (a child run for every candidate), "
            f"got {max_tuning_runs!r}")
    if serialization_format not in formats:
        raise InvalidParameterValue(f"Unknown serialization_format {serialization_format!r}; use one of {formats}")
    tags = check_extra_tags(extra_tags)
    patch_sklearn(FLAVOR_NAME, _estimators_to_patch(), _fit_sklearn, allow_children=False,
                  settings=dict(log_input_examples=log_input_examples, log_model_signatures=log_model_signatures,
                                log_models=log_models, log_datasets=log_datasets, max_tuning_runs=max_tuning_runs,
                                log_post_training_metrics=log_post_training_metrics,
                                serialization_format=serialization_format, pos_label=pos_label),
                  extra_tags=tags)


def _estimators_to_patch() -> list[type]:
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.utils import all_estimators

    classes = {cls for _, cls in all_estimators()} | {GridSearchCV, RandomizedSearchCV, Pipeline}
    return sorted((cls for cls in classes
                   if not cls.__module__.startswith(_EXCLUDED_MODULES)
                   and f"{cls.__module__}.{cls.__name__}" not in _EXCLUDED_CLASSES),
                  key=lambda c: (c.__module__, c.__name__))


def is_parameter_search(estimator: Any) -> bool:
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    return isinstance(estimator, (GridSearchCV, RandomizedSearchCV))


def estimator_tags(estimator: Any) -> dict[str, str]:
    cls = type(estimator)
    return {"estimator_name": cls.__name__, "estimator_class": f"{cls.__module__}.{cls.__name__}"}


# -- patching ------------------------------------------------------------------------------------------
def patch_sklearn(flavor: str, estimators: list[type], fit_impl: Callable[..., Any], allow_children: bool,
                  settings: dict[str, Any], extra_tags: dict[str, str]) -> None:
    """Patch the estimators' fit/predict/score methods and sklearn.metrics for `flavor`.

    The xgboost flavor calls this for XGBoost's scikit-learn estimators, with its own fit_impl.
    """
    import sklearn.metrics
    import sklearn.model_selection

    post_training = settings.get("log_post_training_metrics", True)

    def patched_fit(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
        log_post = post_training and METRICS.should_log()
        with TrainingSession(self, allow_children=allow_children) as session:
            if not session.should_log():
                return original(self, *args, **kwargs)
            with METRICS.disabled():
                result = fit_impl(original, self, args, kwargs, settings, flavor)
            if log_post:
                METRICS.register_model(self, active_run_id())
            return result

    def patched_predict(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
        run_id = METRICS.run_for_model(self)
        if not (run_id and METRICS.should_log()):
            return original(self, *args, **kwargs)
        with METRICS.disabled():
            result = original(self, *args, **kwargs)
        data = _first_arg(original, args, kwargs)
        name = METRICS.dataset_name(run_id, data)
        METRICS.register_prediction(result, run_id, name)
        if settings.get("log_datasets", True):
            _log_eval_dataset(run_id, data)
        return result

    def patched_score(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
        run_id = METRICS.run_for_model(self)
        if not (run_id and METRICS.should_log()):
            return original(self, *args, **kwargs)
        with METRICS.disabled():
            value = original(self, *args, **kwargs)
        if is_metric_value(value):
            command = _call_command(self, original, args, kwargs)
            data = _first_arg(original, args, kwargs)
            name = METRICS.dataset_name(run_id, data)
            METRICS.log(run_id, f"{type(self).__name__}_score", name, command, value)
        return value

    for cls in estimators:
        for name in ("fit", "fit_transform", "fit_predict"):
            safe_patch(flavor, cls, name, patched_fit, manage_run=True, extra_tags=extra_tags)
        for name in ("predict", "predict_proba", "transform", "predict_log_proba"):
            safe_patch(flavor, cls, name, patched_predict)
        safe_patch(flavor, cls, "score", patched_score)

    if post_training:
        for name in _metric_api_names():
            safe_patch(flavor, sklearn.metrics, name, _patched_metric_api)

    for name in _APIS_WITHOUT_AUTOLOGGING:
        fn = getattr(sklearn.model_selection, name, None)
        if fn is not None:
            run_without_autologging(_original(fn))


def _metric_api_names() -> list[str]:
    import sklearn.metrics

    names = []
    for name in sklearn.metrics.__all__:
        fn = getattr(sklearn.metrics, name, None)
        if (name not in _NOT_METRICS and not name.startswith("plot_") and callable(fn)
                and not inspect.isclass(fn)):
            names.append(name)
    return names


def _first_arg(method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The first argument after self (the data of predict/score), positional or by keyword."""
    if args:
        return args[0]
    try:
        params = list(inspect.signature(method).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            return kwargs.get(p.name)
    return None


# -- training --------------------------------------------------------------------------------------------
def fit_data(fit: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(X, y, sample_weight) of a fit call, copied so training cannot change what is logged."""
    try:
        names = [p.name for p in inspect.signature(fit).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):
        names = ["X", "y"]
    if names and names[0] == "self":
        names = names[1:]
    x_name, y_name = (names + ["X", "y"])[:2]
    if len(args) >= 2:
        X, y = args[0], args[1]
    elif len(args) == 1:
        X, y = args[0], kwargs.get(y_name)
    else:
        X, y = kwargs.get(x_name), kwargs.get(y_name)
    sample_weight = None
    if "sample_weight" in names:
        index = names.index("sample_weight")
        sample_weight = args[index] if len(args) > index else kwargs.get("sample_weight")
    return _copy(X), _copy(y), sample_weight


def _copy(value: Any) -> Any:
    if value is None:
        return None
    try:
        return deepcopy(value)
    except Exception:
        return value


def _fit_sklearn(original: Callable[..., Any], estimator: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                 settings: dict[str, Any], flavor: str) -> Any:
    X, y, sample_weight = fit_data(estimator.fit, args, kwargs)
    run_id = active_run_id()
    client = tracking_client()
    log_params(client, run_id, estimator.get_params(deep=not is_parameter_search(estimator)))
    client.log_batch(run_id, tags=_tags(estimator_tags(estimator)))
    dataset = None
    if settings["log_datasets"]:
        try:
            dataset = make_dataset(X, y)
            if dataset is not None:
                client.log_inputs(run_id, [dataset_input(dataset, "train")])
        except Exception as exc:
            _log.warning("gitexp: could not record the training dataset of the run: %s", exc)

    result = original(estimator, *args, **kwargs)

    example, signature = None, None
    if settings["log_models"]:
        example, signature = _example_and_signature(estimator, X, settings)
        _log_model(estimator, "model", example, signature, settings, register=True)
    metrics = log_estimator_content(client, run_id, estimator, TRAINING_PREFIX, X, y, sample_weight,
                                    settings.get("pos_label"))
    if y is None and not metrics:
        _log.warning("gitexp: training metrics are not recorded because fit() was given no labels (y)")
    if is_parameter_search(estimator):
        _log_parameter_search(client, run_id, estimator, example, signature, settings, flavor)
    return result


def _tags(tags: dict[str, str]) -> list[Any]:
    from .._validation import MAX_TAG_VAL_LENGTH
    from ..entities import RunTag

    return [RunTag(k, v) for k, v in truncated("tag", tags, MAX_TAG_VAL_LENGTH).items()]


def log_params(client: Any, run_id: str, params: dict[str, Any]) -> None:
    """Log params, skipping (with a warning) those the run already has with another value."""
    from .._validation import MAX_PARAM_VAL_LENGTH
    from ..entities import Param

    values = truncated("param", params, MAX_PARAM_VAL_LENGTH)
    existing = client.get_run(run_id).data.params
    clashes = sorted(k for k, v in values.items() if k in existing and existing[k] != v)
    if clashes:
        _log.warning("gitexp: run %s already has the params %s with other values; autologging keeps the old "
                     "values (train each model in its own run to record both)", run_id, clashes)
    new = [Param(k, v) for k, v in values.items() if k not in existing]
    for start in range(0, len(new), 100):
        client.log_batch(run_id, params=new[start:start + 100])


def _example_and_signature(estimator: Any, X: Any, settings: dict[str, Any]) -> tuple[Any, Any]:
    from ..models import infer_signature

    def get_example() -> Any:
        if X is None:
            raise ValueError("fit() was given no X")
        return deepcopy(X[:INPUT_EXAMPLE_SAMPLE_ROWS])

    def infer(example: Any) -> Any:
        if hasattr(estimator, "predict"):
            output = estimator.predict(deepcopy(example))
        elif hasattr(estimator, "transform"):
            output = estimator.transform(deepcopy(example))
        else:
            raise ValueError("the model has neither predict() nor transform() to infer a signature from")
        return infer_signature(example, output)

    with METRICS.disabled():
        return resolve_input_example_and_signature(get_example, infer, settings["log_input_examples"],
                                                   settings["log_model_signatures"])


def _log_model(estimator: Any, name: str, example: Any, signature: Any, settings: dict[str, Any],
               register: bool) -> None:
    from ..exceptions import ResourceAlreadyExists

    flavor = _the_flavor()
    registered = get_config(FLAVOR_NAME, "registered_model_name") if register else None
    try:
        flavor.log_model(estimator, name=name, signature=signature, input_example=example,
                         serialization_format=settings.get("serialization_format", "cloudpickle"),
                         registered_model_name=registered)
    except ResourceAlreadyExists as exc:
        _log.warning("gitexp: the model is not logged again: %s", exc)
    except InvalidParameterValue as exc:
        if "pickle" in str(exc).lower():
            _log.warning("gitexp: the model could not be serialized and is not logged: %s", exc)
        else:
            raise


# -- training metrics and artifacts ----------------------------------------------------------------------------
def _original(fn: Callable[..., Any]) -> Callable[..., Any]:
    while hasattr(fn, "__gitexp_autolog_original__"):
        fn = fn.__gitexp_autolog_original__
    return fn


def _metric(name: str) -> Callable[..., Any]:
    import sklearn.metrics

    return _original(getattr(sklearn.metrics, name))


def _compute(values: dict[str, Any], key: str, fn: Callable[[], Any]) -> None:
    try:
        values[key] = fn()
    except Exception as exc:
        _log.warning("gitexp: the metric %s could not be computed and is not recorded: %s", key, exc)


def classifier_metrics(estimator: Any, prefix: str, X: Any, y: Any, sample_weight: Any,
                       pos_label: Any) -> dict[str, Any]:
    average = "weighted" if pos_label is None else "binary"
    y_pred = estimator.predict(X)
    values: dict[str, Any] = {}
    for name in ("precision_score", "recall_score", "f1_score"):
        fn = _metric(name)
        _compute(values, prefix + name, functools.partial(fn, y, y_pred, pos_label=pos_label, average=average,
                                                          sample_weight=sample_weight))
    _compute(values, prefix + "accuracy_score",
             lambda: _metric("accuracy_score")(y, y_pred, normalize=True, sample_weight=sample_weight))
    if hasattr(estimator, "predict_proba"):
        try:
            proba = estimator.predict_proba(X)
        except Exception as exc:
            _log.warning("gitexp: predict_proba failed; log loss and ROC AUC are not recorded: %s", exc)
            return values
        # Positional y_true/y_score: the keyword names changed across scikit-learn versions.
        _compute(values, prefix + "log_loss", lambda: _metric("log_loss")(y, proba, sample_weight=sample_weight))
        scores = proba[:, 1] if len(proba.shape) == 2 and proba.shape[1] == 2 else proba
        _compute(values, prefix + "roc_auc",
                 lambda: _metric("roc_auc_score")(y, scores, average="weighted", sample_weight=sample_weight,
                                                  multi_class="ovo"))
    return values


def regressor_metrics(estimator: Any, prefix: str, X: Any, y: Any, sample_weight: Any) -> dict[str, Any]:
    y_pred = estimator.predict(X)
    values: dict[str, Any] = {}
    for name in ("mean_squared_error", "mean_absolute_error", "r2_score"):
        fn = _metric(name)
        _compute(values, prefix + name, functools.partial(fn, y, y_pred, sample_weight=sample_weight,
                                                          multioutput="uniform_average"))
    mse = values.get(prefix + "mean_squared_error")
    if mse is not None:
        values[prefix + "root_mean_squared_error"] = math.sqrt(float(mse))
    return values


def log_estimator_content(client: Any, run_id: str, estimator: Any, prefix: str, X: Any, y: Any,
                          sample_weight: Any = None, pos_label: Any = None) -> dict[str, Any]:
    """Training metrics, score, classifier plots and estimator.html of a fitted estimator."""
    import sklearn.base

    metrics: dict[str, Any] = {}
    with METRICS.disabled():
        if y is not None:
            try:
                if sklearn.base.is_classifier(estimator):
                    metrics = classifier_metrics(estimator, prefix, X, y, sample_weight, pos_label)
                elif sklearn.base.is_regressor(estimator):
                    metrics = regressor_metrics(estimator, prefix, X, y, sample_weight)
            except Exception as exc:
                _log.warning("gitexp: training metrics of %s are not recorded: %s", type(estimator).__name__, exc)
            log_metrics(client, run_id, metrics)
        if sklearn.base.is_classifier(estimator) and y is not None:
            _log_classifier_plots(client, run_id, estimator, prefix, X, y, sample_weight)
        if hasattr(estimator, "score") and y is not None:
            try:
                names = inspect.signature(estimator.score).parameters
                score = (estimator.score(X, y, sample_weight) if "sample_weight" in names
                         else estimator.score(X, y))
            except Exception as exc:
                _log.warning("gitexp: %s.score failed; the metric %sscore is not recorded: %s",
                             type(estimator).__name__, prefix, exc)
            else:
                log_metrics(client, run_id, {prefix + "score": score})
                metrics[prefix + "score"] = score
    _log_estimator_html(client, run_id, estimator)
    return metrics


def log_metrics(client: Any, run_id: str, metrics: dict[str, Any], step: int = 0) -> None:
    from ..entities import Metric
    from ..store.layout import now_ms

    now = now_ms()
    batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if is_metric_value(v)]
    for start in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[start:start + 1000])


def _log_classifier_plots(client: Any, run_id: str, estimator: Any, prefix: str, X: Any, y: Any,
                          sample_weight: Any) -> None:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        _log.info("gitexp: matplotlib is not installed; classifier plots are not logged")
        return
    import numpy as np
    import sklearn.metrics as skm

    classes = getattr(estimator, "classes_", None)
    n_classes = len(classes) if classes is not None else len(set(np.asarray(y).ravel().tolist()))
    plots: list[tuple[str, str, Callable[..., Any], dict[str, Any]]] = [
        ("confusion_matrix", "Normalized confusion matrix", skm.ConfusionMatrixDisplay.from_estimator,
         dict(normalize="true", cmap="Blues")),
    ]
    if len(set(np.asarray(y).ravel().tolist())) == 2:
        plots += [("roc_curve", "ROC curve", skm.RocCurveDisplay.from_estimator, {}),
                  ("precision_recall_curve", "Precision recall curve", skm.PrecisionRecallDisplay.from_estimator,
                   {})]
    for name, title, draw, extra in plots:
        try:
            style: dict[RcKeyType, Any] = {"savefig.dpi": 175, "figure.autolayout": True, "font.size": 8}
            if name == "confusion_matrix":
                style["font.size"] = min(8.0, 50.0 / max(n_classes, 1))
            with matplotlib.rc_context(style):
                figure = Figure(figsize=(6.0, 4.0))
                ax = figure.subplots()
                display = draw(estimator, X, y, sample_weight=sample_weight, ax=ax, **extra)
                display.ax_.set_title(title)
                client.log_figure(run_id, figure, f"{prefix}{name}.png")
        except Exception as exc:
            _log.warning("gitexp: the plot %s%s is not logged: %s", prefix, name, exc)


def _log_estimator_html(client: Any, run_id: str, estimator: Any) -> None:
    try:
        from sklearn.utils import estimator_html_repr

        html = ('<!DOCTYPE html>\n<html lang="en">\n  <head>\n    <meta charset="UTF-8"/>\n  </head>\n  <body>\n'
                f"    {estimator_html_repr(estimator)}\n  </body>\n</html>\n")
        client.log_text(run_id, html, "estimator.html")
    except Exception as exc:
        _log.warning("gitexp: estimator.html is not logged: %s", exc)


# -- parameter search ----------------------------------------------------------------------------------------
def _log_parameter_search(client: Any, run_id: str, search: Any, example: Any, signature: Any,
                          settings: dict[str, Any], flavor: str) -> None:
    import pandas as pd

    if hasattr(search, "best_estimator_") and settings["log_models"]:
        _log_model(search.best_estimator_, "best_estimator", example, signature, settings, register=False)
    if hasattr(search, "best_score_"):
        log_metrics(client, run_id, {"best_cv_score": search.best_score_})
    if hasattr(search, "best_params_"):
        log_params(client, run_id, {f"best_{k}": v for k, v in search.best_params_.items()})
    if not hasattr(search, "cv_results_"):
        return
    try:
        create_child_runs(client, run_id, search, settings["max_tuning_runs"], flavor)
    except Exception as exc:
        _log.warning("gitexp: child runs of the parameter search may be missing: %s", exc)
    try:
        csv = pd.DataFrame.from_dict(search.cv_results_).to_csv(index=False)
        client.log_text(run_id, csv, "cv_results.csv")
    except Exception as exc:
        _log.warning("gitexp: cv_results.csv is not logged: %s", exc)


def create_child_runs(client: Any, parent_run_id: str, search: Any, max_tuning_runs: int | None,
                      flavor: str) -> list[str]:
    """A finished child run per explored candidate (the best `max_tuning_runs`), as MLflow's autolog."""
    import numbers

    import pandas as pd

    from .._validation import MAX_PARAM_VAL_LENGTH
    from ..entities import Param
    from ..store.layout import now_ms

    parent = client.get_run(parent_run_id)
    seed = search.estimator
    base = seed.get_params(deep=not is_parameter_search(seed))
    results = pd.DataFrame.from_dict(search.cv_results_)
    if max_tuning_runs is not None:
        rank: str | None = "rank_test_score"
        if rank not in results.columns:
            rank = next((c for c in results.columns if c.startswith("rank_test_")), None)
            if rank is None:
                raise ValueError("cv_results_ has no rank_test_* column to choose the best candidates by")
            _log.warning("gitexp: the best %d child runs are chosen by %s (set max_tuning_runs=None for all)",
                         max_tuning_runs, rank)
        results = results.nsmallest(max_tuning_runs, rank)
        _log.info("gitexp: logging %d of %d candidates as child runs", len(results), len(search.cv_results_["params"]))
    inherited = {k: v for k, v in parent.data.tags.items()
                 if k.startswith("mlflow.source.") or k in ("mlflow.user", "mlflow.gitRepoURL")}
    start, end = parent.info.start_time, now_ms()
    dataset = next((i for i in parent.inputs.dataset_inputs
                    if any(t.key == "mlflow.data.context" and t.value == "train" for t in i.tags)), None)
    child_ids = []
    for _, row in results.iterrows():
        tags = {**inherited, AUTOLOGGING_TAG: flavor, "mlflow.parentRunId": parent_run_id, **estimator_tags(seed)}
        child = client.create_run(parent.info.experiment_id, start_time=start, tags=tags)
        child_id = child.info.run_id
        params = dict(base)
        params.update(row.get("params") or {})
        client.log_batch(child_id, params=[Param(k, v) for k, v in
                                           truncated("param", params, MAX_PARAM_VAL_LENGTH).items()])
        metrics = {k: v for k, v in row.items()
                   if not str(k).startswith(("param", "split")) and isinstance(v, numbers.Number)
                   and not isinstance(v, bool)}
        log_metrics(client, child_id, metrics)
        if dataset is not None:
            client.log_inputs(child_id, [dataset])
        client.set_terminated(child_id, "FINISHED", end_time=end)
        child_ids.append(child_id)
    return child_ids


# -- post-training metrics ---------------------------------------------------------------------------------
class PostTrainingMetrics:
    """Which run a fitted model, and a prediction made with it, belong to; naming of metric keys.

    Holds ids and names only (never the user's data or models), cleared when the
    objects they describe are garbage collected.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._enabled = True
        self._model_runs: dict[int, str] = {}
        self._predictions: dict[int, tuple[str, str]] = {}
        self._datasets: dict[str, dict[str, list[int]]] = {}
        self._calls: dict[str, dict[str, list[tuple[str, str]]]] = {}

    def should_log(self) -> bool:
        return self._enabled and not TrainingSession.is_active()

    def disabled(self) -> Any:
        manager = self

        class _Scope:
            def __enter__(self) -> None:
                self.old = manager._enabled
                manager._enabled = False

            def __exit__(self, *exc: Any) -> None:
                manager._enabled = self.old

        return _Scope()

    def register_model(self, model: Any, run_id: str) -> None:
        key = id(model)
        with self._lock:
            self._model_runs[key] = run_id
        _forget_when_collected(model, self._model_runs, key)

    def run_for_model(self, model: Any) -> str | None:
        return self._model_runs.get(id(model))

    def dataset_name(self, run_id: str, data: Any) -> str:
        """The variable name of the data (X_test), suffixed -2, -3... for other objects of that name."""
        name = inspect_var_name(data, "unknown_dataset")
        with self._lock:
            ids = self._datasets.setdefault(run_id, {}).setdefault(name, [])
            if id(data) not in ids:
                ids.append(id(data))
            index = ids.index(id(data))
        return name if index == 0 else f"{name}-{index + 1}"

    def register_prediction(self, result: Any, run_id: str, dataset_name: str) -> None:
        key = id(result)
        with self._lock:
            self._predictions[key] = (dataset_name, run_id)
        if not _forget_when_collected(result, self._predictions, key):
            # Not weak-referenceable (a list): forget it at once rather than risk a reused id.
            with self._lock:
                self._predictions.pop(key, None)

    def prediction_for(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str] | None:
        import numpy as np

        for value in list(args) + list(kwargs.values()):
            if value is not None and not np.isscalar(value) and id(value) in self._predictions:
                return self._predictions[id(value)]
        return None

    def log(self, run_id: str, metric_name: str, dataset_name: str, command: str, value: Any) -> str:
        """Log one post-training metric as {metric_name}[-{call index}]_{dataset_name}, and metric_info.json."""
        with self._lock:
            calls = self._calls.setdefault(run_id, {}).setdefault(metric_name, [])
            index = len(calls)
            key = f"{metric_name if index == 0 else f'{metric_name}-{index + 1}'}_{dataset_name}"
            calls.append((key, command))
            info = dict(sorted(kv for per_metric in self._calls[run_id].values() for kv in per_metric))
        client = tracking_client()
        client.log_metric(run_id, key, float(value))
        client.log_dict(run_id, info, "metric_info.json")
        return key


def _forget_when_collected(obj: Any, table: dict[int, Any], key: int) -> bool:
    try:
        weakref.finalize(obj, table.pop, key, None)
        return True
    except TypeError:
        return False


METRICS = PostTrainingMetrics()


def _arg_text(value: Any) -> str:
    import numpy as np

    if value is None or np.isscalar(value):
        if isinstance(value, str) and len(value) > 32:
            return repr(value[:32] + "...")
        return repr(value)
    return inspect_var_name(value, f"<{type(value).__name__}>")


def _call_command(owner: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """How the metric was computed, e.g. ``accuracy_score(y_true=y_test, y_pred=pred)``."""
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    if owner is not None and names:
        names = names[1:]
    parts = [f"{n}={_arg_text(a)}" for n, a in zip(names, args, strict=False)]
    parts += [f"{n}={_arg_text(a)}" for n, a in kwargs.items()]
    fn_name = getattr(fn, "__name__", "metric")
    prefix = f"{type(owner).__name__}.{fn_name}" if owner is not None else fn_name
    return f"{prefix}({', '.join(parts)})"


def _patched_metric_api(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if not METRICS.should_log():
        return original(*args, **kwargs)
    with METRICS.disabled():
        value = original(*args, **kwargs)
    if is_metric_value(value):
        found = METRICS.prediction_for(args, kwargs)
        if found is not None:
            dataset_name, run_id = found
            METRICS.log(run_id, original.__name__, dataset_name, _call_command(None, original, args, kwargs), value)
    return value


def _log_eval_dataset(run_id: str, data: Any) -> None:
    try:
        dataset = make_dataset(data)
        if dataset is not None:
            tracking_client().log_inputs(run_id, [dataset_input(dataset, "eval")])
    except Exception as exc:
        _log.warning("gitexp: could not record the evaluation dataset: %s", exc)


__all__ = ["autolog"]
