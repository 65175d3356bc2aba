"""Autologging: patches that make a library's training calls log themselves (MLflow's autolog).

This module owns what every integration shares:

* the configuration each ``autolog()`` call stores (``get_config``), and the
  universal ``gitexp.autolog()`` that configures every integration whose
  library is (or later gets) imported;
* ``safe_patch``: replace a function with a wrapper whose own failures are
  warnings -- the user's training always runs, and its result or exception
  is what the caller gets;
* managed runs: a patched training call with no active run starts one and
  ends it (tag ``mlflow.autologging``);
* training sessions: a meta-estimator's inner fits (GridSearchCV's
  candidates, a Pipeline's steps) are not logged as runs of their own.

Integrations (``sklearn.py``, ``xgboost.py``) only call gitexp's public API.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
import sys
import threading
import warnings
from typing import Any, Callable, Iterator

from ..exceptions import InvalidParameterValue

_log = logging.getLogger("gitexp.autolog")

INPUT_EXAMPLE_SAMPLE_ROWS = 5
AUTOLOGGING_TAG = "mlflow.autologging"
ERROR_TAG = "gitexp.autolog.error"
GLOBALLY_CONFIGURED = "globally_configured"

# Flavor name -> the module holding its autolog(), and the library whose import enables it.
FLAVORS = {"sklearn": "gitexp._autolog.sklearn", "xgboost": "gitexp._autolog.xgboost"}
FLAVOR_LIBRARY = {"sklearn": "sklearn", "xgboost": "xgboost"}
# Oldest library versions the integrations are written for (disable_for_unsupported_versions).
MIN_VERSIONS = {"sklearn": "1.3", "xgboost": "2.0"}

_conf_lock = threading.RLock()
_configs: dict[str, dict[str, Any]] = {}
_patches: dict[str, list["_Patch"]] = {}
_globally_disabled = 0
_managed_runs: set[str] = set()
_thread = threading.local()


# -- configuration --------------------------------------------------------------------------------
def get_config(flavor: str, key: str, default: Any = None) -> Any:
    """A setting of the last ``autolog()`` call of `flavor` (default if never configured)."""
    config = _configs.get(flavor)
    return default if config is None else config.get(key, default)


def library_version_supported(flavor: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"sklearn": "scikit-learn"}.get(flavor, flavor)
    try:
        installed = version(dist)
    except PackageNotFoundError:
        return False
    return _version_tuple(installed) >= _version_tuple(MIN_VERSIONS[flavor])


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(c for c in piece if c.isdigit()) or "0"
        parts.append(int(digits))
        if not piece.isdigit():
            break
    return tuple(parts)


def is_disabled(flavor: str) -> bool:
    if get_config(flavor, "disable", True):
        return True
    return bool(get_config(flavor, "disable_for_unsupported_versions", False)) and not library_version_supported(flavor)


def check_extra_tags(extra_tags: Any) -> dict[str, str]:
    if extra_tags is None:
        return {}
    if not isinstance(extra_tags, dict):
        raise InvalidParameterValue(
            f"extra_tags must be a dict of tag names to values, got {type(extra_tags).__name__} "
            f"({extra_tags!r}); for example extra_tags={{'team': 'forecasting'}}")
    tags = {str(k): str(v) for k, v in extra_tags.items()}
    if tags.pop(AUTOLOGGING_TAG, None) is not None:
        _log.warning("gitexp: the tag %s is set by autologging itself; the value in extra_tags is ignored",
                     AUTOLOGGING_TAG)
    return tags


def integration(flavor: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate a flavor's ``autolog``: store its settings, undo old patches, then patch (unless disabled)."""

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        spec = inspect.signature(fn).parameters
        defaults = {name: p.default for name, p in spec.items()}

        @functools.wraps(fn)
        def autolog(*args: Any, **kwargs: Any) -> None:
            unknown = sorted(set(kwargs) - set(spec))
            if unknown:
                raise InvalidParameterValue(
                    f"gitexp.{flavor}.autolog() got unknown arguments {unknown}; it takes {sorted(spec)}")
            with _conf_lock:
                config = dict(defaults)
                config.update(zip(spec, args))
                config.update(kwargs)
                revert_patches(flavor)
                _configs[flavor] = config
                if is_disabled(flavor):
                    return
                with _warnings_as_events(bool(config.get("silent"))):
                    try:
                        fn(*args, **kwargs)
                    except BaseException:
                        revert_patches(flavor)
                        _configs[flavor] = {**config, "disable": True}
                        raise

        autolog.integration_name = flavor  # type: ignore[attr-defined]
        return autolog

    return decorate


