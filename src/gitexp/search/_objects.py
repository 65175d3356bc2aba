"""Searching entities held in memory: registered models, model versions, logged models.

The filter and order_by strings go through the one grammar (``_filter``, with the
schemas ``REGISTERED_MODELS``, ``MODEL_VERSIONS``, ``LOGGED_MODELS``); this module
maps its keys to entity attributes, evaluates clauses with the same SQL semantics as
experiments (``_filter.compare``: a missing value never matches, LIKE is
case-sensitive, ILIKE folds ASCII as SQLite does), sorts (MLflow's tie-breakers,
None first ascending) and pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from ..entities import PagedList
from ..exceptions import SearchError
from ._filter import (
    LOGGED_MODELS,
    MODEL_VERSIONS,
    REGISTERED_MODELS,
    Clause,
    Schema,
    compare,
    parse_filter,
    parse_order_by,
)

MODELS_MAX_RESULTS_THRESHOLD = 1000
VERSIONS_MAX_RESULTS_THRESHOLD = 200_000
LOGGED_MODELS_MAX_RESULTS_DEFAULT = 50
LOGGED_MODELS_MAX_RESULTS_THRESHOLD = 10_000

_IS_PROMPT = "mlflow.prompt.is_prompt"

# Filter/order keys whose entity attribute has another name.
_ATTRIBUTES = {"source_path": "source", "version_number": "version", "timestamp": "last_updated_timestamp"}


def _attribute(key: str) -> str:
    return _ATTRIBUTES.get(key, key)


def _matches(obj: Any, clauses: Sequence[Clause]) -> bool:
    for clause in clauses:
        if clause.entity == "tag":
            lhs = obj.tags.get(clause.key)
            if lhs is None and clause.key == _IS_PROMPT:
                # As MLflow: models without the tag are not prompts. The mlflow client adds
                # "tags.`mlflow.prompt.is_prompt` != 'true'" to every search of a server.
                if (clause.op, clause.value) in (("!=", "true"), ("=", "false")):
                    continue
                return False
        else:
            lhs = getattr(obj, _attribute(clause.key))
        if not compare(clause.op, lhs, clause.value):
            return False
    return True


def _order(order_by: Sequence[str] | None, schema: Schema) -> list[tuple[str, bool]]:
    """[(entity attribute, ascending)]; two entries naming one attribute are an error (as MLflow)."""
    keys: list[tuple[str, bool]] = []
    for key in parse_order_by(list(order_by or []), schema):
        attribute = _attribute(key.key)
        if any(attribute == seen for seen, _ in keys):
            raise SearchError(f"`order_by` contains duplicate fields: {list(order_by or [])}")
        keys.append((attribute, key.ascending))
    return keys


class _Desc:
    """Reverses the order of any comparable value (None sorts first ascending, last descending)."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.v < self.v)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.v == other.v


def _sort(items: list[Any], keys: Sequence[tuple[Any, bool]]) -> list[Any]:
    """Sorted by attribute names (or functions of an item), None first ascending."""
    def key(obj: Any) -> tuple[Any, ...]:
        out = []
        for attr, ascending in keys:
            v = attr(obj) if callable(attr) else getattr(obj, attr)
            v = (v is not None, v if v is not None else 0)
            out.append(v if ascending else _Desc(v))
        return tuple(out)

    return sorted(items, key=key)


def _max_results(max_results: Any, threshold: int, what: str) -> int:
    if not isinstance(max_results, int) or isinstance(max_results, bool) or max_results < 1:
        raise SearchError(f"Invalid value for max_results: it must be a positive integer, got {max_results!r}")
    if max_results > threshold:
        raise SearchError(f"Invalid value for max_results: searching {what} returns at most {threshold} "
                          f"per page, got {max_results}; page with page_token instead")
    return max_results


def _page(items: list[Any], max_results: int, page_token: str | None) -> PagedList[Any]:
    start = 0
    if page_token:
        try:
            start = int(page_token)
            if start < 0:
                raise ValueError
        except (TypeError, ValueError):
            raise SearchError(f"Invalid page token {page_token!r}: pass the token of the previous page") from None
    end = start + max_results
    return PagedList(items[start:end], str(end) if end < len(items) else None)


