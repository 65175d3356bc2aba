"""The JSON response every route returns (compact, never a bare NaN)."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (stored before gitexp refused them, or echoed from a request): JSON's
            # \uXXXX escape carries it, and every client still reads the response.
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