@contextlib.contextmanager
def disable_autologging() -> Iterator[None]:
    """Within this block, patched functions run as if autologging were off (every flavor)."""
    global _globally_disabled
    with _conf_lock:
        _globally_disabled += 1
    try:
        yield
    finally:
        with _conf_lock:
            _globally_disabled -= 1


# -- patching -------------------------------------------------------------------------------------
class _Patch:
    """One replaced attribute, and how to put the original back."""

    def __init__(self, owner: Any, name: str, original_raw: Any, owned: bool, wrapper: Any):
        self.owner, self.name, self.original_raw, self.owned, self.wrapper = owner, name, original_raw, owned, wrapper

    def revert(self) -> None:
        current = self.owner.__dict__.get(self.name) if hasattr(self.owner, "__dict__") else None
        if current is None:
            current = getattr(self.owner, self.name, None)
        if current is self.wrapper:
            if self.owned:
                setattr(self.owner, self.name, self.original_raw)
            else:
                try:
                    delattr(self.owner, self.name)
                except AttributeError:
                    pass
            return
        # Another flavor patched on top of this one: take this wrapper out of the chain.
        while current is not None:
            below = getattr(current, "__gitexp_autolog_original__", None)
            if below is self.wrapper:
                current.__gitexp_autolog_original__ = self.wrapper.__gitexp_autolog_original__
                return
            current = below


def revert_patches(flavor: str) -> None:
    for patch in reversed(_patches.pop(flavor, [])):
        patch.revert()


def _resolve(destination: Any, name: str) -> tuple[Any, str, Any, bool] | None:
    """Where to put the patch: (owner object, attribute, raw original, owner had it itself).

    scikit-learn's conditional methods (``available_if``) are descriptors around
    a function ``fn``: patching ``fn`` keeps ``hasattr(estimator, 'predict_proba')``
    answering as before.
    """
    try:
        raw = inspect.getattr_static(destination, name)
    except AttributeError:
        return None
    if isinstance(raw, (staticmethod, classmethod, property)):
        return None
    fn = getattr(raw, "fn", None) if not inspect.isroutine(raw) else None
    if fn is not None and callable(fn) and (hasattr(raw, "check") or hasattr(raw, "delegate_names")):
        return raw, "fn", fn, True
    if not callable(raw):
        return None
    owned = not inspect.isclass(destination) or name in destination.__dict__
    return destination, name, raw, owned


def safe_patch(flavor: str, destination: Any, name: str, patch_fn: Callable[..., Any],
               manage_run: bool = False, extra_tags: dict[str, str] | None = None) -> bool:
    """Replace ``destination.name`` by a wrapper calling ``patch_fn(original, *args, **kwargs)``.

    The wrapper returns what the original returned and raises what it raised;
    anything else going wrong in ``patch_fn`` becomes a warning (and the
    original still runs, once).  Two flavors patching one function stack.
    Returns False when there is nothing to patch.
    """
    resolved = _resolve(destination, name)
    if resolved is None:
        return False
    owner, attr, raw, owned = resolved
    if getattr(raw, "__gitexp_autolog_flavor__", None) == flavor:
        return True  # patched by this flavor already, through a base class
    if manage_run:
        patch_fn = _with_managed_run(flavor, patch_fn, {AUTOLOGGING_TAG: flavor, **(extra_tags or {})})

    @functools.wraps(raw)
    def patched(*args: Any, **kwargs: Any) -> Any:
        return _call_patched(flavor, patched.__gitexp_autolog_original__, patch_fn,  # type: ignore[attr-defined]
                             args, kwargs)

    patched.__gitexp_autolog_original__ = raw  # type: ignore[attr-defined]
    patched.__gitexp_autolog_flavor__ = flavor  # type: ignore[attr-defined]
    setattr(owner, attr, patched)
    _patches.setdefault(flavor, []).append(_Patch(owner, attr, raw, owned, patched))
    return True


