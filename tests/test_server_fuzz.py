"""Schema-driven fuzzing of the published API (/openapi.json) with schemathesis: no 5xx, ever.

Every operation gets generated requests -- valid ones and, as schemathesis does
by default, invalid ones too -- against the app in process, over one scratch
repository.  Responses must also match the schemas the API publishes.  The
example count is bounded so the whole file runs in well under a minute.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile

import fastapi  # noqa: F401  (a dev dependency: missing, the test fails loudly)
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from gitexp.server import create_app

_REPO = tempfile.mkdtemp(prefix="gitexp-fuzz-")
atexit.register(shutil.rmtree, _REPO, True)
subprocess.run(["git", "init", "-q", _REPO], check=True)
_APP = create_app(_REPO, ui=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


@pytest.fixture(scope="module", autouse=True)
def seeded():
    """A little data so generated ids sometimes hit real runs, models and artifacts."""
    from fastapi.testclient import TestClient

    with TestClient(_APP) as http:
        exp = http.post("/api/2.0/mlflow/experiments/create", json={"name": "fuzz"}).json()["experiment_id"]
        run = http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": exp}).json()["run"]["info"]
        http.put(f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{run['run_id']}/artifacts/a.txt", content=b"a")
        http.post("/api/2.0/mlflow/registered-models/create", json={"name": "fuzz"})
    yield


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
