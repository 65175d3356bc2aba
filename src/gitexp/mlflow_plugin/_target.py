"""One repository as MLflow sees it through the plugin: the Client, the in-process API, and
the translation of artifact URIs between MLflow's view and the server's.

Artifact URIs.  The server reports a run's artifacts as
``mlflow-artifacts:/<experiment>/<run>/artifacts`` (its proxy).  In-process there is no
proxy: MLflow must pick gitexp's artifact repository, so the plugin reports

    gitexp:///<repository>/.tracking/<experiment>/<run>/artifacts[/<path>][?branch=NAME]

``.tracking`` marks where the repository's path ends (it is the tracking branch's top
directory, never a directory of the work tree); what follows is the proxy's path.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any
from urllib.parse import quote, urlencode, urlparse

from ..client import Client
from ..exceptions import GitexpError, InvalidParameterValue
from ..server._inprocess import InProcessApi
from ..store import layout
from ..store import rest_json as conv
from ..store.repo import parse_gitexp_uri

MARKER = "/" + layout.ROOT + "/"
# Response fields that hold artifact locations, and request fields MLflow sends them in.
_URI_FIELDS = frozenset({"artifact_uri", "artifact_location", "root_uri", "source"})


def split_artifact_uri(uri: str) -> tuple[str, str | None, str]:
    """(repository path, branch, path after the repository) of a gitexp: artifact URI.

    Without the ``.tracking`` marker the whole path is the repository (``mlflow server
    --artifacts-destination gitexp:///repo``: MLflow passes the rest as artifact paths)."""
    path, branch = parse_gitexp_uri(uri)
    norm = path.replace("\\", "/")
    at = norm.find(MARKER)
    if at < 0:
        if norm.endswith(MARKER[:-1]):
            return norm[: -len(MARKER) + 1] or "/", branch, ""
        return path, branch, ""
    return norm[:at] or "/", branch, norm[at + len(MARKER):].strip("/")


def mlflow_error(exc: GitexpError) -> Any:
    """gitexp's error as MLflow's, with the same code and message (INTERNAL_ERROR for a code MLflow lacks)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, ErrorCode

    try:
        code = ErrorCode.Value(exc.error_code)
    except ValueError:
        code = INTERNAL_ERROR
    return MlflowException(exc.message, error_code=code)


class Target:
    """A repository (and tracking branch) that MLflow calls reach through the plugin."""

    def __init__(self, tracking_uri: str, proxied: bool = False) -> None:
        self.tracking_uri = tracking_uri
        self.client = Client(tracking_uri)
        info = self.client.get_repository_info()  # a bad path fails here, naming it
        self.root = info.path.replace(os.sep, "/")
        _path, self.branch = parse_gitexp_uri(tracking_uri)
        self.api = InProcessApi(self.client)
        # Under `mlflow server` artifacts go through its proxy: keep the proxy's URIs.
        self.proxied = proxied

    # -- artifact URIs ------------------------------------------------------------------------
    def artifact_uri(self, proxy_path: str) -> str:
        """gitexp: URI of '<experiment>/<run>/artifacts/<path>'."""
        root = self.root if self.root.startswith("/") else "/" + self.root
        uri = "gitexp://" + quote(root + MARKER + proxy_path.strip("/"), safe="/:")
        return uri + ("?" + urlencode({"branch": self.branch}) if self.branch else "")

    def _outgoing(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith(conv.PROXY_SCHEME) and not self.proxied:
            rest = value[len(conv.PROXY_SCHEME):]
            if rest.startswith("//"):
                return value
            return self.artifact_uri(rest)
        return value

    def _incoming(self, value: Any) -> Any:
        if isinstance(value, str) and value.lower().startswith("gitexp:") and MARKER in value:
            root, _branch, rest = split_artifact_uri(value)
            if os.path.normcase(os.path.abspath(root)) == os.path.normcase(os.path.abspath(self.root)):
                return conv.PROXY_SCHEME + "/" + rest
        return value

    def _translate(self, data: Any, convert: Any) -> Any:
        if isinstance(data, dict):
            return {k: (convert(v) if k in _URI_FIELDS else self._translate(v, convert)) for k, v in data.items()}
        if isinstance(data, list):
            return [self._translate(v, convert) for v in data]
        return data

    # -- calls ----------------------------------------------------------------------------------
    def call(self, method: str, endpoint: str, json_body: Any) -> dict[str, Any]:
        """The API's answer as JSON, artifact URIs in MLflow's in-process form; errors as MLflow's."""
        text = json_body if isinstance(json_body, str) else None
        body = json.loads(text) if text else (json_body or {})
        body = self._translate(body, self._incoming)
        try:
            answer = self.api.call(method, endpoint, body, len(text) if text else 0)
        except GitexpError as exc:
            raise mlflow_error(exc) from exc
        return self._translate(answer, self._outgoing)  # type: ignore[no-any-return]


def check_server_options(uri: str) -> None:
    """Under `mlflow server`: warn when run artifacts would not go to the repository; refuse
    several worker processes, before it starts.

    A running run lives in the process that created it (its journal, checkpointed every few
    seconds), so a second worker would not find it: 404s and stale reads.  MLflow builds the
    stores once in its `server` command before it spawns workers; that is where this runs."""
    import click
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.info_name not in ("server", "ui") or "workers" not in ctx.params:
        return
    destination = str(ctx.params.get("artifacts_destination") or "")
    if ctx.params.get("serve_artifacts", True) and not destination.lower().startswith("gitexp:"):
        logging.getLogger("gitexp").warning(
            "gitexp: run artifacts go to %s, not to the repository; to keep them on its tracking "
            "branch, add --artifacts-destination %s", destination, uri)
    workers = ctx.params.get("workers")
    if ctx.params.get("waitress_opts") is None and (workers is None or str(workers).strip() != "1"):
        raise MlflowException(
            f"{uri}: MLflow's server over a git repository needs a single worker process: add "
            f"`--workers 1` (got {workers or 'the default, 4'}). Each gitexp process keeps the runs "
            "it is logging until their next checkpoint, so other workers would not find them.",
            error_code=INVALID_PARAMETER_VALUE)


_targets: dict[tuple[str, bool], Target] = {}
_lock = threading.Lock()


def target_for(tracking_uri: str | None) -> Target:
    """The Target of a gitexp: tracking URI, one per repository and branch in a process.

    Inside `mlflow server` (MLflow marks its processes) clients reach artifacts through the
    server's proxy, so the proxy's URIs are reported as they are."""
    from mlflow.store.artifact.host_policy import is_tracking_server_process

    proxied = is_tracking_server_process()
    uri = tracking_uri or "gitexp:"
    if urlparse(uri).scheme.lower() != "gitexp":
        raise InvalidParameterValue(f"The gitexp MLflow plugin serves gitexp: URIs, got {uri!r}")
    path, branch = parse_gitexp_uri(uri)
    key = (os.path.abspath(path) + "?" + (branch or ""), proxied)
    found = _targets.get(key)
    if found is None:
        with _lock:
            found = _targets.get(key)
            if found is None:
                check_server_options(uri)
                found = _targets[key] = Target(uri, proxied)
    return found
