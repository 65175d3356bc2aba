"""Warnings and log messages of autologging's own work: events, or nothing when silent."""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

_log = logging.getLogger("gitexp.autolog")
_thread = threading.local()  # .silent: this thread runs a silent integration's patch code


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
def warnings_as_events(silent: bool) -> Iterator[Callable[[], Any]]:
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
            warnings.filters[:] = saved_filters  # type: ignore[index]  # typeshed: a Sequence; a list in fact
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
