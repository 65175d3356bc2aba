"""gitexp's own additions to the API, under /api/2.0/gitexp/ (MLflow clients never call them).

They let gitexp's RestStore offer what MLflow's API has no call for: the code
version of a run started remotely, its uncommitted diff, committing now,
run id prefixes, and a registered model's audit history.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import field_validator

from ..client import Client
from ..entities import RunTag
from ..exceptions import InvalidParameterValue
from ..store import rest_json as conv
from . import _schemas as s
from ._responses import JSON


class CodeVersion(s.Request):
    """What code_version.capture() records (the client's working tree)."""

    repository: str | None = None
    commit: str | None = None
    branch: str | None = None
    remote_url: str | None = None
    dirty: bool = False
    untracked: list[str] = []
    untracked_blobs: dict[str, str] = {}
    diff_bytes: s.INT64 | None = None
    diff_truncated: bool | None = None
    patch: str | None = None

    @field_validator("repository", "commit", "branch", "remote_url")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None:
            value.encode("utf-8")  # lone surrogates cannot be written to code.yaml
        return value


class RecordCode(s.Request):
    run_id: str
    code: CodeVersion
    tags: dict[str, str] = {}


class Flush(s.Request):
    run_id: str | None = None


class RunRef(s.Request):
    ref: str


class RunIdQuery(s.Request):
    run_id: str


class CodeDiffResponse(s.Response):
    diff: str


class RunIdResponse(s.Response):
    run_id: str


class HistoryResponse(s.Response):
    history: list[dict[str, Any]] = []


def router(client: Client) -> APIRouter:
    api = APIRouter(tags=["gitexp"])

    @api.post("/runs/record-code", response_model=s.Empty)
    def record_code(req: RecordCode) -> JSON:
        client.get_run(req.run_id)
        if req.tags:
            client.log_batch(req.run_id, tags=[RunTag(k, v) for k, v in req.tags.items()])
        client.record_code(req.run_id, req.code.model_dump(exclude_none=True))
        return JSON({})

    @api.get("/runs/code-diff", response_model=CodeDiffResponse)
    def code_diff(q: Annotated[RunIdQuery, Query()]) -> JSON:
        return JSON({"diff": client.get_run_code_diff(q.run_id)})

    @api.get("/runs/resolve-id", response_model=RunIdResponse)
    def resolve_id(q: Annotated[RunRef, Query()]) -> JSON:
        if not q.ref.strip():
            raise InvalidParameterValue("Give a run id or a prefix of at least 4 characters")
        return JSON({"run_id": client.resolve_run_id(q.ref)})

    @api.post("/flush", response_model=s.Empty)
    def flush(req: Flush) -> JSON:
        if req.run_id:
            client.get_run(req.run_id)
        client.flush(req.run_id)
        return JSON({})

    @api.get("/registered-models/history", response_model=HistoryResponse)
    def history(q: Annotated[s.ModelName, Query()]) -> JSON:
        return JSON({"history": [conv.history_entry(e) for e in client.get_registered_model_history(q.name)]})

    return api
