"""Post-import hooks: run a function right after a module is imported (at once if it already is)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

_log = logging.getLogger("gitexp.autolog")

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
        spec.loader = cast("Loader", _HookedLoader(spec.loader, fullname))  # duck-typed: delegates to the real loader
        return spec


class _HookedLoader:
    def __init__(self, loader: Any, fullname: str) -> None:
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
