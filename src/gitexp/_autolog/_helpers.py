"""What integrations share: input examples and signatures, truncated params, variable names,
datasets, the tracking client."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

_log = logging.getLogger("gitexp.autolog")


def resolve_input_example_and_signature(get_example: Callable[[], Any], infer: Callable[[Any], Any],
                                        log_input_examples: bool, log_model_signatures: bool) -> tuple[Any, Any]:
    """The input example and signature to log with a model, as MLflow decides them.

    A failure to sample or infer is a warning (when that part was asked for).
    A signature of False means "log none" (save_model would otherwise infer one).
    """
    example = None
    example_error = None
    if log_input_examples or log_model_signatures:
        try:
            example = get_example()
        except Exception as exc:
            example_error = f"Failed to gather input example: {exc}"
    signature = None
    signature_error = None
    if log_model_signatures:
        try:
            if example is None:
                raise ValueError(f"could not sample data to infer model signature: {example_error}")
            signature = infer(example)
        except Exception as exc:
            signature_error = f"Failed to infer model signature: {exc}"
    if signature is None and example is not None and (not log_model_signatures or signature_error):
        signature = False
    if log_input_examples and example_error:
        _log.warning("gitexp: %s", example_error)
    if log_model_signatures and signature_error:
        _log.warning("gitexp: %s", signature_error)
    return (example if log_input_examples else None), signature


def truncated(kind: str, values: dict[str, Any], max_value_length: int) -> dict[str, str]:
    """Stringified values cut to the store's limits (long repr()s of estimators), as MLflow's autolog."""
    from .._validation import MAX_ENTITY_KEY_LENGTH

    out: dict[str, str] = {}
    for key, value in values.items():
        key = str(key)
        text = str(value)
        if len(key) > MAX_ENTITY_KEY_LENGTH:
            _log.warning("gitexp: truncated the %s name %r... to %d characters", kind, key[:40], MAX_ENTITY_KEY_LENGTH)
            key = key[:MAX_ENTITY_KEY_LENGTH]
        if len(text) > max_value_length:
            _log.warning("gitexp: truncated the value of %s %r to %d characters", kind, key, max_value_length)
            text = text[:max_value_length]
        out[key] = text
    return out


def inspect_var_name(value: Any, fallback: str) -> str:
    """The name the user's code gives `value` (X_test in ``model.predict(X_test)``), else `fallback`.

    Walks up from the caller past frames that merely received `value` as an
    argument, and looks it up by identity in the first other frame's locals.
    """
    if value is None:
        return fallback
    try:
        frame = inspect.currentframe()
        frame = frame.f_back if frame is not None else None
        while frame is not None:
            info = inspect.getargvalues(frame)
            passed = [info.locals.get(a) for a in info.args]
            if info.varargs:
                passed.extend(info.locals.get(info.varargs) or ())
            if info.keywords:
                passed.extend((info.locals.get(info.keywords) or {}).values())
            if any(value is p for p in passed) or frame.f_globals.get("__name__", "").startswith("gitexp._autolog"):
                frame = frame.f_back
                continue
            for name, local in frame.f_locals.items():
                if local is value:
                    return name
            return fallback
    except Exception:
        return fallback
    return fallback


def is_metric_value(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Number) and not isinstance(value, (bool, complex))


def tracking_client() -> Any:
    """The Client of the tracking URI in effect (what the fluent API writes to)."""
    from .. import fluent

    return fluent._client()


def active_run_id() -> str:
    from .. import fluent

    run = fluent.active_run()
    if run is None:
        raise RuntimeError("autologging needs an active run here, and none is active")
    run_id: str = run.info.run_id
    return run_id


_MAX_DENSE_DATASET = 20_000_000  # elements; larger sparse inputs are not densified for a dataset record


def make_dataset(X: Any, y: Any = None, name: str | None = None) -> Any:
    """A gitexp.data dataset for training data (DataFrame, ndarray or scipy sparse), or None."""
    import numpy as np

    from ..data import from_numpy, from_pandas

    if type(X).__name__ == "DataFrame" and type(X).__module__.startswith("pandas"):
        return from_pandas(X, name=name)
    if type(X).__module__.startswith("scipy.sparse") and hasattr(X, "toarray"):
        rows, cols = X.shape
        if rows * cols > _MAX_DENSE_DATASET:
            _log.info("gitexp: a %dx%d sparse training matrix is not recorded as a dataset (too large to "
                      "densify for its digest)", rows, cols)
            return None
        X = X.toarray()
    if not isinstance(X, np.ndarray):
        return None
    if y is not None:
        if type(y).__module__.startswith("scipy.sparse") and hasattr(y, "toarray"):
            y = y.toarray()
        y = y if isinstance(y, (np.ndarray, dict)) else np.asarray(y)
    return from_numpy(X, targets=y, name=name)


def dataset_input(dataset: Any, context: str) -> Any:
    from ..entities import DatasetInput, InputTag

    return DatasetInput(dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", context)])


class FlavorHandle:
    """The flavor module an integration saves models with (gitexp.sklearn, gitexp.xgboost).

    The flavor hands itself over when it is imported -- that is where autolog() is reached
    from -- so an integration never imports its flavor and the two modules do not import
    each other."""

    def __init__(self, reached_through: str) -> None:
        self.reached_through = reached_through
        self.module: Any = None

    def use(self, module: Any) -> None:
        self.module = module

    def get(self) -> Any:
        if self.module is None:
            from ..exceptions import GitexpError

            raise GitexpError(f"this autologging is reached through {self.reached_through}")
        return self.module
