"""``as_of``: which commit of the tracking branch a past date or a commit-ish names."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import TYPE_CHECKING, Any

from .. import _git
from ..exceptions import InvalidParameterValue

if TYPE_CHECKING:
    from ..store.tracking import GitStore

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def resolve_as_of(store: GitStore, as_of: Any) -> str:
    """The commit id `as_of` names.

    * a ``datetime`` (naive means local time), a ``date`` (the end of that day,
      local time), or an ISO string of either: the newest commit on the
      branch's first-parent history made at or before that time;
    * any other string: a commit-ish git understands (``3f2a9c1``,
      ``gitexp~3``, a tag), else a date git understands (``"2 weeks ago"``).
    """
    repo = store.repo
    if isinstance(as_of, dt.datetime):
        return _commit_before(store, as_of)
    if isinstance(as_of, dt.date):
        return _commit_before(store, dt.datetime.combine(as_of, dt.time.max))
    if not isinstance(as_of, str) or not as_of.strip():
        raise InvalidParameterValue(
            f"as_of must be a commit-ish (e.g. 'gitexp~3' or a commit id), a date or datetime "
            f"(or an ISO string of one), got {as_of!r} ({type(as_of).__name__})", as_of=as_of)
    text = as_of.strip()
    if _ISO_DATE.match(text):
        return _commit_before(store, dt.datetime.combine(dt.date.fromisoformat(text), dt.time.max))
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is not None:
        return _commit_before(store, when)
    found = _git.run(["rev-parse", "--verify", "-q", f"{text}^{{commit}}"], git_dir=repo.common_dir)
    sha = found.stdout.decode().strip()
    if found.returncode == 0 and sha:
        return sha
    # git reads any text as a date, and text it does not understand as "now": tell a
    # typo from a date by asking git which time it means.
    parsed = _git.run(["rev-parse", f"--before={text}"], git_dir=repo.common_dir)
    match = re.search(rb"--min-age=(\d+)", parsed.stdout)
    if match is None or (abs(int(match.group(1)) - time.time()) < 5 and text.lower() != "now"):
        raise InvalidParameterValue(
            f"as_of={text!r} is neither a commit git knows nor a date. Give a commit id, a ref such as "
            "'gitexp~3', a date ('2024-05-01'), a datetime, or a relative date ('2 weeks ago').", as_of=text)
    return _commit_before(store, dt.datetime.fromtimestamp(int(match.group(1)), dt.timezone.utc))


def _commit_before(store: GitStore, when: dt.datetime | str) -> str:
    repo = store.repo
    if isinstance(when, dt.datetime):
        if when.tzinfo is None:
            when = when.astimezone()  # naive: local time, as git reads dates
        before = when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S +0000")
        shown = when.isoformat()
    else:
        before, shown = when, when
    tip = store.branch.tip()
    if tip is None:
        raise InvalidParameterValue(
            f"Cannot search as of {shown}: the tracking branch {repo.branch!r} does not exist yet", as_of=shown)
    result = _git.run(["rev-list", "-1", "--first-parent", f"--before={before}", tip], git_dir=repo.common_dir)
    sha = result.stdout.decode().strip()
    if result.returncode != 0 or not sha:
        raise InvalidParameterValue(
            f"as_of={shown!r} names neither a commit nor a date with a commit of branch {repo.branch!r} "
            "before it. Give a commit id, a ref such as 'gitexp~3', a date ('2024-05-01'), a datetime, "
            "or a relative date git understands ('2 weeks ago').", as_of=shown)
    return sha
