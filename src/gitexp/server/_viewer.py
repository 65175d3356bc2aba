"""What the signed-in user may read, for the pages that list experiments and models.

The auth guard (``_auth.Guard``) sets it for each request of a user who is not an admin;
without --auth, or for an admin, everything is readable. Pages filter their lists with
``may_read``; the single pages and the API are checked by the guard itself.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

EXPERIMENT, MODEL = "experiment", "registered_model"

_VIEWER: contextvars.ContextVar[Callable[[str, str], bool] | None] = contextvars.ContextVar("gitexp_viewer",
                                                                                         default=None)


@contextlib.contextmanager
def viewing(readable: Callable[[str, str], bool] | None) -> Iterator[None]:
    """Within this context, `readable(kind, id)` says what the user may read (None: everything)."""
    token = _VIEWER.set(readable)
    try:
        yield
    finally:
        _VIEWER.reset(token)


def may_read(kind: str, resource_id: str) -> bool:
    """May the user of this request read the experiment (kind EXPERIMENT, its id) or the
    registered model (kind MODEL, its name)?"""
    readable = _VIEWER.get()
    return readable is None or readable(kind, resource_id)
