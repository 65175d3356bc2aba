"""The runs table: columns, sorting, and nested runs grouped under their parent.

A page is one ``Client.search_runs`` call (filter, order_by, page token), so a
page costs the same at 100 runs as at 100,000.  Nesting works inside a page, as
in MLflow's UI: a run whose parent is on the same page is listed under it
(collapsed); a child whose parent is elsewhere is shown at the top level with a
link to its parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..entities import Run
from ..search._filter import quote_key

PARENT_TAG = "mlflow.parentRunId"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
DEFAULT_VISIBLE = 8  # metrics and params shown when no column was chosen

# Attribute columns: (label, order_by key or None when not sortable)
ATTRIBUTES = [
    ("Run name", "attributes.run_name"),
    ("Created", "attributes.start_time"),
    ("Duration", None),
    ("Status", "attributes.status"),
    ("User", "attributes.user_id"),
    ("Version", None),
    ("Models", None),
]
GROUP_PREFIX = {"metrics": "metrics", "params": "params", "tags": "tags"}


@dataclass(frozen=True)
class Column:
    group: str     # "metrics", "params" or "tags"
    key: str

    @property
    def id(self) -> str:
        return f"{self.group}.{self.key}"

    @property
    def order_key(self) -> str:
        return f"{self.group}.{quote_key(self.key)}"

    def value(self, run: Run) -> Any:
        data = run.data
        return {"metrics": data.metrics, "params": data.params, "tags": data.tags}[self.group].get(self.key)


def parse_column(text: str) -> Column | None:
    group, sep, key = text.partition(".")
    if not sep or group not in GROUP_PREFIX or not key:
        return None
    return Column(group, key)


def default_columns(keys: dict[str, list[str]]) -> list[Column]:
    cols = [Column("metrics", k) for k in keys.get("metrics", [])[:DEFAULT_VISIBLE]]
    cols += [Column("params", k) for k in keys.get("params", [])[:DEFAULT_VISIBLE]]
    return cols


@dataclass
class Row:
    run: Run
    depth: int = 0
    children: list[Row] = field(default_factory=list)
    parent_id: str | None = None
    parent_on_page: bool = False

    @property
    def run_id(self) -> str:
        run_id: str = self.run.info.run_id
        return run_id


def group_rows(runs: list[Run], nested: bool = True) -> list[Row]:
    """Rows in page order; with `nested`, children follow their parent (if it is on the page)."""
    rows = {r.info.run_id: Row(r, parent_id=r.data.tags.get(PARENT_TAG)) for r in runs}
    if not nested:
        return list(rows.values())
    top: list[Row] = []
    for row in rows.values():
        parent = rows.get(row.parent_id) if row.parent_id else None
        if parent is not None and parent is not row and not _is_ancestor(rows, row, parent):
            parent.children.append(row)
            row.parent_on_page = True
        else:
            top.append(row)
    out: list[Row] = []

    def walk(row: Row, depth: int) -> None:
        row.depth = depth
        out.append(row)
        for child in row.children:
            walk(child, depth + 1)

    for row in top:
        walk(row, 0)
    return out


def _is_ancestor(rows: dict[str, Row], row: Row, candidate: Row) -> bool:
    """True when `row` is an ancestor of `candidate` (a parent-tag cycle): never nest into a loop."""
    seen = set()
    current: Row | None = candidate
    while current is not None and current.run_id not in seen:
        if current is row:
            return True
        seen.add(current.run_id)
        current = rows.get(current.parent_id) if current.parent_id else None
    return False


def next_order(current: str | None, key: str) -> str:
    """Clicking a header: sort by it descending first (best metric on top), then ascending."""
    if current:
        parts = current.rsplit(" ", 1)
        cur_key, direction = (parts[0], parts[1].upper()) if len(parts) == 2 and parts[1].upper() in (
            "ASC", "DESC") else (current, "ASC")
        if cur_key == key:
            return f"{key} {'ASC' if direction == 'DESC' else 'DESC'}"
    return f"{key} DESC"


def sort_state(current: str | None, key: str) -> str | None:
    if not current:
        return None
    parts = current.rsplit(" ", 1)
    cur_key = parts[0] if len(parts) == 2 and parts[1].upper() in ("ASC", "DESC") else current
    if cur_key != key:
        return None
    return "desc" if len(parts) == 2 and parts[1].upper() == "DESC" else "asc"


def models_of(run: Run) -> list[str]:
    """Artifact paths of models logged in a run (from MLflow's mlflow.log-model.history tag)."""
    import json

    raw = run.data.tags.get("mlflow.log-model.history")
    if not raw:
        return []
    try:
        entries = json.loads(raw)
    except ValueError:
        return []
    out = []
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, dict) and isinstance(e.get("artifact_path"), str) and e["artifact_path"] not in out:
            out.append(e["artifact_path"])
    return out
