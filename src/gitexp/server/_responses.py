"""What every response of the web app shares, API and UI alike: one JSON helper and one map
from gitexp's error codes to HTTP statuses."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

# MLflow's mapping from error code to HTTP status (mlflow/exceptions.py).
HTTP_STATUS = {
    "INTERNAL_ERROR": 500, "INVALID_STATE": 500, "DATA_LOSS": 500, "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504, "REQUEST_LIMIT_EXCEEDED": 429,
    "CANCELLED": 499, "RESOURCE_EXHAUSTED": 429, "ABORTED": 409, "RESOURCE_CONFLICT": 409,
    "ALREADY_EXISTS": 409, "NOT_FOUND": 404, "ENDPOINT_NOT_FOUND": 404, "RESOURCE_DOES_NOT_EXIST": 404,
    "PERMISSION_DENIED": 403, "CUSTOMER_UNAUTHORIZED": 401, "UNAUTHENTICATED": 401, "BAD_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400, "INVALID_PARAMETER_VALUE": 400,
}


def status_for(error_code: str) -> int:
    """The HTTP status of a gitexp/MLflow error code (500 for a code MLflow does not map)."""
    return HTTP_STATUS.get(error_code, 500)


class JSON(Response):
    """The JSON response every route returns (compact, never a bare NaN)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (stored before gitexp refused them, or echoed from a request): JSON's
            # \uXXXX escape carries it, and every client still reads the response.
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def error(code: str, message: str, status: int | None = None) -> JSON:
    """MLflow's error body, ``{"error_code": ..., "message": ...}``, with the code's status."""
    return JSON({"error_code": code, "message": message}, status_code=status or status_for(code))
