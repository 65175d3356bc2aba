"""Fixtures for the search tests: the gitexp/MLflow twin store, built once per session (per worker)."""

from __future__ import annotations

import logging

import pytest

from ..conftest import require_mlflow
from .twin import Twin


@pytest.fixture(scope="session")
def twin(tmp_path_factory) -> Twin:
    require_mlflow()  # the twin's other half is a real MLflow store
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return Twin(tmp_path_factory.mktemp("twin")).build()
