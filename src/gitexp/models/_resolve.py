"""From a model URI to a local model directory: the one door every load_model goes through.

``runs:/<run_id>/<path>`` is read from the tracking branch; local paths and
``file://`` URIs are used as they are; other schemes (``models:/`` from the
registry) are rewritten by the handlers registered with
:func:`gitexp.artifacts.register_uri_scheme`.

Without ``dst_path`` a logged model is materialized once into a cache keyed
by its content (``.git/gitexp/cache/models/<digest>``), so loading the same
model again costs nothing.  The cache is derived: delete it any time.
"""

from __future__ import annotations

import os

from ..exceptions import ResourceDoesNotExist


def resolve_model_uri(model_uri: str | os.PathLike[str], dst_path: str | os.PathLike[str] | None = None,
                      tracking_uri: str | None = None) -> str:
    """A local directory (or file) holding the model at `model_uri`."""
    from ..artifacts import _client, parse_artifact_uri

    where = parse_artifact_uri(model_uri)
    if where.local_path is not None:
        if not os.path.exists(where.local_path):
            raise ResourceDoesNotExist(
                f"No model at {where.local_path!r}: the path does not exist (working directory {os.getcwd()})",
                path=where.local_path)
        if dst_path is None:
            return where.local_path
        from ..artifacts import download_artifacts

        return download_artifacts(where.local_path, dst_path=os.fspath(dst_path))
    client = _client(tracking_uri)
    assert where.run_id is not None  # not a local path: a run's
    if dst_path is not None:
        return client.download_artifacts(where.run_id, where.path, os.fspath(dst_path))
    return client.get_artifact_local_copy(where.run_id, where.path)
