"""The code version of runs made through the real mlflow package (entry point
``mlflow.run_context_provider``), whatever store they go to.

MLflow asks every context provider for tags when fluent ``mlflow.start_run`` creates a run.
gitexp's provider captures the code around the process as gitexp's own runs do (commit,
branch, remote, dirtiness, the uncommitted diff) and answers MLflow's ``mlflow.source.git.*``
tags.  Into a gitexp: store the capture is then recorded with the run (code.yaml and its
patch, as for ``gitexp.start_run``); into any other store the uncommitted diff is written
as a git blob in the code's repository, kept by the ref ``refs/gitexp/patches/<blob>``, and
the run gets the tag ``gitexp.code.patch`` = that blob's id (``git show <id>`` prints it).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from mlflow.tracking.context.abstract_context import RunContextProvider

from .. import _git, code_version
from ..client import Client

_log = logging.getLogger("gitexp")
_pending = threading.local()  # the capture of the run fluent start_run is about to create
PATCH_TAG = "gitexp.code.patch"
PATCH_REFS = "refs/gitexp/patches/"


def _enabled() -> bool:
    return os.environ.get("GITEXP_CAPTURE_CODE", "1").lower() not in ("0", "false", "no")


def _into_gitexp() -> bool:
    import mlflow

    return mlflow.get_tracking_uri().lower().startswith("gitexp:")


def keep_patch(repository: str, patch: str) -> str:
    """Write `patch` as a blob of `repository`, kept by a ref; its id."""
    data = patch.encode("utf-8", "surrogateescape")
    blob = _git.run(["hash-object", "-w", "--stdin"], cwd=repository, input=data, check=True).stdout.decode().strip()
    _git.run(["update-ref", PATCH_REFS + blob, blob], cwd=repository, check=True)
    return blob


class GitexpRunContextProvider(RunContextProvider):
    def in_context(self) -> bool:
        return _enabled()

    def tags(self) -> dict[str, str]:
        _pending.info = None
        try:
            info = code_version.capture()
        except Exception as exc:  # never break the user's run over its code version
            _log.warning("gitexp: could not capture the code version: %s", exc)
            return {}
        if info is None:
            return {}
        tags = code_version.tags_for(info)
        if _into_gitexp():
            _pending.info = info  # recorded in full by the store's create_run
        elif info.get("patch") and info.get("repository"):
            try:
                tags[PATCH_TAG] = keep_patch(info["repository"], info["patch"])
            except Exception as exc:
                _log.warning("gitexp: could not keep the uncommitted diff in %s: %s", info["repository"], exc)
        return tags


def record_code(client: Client, run_id: str) -> None:
    """Record the code version of a run created through the plugin, from the capture the provider
    made for it when fluent start_run asked (as gitexp's own Client, MlflowClient.create_run
    records none: it may run far from the code, e.g. in a server)."""
    info: dict[str, Any] | None = getattr(_pending, "info", None)
    _pending.info = None
    if info is not None and _enabled():
        client.record_code(run_id, info, code_version.tags_for(info))