def search_registered_models(models: list[Any], filter_string: str | None, max_results: Any,
                             order_by: Sequence[str] | None, page_token: str | None) -> PagedList[Any]:
    max_results = _max_results(max_results, MODELS_MAX_RESULTS_THRESHOLD, "registered models")
    clauses = parse_filter(filter_string, REGISTERED_MODELS)
    keys = _order(order_by, REGISTERED_MODELS)
    if not any(a == "name" for a, _ in keys):
        keys.append(("name", True))
    found = _sort([m for m in models if _matches(m, clauses)], keys)
    return _page(found, max_results, page_token)


def search_model_versions(versions: list[Any], filter_string: str | None, max_results: Any,
                          order_by: Sequence[str] | None, page_token: str | None) -> PagedList[Any]:
    max_results = _max_results(max_results, VERSIONS_MAX_RESULTS_THRESHOLD, "model versions")
    clauses = parse_filter(filter_string, MODEL_VERSIONS)
    keys = _order(order_by or ["last_updated_timestamp DESC", "name ASC", "version_number DESC"], MODEL_VERSIONS)
    if not any(a == "name" for a, _ in keys):
        keys.append(("name", True))
    if not any(a == "version" for a, _ in keys):
        keys.append(("version", False))
    found = _sort([v for v in versions if _matches(v, clauses)], keys)
    return _page(found, max_results, page_token)


def _on_datasets(metric: Any, datasets: Sequence[dict[str, Any]]) -> bool:
    return any(metric.dataset_name == d.get("dataset_name")
               and (not d.get("dataset_digest") or metric.dataset_digest == d.get("dataset_digest"))
               for d in datasets)


def _model_metric(model: Any, key: str, datasets: Sequence[dict[str, Any]]) -> list[Any]:
    return [m for m in model.metrics if m.key == key and (not datasets or _on_datasets(m, datasets))]


def _model_matches(model: Any, clauses: Sequence[Clause], datasets: Sequence[dict[str, Any]]) -> bool:
    """MLflow's SQL store: a metric clause matches when any point of that metric (on one of the
    datasets, when given) compares true; with datasets and no metric clause, a model matches when it
    has any metric on one of them."""
    if datasets and not any(c.entity == "metric" for c in clauses):
        if not any(_on_datasets(m, datasets) for m in model.metrics):
            return False
    for clause in clauses:
        if clause.entity == "metric":
            if not any(compare(clause.op, m.value, clause.value) for m in _model_metric(model, clause.key, datasets)):
                return False
        elif clause.entity == "param":
            if not compare(clause.op, model.params.get(clause.key), clause.value):
                return False
        elif not _matches(model, [clause]):
            return False
    return True


def search_logged_models(models: list[Any], filter_string: str | None, max_results: Any,
                         order_by: Sequence[Any] | None, page_token: str | None,
                         datasets: Sequence[dict[str, Any]] | None = None) -> PagedList[Any]:
    """MLflow's search_logged_models over folded models; order_by items are field names or
    ``{"field_name": ..., "ascending": ..., "dataset_name": ..., "dataset_digest": ...}`` dicts
    (MLflow's form); ``datasets`` ([{"dataset_name", "dataset_digest"?}]) restricts metric clauses
    to points on those datasets, as MLflow's SQL store does."""
    max_results = _max_results(LOGGED_MODELS_MAX_RESULTS_DEFAULT if max_results is None else max_results,
                                    LOGGED_MODELS_MAX_RESULTS_THRESHOLD, "logged models")
    clauses = parse_filter(filter_string, LOGGED_MODELS)
    wanted = list(datasets or [])
    found = [m for m in models if _model_matches(m, clauses, wanted)]
    sort_keys: list[tuple[Any, bool]] = []
    for item in order_by or []:
        spec = {"field_name": item} if isinstance(item, str) else dict(item)
        (key,) = parse_order_by([cast(str, spec.get("field_name"))], LOGGED_MODELS)  # a non-string: an error
        ascending = bool(spec.get("ascending", True)) and key.ascending
        if key.entity == "metric":
            on = [{"dataset_name": spec["dataset_name"], "dataset_digest": spec.get("dataset_digest")}] \
                if spec.get("dataset_name") else []

            def latest(model: Any, k: str = key.key, on: list[dict[str, Any]] = on) -> Any:
                points = _model_metric(model, k, on)
                return max(points, key=lambda p: (p.timestamp, p.step)).value if points else None
            sort_keys.append((latest, ascending))
        else:
            sort_keys.append((_attribute(key.key), ascending))
    if not sort_keys:
        sort_keys = [("creation_timestamp", False)]
    sort_keys.append(("model_id", True))
    return _page(_sort(found, sort_keys), max_results, page_token)