class _AutologSession:
    """One top-level patched call in a thread; patched calls it makes share it."""

    def __init__(self, flavor: str):
        self.flavor = flavor
        self.failed = False


def _current_session() -> _AutologSession | None:
    return getattr(_thread, "session", None)


def user_run_active() -> bool:
    """A run the user started (not an autologging-managed one) is active in this thread."""
    from .. import fluent

    run = fluent.active_run()
    return run is not None and run.info.run_id not in _managed_runs


_autolog_free_code: set[Any] = set()


def run_without_autologging(fn: Callable[..., Any]) -> None:
    """Patched calls made (directly or deep down) by `fn` skip autologging, however `fn` was imported.

    For functions that fit estimators many times over (cross_val_score...):
    found by their code object on the call stack, so ``from sklearn.model_selection
    import cross_val_score`` before autolog() is covered too.
    """
    code = getattr(fn, "__code__", None)
    if code is not None:
        _autolog_free_code.add(code)


def _inside_autolog_free_call() -> bool:
    if not _autolog_free_code:
        return False
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code in _autolog_free_code:
            return True
        frame = frame.f_back
    return False


def _call_patched(flavor: str, original: Callable[..., Any], patch_fn: Callable[..., Any],
                  args: tuple, kwargs: dict) -> Any:
    session = _current_session()
    try:
        skip = (_globally_disabled > 0 or is_disabled(flavor) or (session is not None and session.failed)
                or (get_config(flavor, "exclusive", False) and user_run_active())
                or _inside_autolog_free_call())
    except Exception:  # deciding must not break training either
        skip = True
    if skip:
        return original(*args, **kwargs)

    state = {"called": False, "result": None, "failed_in_original": False}
    silent = bool(get_config(flavor, "silent", False))
    own_session = session is None
    if own_session:
        session = _thread.session = _AutologSession(flavor)
    error: BaseException | None = None
    try:
        with _warnings_as_events(silent) as user_warnings:
            def call_original(*og_args: Any, **og_kwargs: Any) -> Any:
                state["called"] = True
                try:
                    with user_warnings():
                        state["result"] = original(*og_args, **og_kwargs)
                except BaseException:
                    state["failed_in_original"] = True
                    raise
                return state["result"]

            functools.update_wrapper(call_original, original)
            try:
                patch_fn(call_original, *args, **kwargs)
            except BaseException as exc:
                if state["failed_in_original"] or not isinstance(exc, Exception):
                    raise
                session.failed = True
                error = exc
            if error is not None:
                _log.warning("gitexp %s autologging failed and was skipped for this call (training is "
                             "not affected): %s: %s", flavor, type(error).__name__, error)
    finally:
        if own_session:
            _thread.session = None
    if state["called"]:
        return state["result"]
    return original(*args, **kwargs)


