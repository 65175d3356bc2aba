"""Shared by the autologging tests: undo every patch after a test, read runs back."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(autouse=True)
def no_autolog_left_behind():
    """Each test starts and ends with no library patched."""
    from gitexp import _autolog

    yield
    for flavor in list(_autolog._configs):
        _autolog.revert_patches(flavor)
    _autolog._configs.clear()
    _autolog._hooks.clear()
    _autolog._managed_runs.clear()


def runs_of(client, experiment_id: str = "0") -> list:
    return list(client.search_runs([experiment_id], order_by=["attributes.start_time ASC"]))


def only_run(client, experiment_id: str = "0"):
    runs = runs_of(client, experiment_id)
    assert len(runs) == 1, [r.data.tags for r in runs]
    return client.get_run(runs[0].info.run_id)


def artifact_paths(client, run_id: str, path: str | None = None) -> list[str]:
    return sorted(f.path for f in client.list_artifacts(run_id, path))


def read_artifact(client, run_id: str, path: str, tmp_path) -> str:
    local = client.download_artifacts(run_id, path, str(tmp_path))
    with open(local, encoding="utf-8") as fh:
        return fh.read()


def read_json_artifact(client, run_id: str, path: str, tmp_path):
    return json.loads(read_artifact(client, run_id, path, tmp_path))
