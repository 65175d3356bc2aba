"""Patching: ``safe_patch`` (a wrapper whose own failures are warnings), managed runs, and the
``integration`` decorator every flavor's ``autolog()`` wears."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from ..exceptions import InvalidParameterValue
from ._config import AUTOLOGGING_TAG, ERROR_TAG, _conf_lock, _configs, get_config, is_disabled, require_library
from ._sessions import TrainingSession
from ._warnings import warnings_as_events

_log = logging.getLogger("gitexp.autolog")

_patches: dict[str, list[_Patch]] = {}
_globally_disabled = 0
_managed_runs: set[str] = set()
_thread = threading.local()  # .session: the top-level patched call in progress in this thread


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
                config.update(zip(spec, args, strict=False))
                config.update(kwargs)
                revert_patches(flavor)
                _configs[flavor] = config
                if is_disabled(flavor):
                    return
                with warnings_as_events(bool(config.get("silent"))):
                    try:
                        require_library(flavor)
                        fn(*args, **kwargs)
                    except BaseException:
                        revert_patches(flavor)
                        _configs[flavor] = {**config, "disable": True}
                        raise

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


class _Patch:
    """One replaced attribute, and how to put the original back."""

    def __init__(self, owner: Any, name: str, original_raw: Any, owned: bool, wrapper: Any) -> None:
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
                assert self.wrapper is not None  # `current` wraps this patch's wrapper
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
        # (the two __gitexp_autolog_*__ attributes are gitexp's own, set on the wrappers it makes)
        return _call_patched(flavor, patched.__gitexp_autolog_original__, patch_fn,  # type: ignore[attr-defined]
                             args, kwargs)

    patched.__gitexp_autolog_original__ = raw  # type: ignore[attr-defined]
    patched.__gitexp_autolog_flavor__ = flavor  # type: ignore[attr-defined]
    setattr(owner, attr, patched)
    _patches.setdefault(flavor, []).append(_Patch(owner, attr, raw, owned, patched))
    return True


class _AutologSession:
    """One top-level patched call in a thread; patched calls it makes share it."""

    def __init__(self, flavor: str) -> None:
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
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code in _autolog_free_code:
            return True
        frame = frame.f_back
    return False


def _call_patched(flavor: str, original: Callable[..., Any], patch_fn: Callable[..., Any],
                  args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
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
    if session is None:
        session = _thread.session = _AutologSession(flavor)
    error: BaseException | None = None
    try:
        with warnings_as_events(silent) as user_warnings:
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