def _with_managed_run(flavor: str, patch_fn: Callable[..., Any], tags: dict[str, str]) -> Callable[..., Any]:
    """Start a run for the call when none is active (and end it), as MLflow's managed runs."""

    def managed(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from .. import fluent

        run_id = None
        if fluent.active_run() is None and not TrainingSession.is_active():
            run = fluent.start_run(tags=tags)
            run_id = run.info.run_id
            _managed_runs.add(run_id)
            _log.info("gitexp: started autologging run %s for this %s training call", run_id, flavor)
        trained = {"ok": False}

        def tracked_original(*a: Any, **kw: Any) -> Any:
            result = original(*a, **kw)
            trained["ok"] = True
            return result

        functools.update_wrapper(tracked_original, original)
        try:
            result = patch_fn(tracked_original, *args, **kwargs)
        except KeyboardInterrupt:
            if run_id:
                _end_managed(run_id, "KILLED")
            raise
        except Exception as exc:
            if run_id:
                if trained["ok"]:
                    # Training worked; only logging failed: the run says so in a tag, not a FAILED status.
                    _end_managed(run_id, "FINISHED", f"{type(exc).__name__}: {exc}")
                else:
                    _end_managed(run_id, "FAILED")
            raise
        if run_id:
            _end_managed(run_id, "FINISHED")
        return result

    return managed


def _end_managed(run_id: str, status: str, error: str | None = None) -> None:
    from .. import fluent

    try:
        if error:
            fluent._client().set_tag(run_id, ERROR_TAG, error[:8000])
    finally:
        active = fluent.active_run()
        if active is not None and active.info.run_id == run_id:
            fluent.end_run(status)
        else:
            fluent._client().set_terminated(run_id, status)
        _managed_runs.discard(run_id)


# -- warnings and silent mode ------------------------------------------------------------------------
class _SilentFilter(logging.Filter):
    """Drops gitexp's log records in a thread running a silent integration's patch code."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_thread, "silent", False)


_silent_filter = _SilentFilter()
for _name in ("gitexp", "gitexp.autolog"):
    logging.getLogger(_name).addFilter(_silent_filter)


def _show_as_event(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                   line: Any = None) -> None:
    _log.warning("%s: %s", category.__name__, message)


@contextlib.contextmanager
def _warnings_as_events(silent: bool) -> Iterator[Callable[[], Any]]:
    """Warnings raised by autologging's own work become log records (or nothing, when silent).

    Yields a context manager factory that restores the caller's warning
    settings, for running the user's training function inside.
    """
    saved_filters = list(warnings.filters)
    saved_show = warnings.showwarning
    saved_silent = getattr(_thread, "silent", False)

    @contextlib.contextmanager
    def user_warnings() -> Iterator[None]:
        inner_silent = getattr(_thread, "silent", False)
        with warnings.catch_warnings():
            warnings.filters[:] = saved_filters
            warnings.showwarning = saved_show
            mutated = getattr(warnings, "_filters_mutated", None)
            if mutated is not None:
                mutated()
            _thread.silent = saved_silent
            try:
                yield
            finally:
                _thread.silent = inner_silent

    with warnings.catch_warnings():
        if silent:
            warnings.simplefilter("ignore")
        else:
            warnings.showwarning = _show_as_event
        _thread.silent = saved_silent or silent
        try:
            yield user_warnings
        finally:
            _thread.silent = saved_silent


# -- training sessions ----------------------------------------------------------------------------------
class TrainingSession:
    """The stack of training calls in progress, to log only the outermost estimator.

    A child session may log when its parent allows children and it trains a
    different object; a fit calling fit on itself (super().fit) never logs twice.
    The stack is process-wide, as joblib's threads fit on behalf of the caller.
    """

    _stack: list["TrainingSession"] = []

    def __init__(self, estimator: Any, allow_children: bool = True):
        self.estimator = estimator
        self.allow_children = allow_children
        self.parent: TrainingSession | None = None

    def __enter__(self) -> "TrainingSession":
        stack = TrainingSession._stack
        if stack:
            self.parent = stack[-1]
            self.allow_children = self.parent.allow_children and self.allow_children
        stack.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        stack = TrainingSession._stack
        if self in stack:
            stack.remove(self)

    def should_log(self) -> bool:
        for session in TrainingSession._stack:
            if session is self:
                break
            if session.estimator is self.estimator:
                return False
        return self.parent is None or self.parent.allow_children

    @staticmethod
    def is_active() -> bool:
        return bool(TrainingSession._stack)

    @staticmethod
    def current() -> "TrainingSession | None":
        stack = TrainingSession._stack
        return stack[-1] if stack else None


# -- shared helpers for integrations ------------------------------------------------------------------
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
    return run.info.run_id


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


# -- gitexp.autolog(): every integration, now or when its library is imported ---------------------------
def autolog(log_input_examples: bool = False, log_model_signatures: bool = True, log_models: bool = True,
            log_datasets: bool = True, log_traces: bool = True, disable: bool = False, exclusive: bool = False,
            disable_for_unsupported_versions: bool = False, silent: bool = False,
            extra_tags: dict[str, str] | None = None, exclude_flavors: list[str] | None = None) -> None:
    """Enable (or, with disable=True, disable) autologging for every library gitexp integrates.

    scikit-learn and XGBoost are configured as soon as they are imported (or
    at once when they already are).  A flavor configured by its own call
    (``gitexp.sklearn.autolog(...)``) keeps that configuration.  ``log_traces``
    is accepted for MLflow compatibility (gitexp integrates no GenAI library).

    >>> gitexp.autolog()
    >>> RandomForestClassifier().fit(X, y)    # logged as a run
    """
    settings = dict(log_input_examples=log_input_examples, log_model_signatures=log_model_signatures,
                    log_models=log_models, log_datasets=log_datasets, disable=disable, exclusive=exclusive,
                    disable_for_unsupported_versions=disable_for_unsupported_versions, silent=silent,
                    extra_tags=extra_tags)
    check_extra_tags(extra_tags)
    if exclude_flavors is not None and (isinstance(exclude_flavors, str) or not all(
            isinstance(f, str) for f in exclude_flavors)):
        raise InvalidParameterValue(
            f"exclude_flavors must be a list of flavor names such as ['xgboost'], got {exclude_flavors!r}")
    excluded = set(exclude_flavors or ())
    for flavor, library in FLAVOR_LIBRARY.items():
        if flavor in excluded:
            continue
        register_post_import_hook(functools.partial(_setup_flavor, flavor, settings), library)


def _setup_flavor(flavor: str, settings: dict[str, Any], _module: Any = None) -> None:
    with _conf_lock:
        try:
            fn = importlib.import_module(FLAVORS[flavor]).autolog
            previous = _configs.get(flavor)
            if previous and not previous.get(GLOBALLY_CONFIGURED, False):
                return  # the user configured this flavor explicitly; that wins
            wanted = set(inspect.signature(fn).parameters)
            fn(**{k: v for k, v in settings.items() if k in wanted})
            _configs[flavor][GLOBALLY_CONFIGURED] = True
            if not is_disabled(flavor) and not settings.get("silent"):
                _log.info("gitexp: autologging enabled for %s", FLAVOR_LIBRARY[flavor])
        except Exception as exc:
            if not settings.get("silent"):
                _log.warning("gitexp: could not enable autologging for %s: %s", FLAVOR_LIBRARY[flavor], exc)


# -- post-import hooks ----------------------------------------------------------------------------------
_hooks: dict[str, dict[str, Callable[[Any], None]]] = {}
_hooks_lock = threading.RLock()


def register_post_import_hook(hook: Callable[[Any], None], module_name: str, key: str | None = None) -> None:
    """Run hook(module) once `module_name` is imported: now if it already is, else right after its import.

    A hook registered again under the same key (default: the module name and
    the hook's function) replaces the old one.
    """
    func = getattr(hook, "func", hook)
    key = key or f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}"
    module = sys.modules.get(module_name)
    if module is not None and _fully_imported(module):
        hook(module)
        return
    with _hooks_lock:
        _hooks.setdefault(module_name, {})[key] = hook
        if not any(isinstance(f, _PostImportFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _PostImportFinder())


def _fully_imported(module: Any) -> bool:
    spec = getattr(module, "__spec__", None)
    return not getattr(spec, "_initializing", False)


def _run_hooks(module_name: str) -> None:
    with _hooks_lock:
        hooks = list(_hooks.pop(module_name, {}).values())
    module = sys.modules.get(module_name)
    for hook in hooks:
        try:
            hook(module)
        except Exception as exc:  # an import must never fail because of autologging
            _log.warning("gitexp: a post-import hook for %s failed: %s", module_name, exc)


class _PostImportFinder:
    """Finds nothing itself: wraps the real loader of a hooked module to run hooks after it executes."""

    _busy = threading.local()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _hooks or getattr(self._busy, fullname, False):
            return None
        setattr(self._busy, fullname, True)
        spec = None
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            setattr(self._busy, fullname, False)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _HookedLoader(spec.loader, fullname)
        return spec


class _HookedLoader:
    def __init__(self, loader: Any, fullname: str):
        self._loader = loader
        self._fullname = fullname

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _run_hooks(self._fullname)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


__all__ = ["autolog", "disable_autologging", "get_config", "register_post_import_hook", "safe_patch"]
