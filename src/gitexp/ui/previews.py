"""Artifact previews: what kind of file this is and what the browser is shown.

The browser never receives an artifact as active content in this origin: text
is shown escaped inside the page, images go through ``<img>``, HTML only in a
sandboxed frame, and the raw endpoint sends ``Content-Security-Policy: sandbox``.
"""

from __future__ import annotations

import csv
import io
import json
import mimetypes
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT_PREVIEW = 512 * 1024
MAX_TABLE_ROWS = 200
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".bmp": "image/bmp", ".svg": "image/svg+xml", ".ico": "image/x-icon"}
TEXT_NAMES = {"MLmodel", "requirements.txt", "conda.yaml", "python_env.yaml", "Dockerfile", "Makefile",
              "LICENSE", "README"}
TEXT_EXTENSIONS = {".txt", ".log", ".md", ".rst", ".py", ".yaml", ".yml", ".json", ".csv", ".tsv", ".ini",
                   ".toml", ".cfg", ".conf", ".sh", ".patch", ".diff", ".xml", ".js", ".ts", ".sql", ".r",
                   ".ipynb", ".jsonl", ".properties", ".tex", ".c", ".h", ".cpp", ".java", ".go", ".rs"}
HTML_EXTENSIONS = {".html", ".htm"}


@dataclass
class Preview:
    kind: str                      # image, text, json, table, mlmodel, html, binary, too_large
    path: str
    size: int | None
    text: str | None = None
    truncated: bool = False
    rows: list[list[str]] = field(default_factory=list)
    model: dict[str, Any] | None = None


def extension(path: str) -> str:
    return posixpath.splitext(path)[1].lower()


def content_type(path: str) -> str:
    """The type the raw endpoint declares: text as text/plain, never text/html or a script type."""
    ext = extension(path)
    if ext in IMAGE_TYPES:
        return IMAGE_TYPES[ext]
    if ext in HTML_EXTENSIONS:
        return "text/html; charset=utf-8"  # served only with a sandbox CSP
    if ext in TEXT_EXTENSIONS or posixpath.basename(path) in TEXT_NAMES:
        return "text/plain; charset=utf-8"
    guessed = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if guessed.startswith("text/") or "javascript" in guessed or "xml" in guessed:
        return "text/plain; charset=utf-8"
    return guessed


def kind_of(path: str) -> str:
    ext = extension(path)
    name = posixpath.basename(path)
    if name == "MLmodel":
        return "mlmodel"
    if ext in IMAGE_TYPES:
        return "image"
    if ext in HTML_EXTENSIONS:
        return "html"
    if ext == ".json":
        return "json"
    if ext in (".csv", ".tsv"):
        return "table"
    if ext in TEXT_EXTENSIONS or name in TEXT_NAMES:
        return "text"
    return "unknown"


def looks_like_text(data: bytes) -> bool:
    head = data[:8192]
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a character cut at the 8 KiB boundary
    return True


def build_preview(path: str, size: int | None, read: Callable[[], bytes]) -> Preview:
    """A preview of one artifact file; `read()` returns its bytes (called only when needed)."""
    kind = kind_of(path)
    if kind in ("image", "html"):
        return Preview(kind, path, size)
    if size is not None and size > MAX_TEXT_PREVIEW * 8 and kind != "mlmodel":
        return Preview("too_large", path, size)
    data: bytes = read()
    if kind == "unknown" and not looks_like_text(data):
        return Preview("binary", path, size)
    truncated = len(data) > MAX_TEXT_PREVIEW
    text = data[:MAX_TEXT_PREVIEW].decode("utf-8", "replace")
    if kind == "mlmodel":
        return Preview("mlmodel", path, size, text=text, model=parse_mlmodel(data))
    if kind == "json" and not truncated:
        try:
            return Preview("json", path, size, text=json.dumps(json.loads(data), indent=2, ensure_ascii=False))
        except ValueError:
            pass
    if kind == "table":
        delimiter = "\t" if extension(path) == ".tsv" else ","
        rows = []
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        try:
            for row in reader:
                rows.append(row)
                if len(rows) > MAX_TABLE_ROWS:
                    break
        except csv.Error:
            rows = []
        if rows:
            return Preview("table", path, size, text=text, rows=rows[:MAX_TABLE_ROWS + 1],
                           truncated=truncated or len(rows) > MAX_TABLE_ROWS)
    return Preview("text", path, size, text=text, truncated=truncated)


def parse_mlmodel(data: bytes) -> dict[str, Any] | None:
    """The parts of an MLmodel file a person looks at: flavors, signature, when, which run."""
    import yaml

    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError:
        return None
    if not isinstance(doc, dict):
        return None
    flavors: dict[str, Any] = doc["flavors"] if isinstance(doc.get("flavors"), dict) else {}
    signature: dict[str, Any] = doc["signature"] if isinstance(doc.get("signature"), dict) else {}

    def columns(raw: Any) -> list[dict[str, str]]:
        if not isinstance(raw, str):
            return []
        try:
            spec = json.loads(raw)
        except ValueError:
            return []
        out = []
        for col in spec if isinstance(spec, list) else []:
            if isinstance(col, dict):
                shape = col.get("tensor-spec", {}).get("shape") if isinstance(col.get("tensor-spec"), dict) else None
                dtype = col.get("type")
                if dtype == "tensor" and isinstance(col.get("tensor-spec"), dict):
                    dtype = f"tensor {col['tensor-spec'].get('dtype')}"
                out.append({"name": str(col.get("name", "-")), "type": str(dtype),
                            "shape": "" if shape is None else str(shape),
                            "required": "" if col.get("required", True) else "optional"})
        return out

    return {
        "flavors": {str(k): v for k, v in flavors.items()},
        "loader_module": (flavors.get("python_function") or {}).get("loader_module")
        if isinstance(flavors.get("python_function"), dict) else None,
        "run_id": doc.get("run_id"),
        "artifact_path": doc.get("artifact_path"),
        "model_uuid": doc.get("model_uuid"),
        "utc_time_created": doc.get("utc_time_created"),
        "inputs": columns(signature.get("inputs")),
        "outputs": columns(signature.get("outputs")),
        "has_signature": bool(signature),
        "input_example": doc.get("saved_input_example_info"),
    }
