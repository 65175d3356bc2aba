"""Searching the model registry: MLflow's filter grammar for models and versions, order_by, pages.

    name = 'churn'   name LIKE 'churn-%'   name IN ('a', 'b')   tags.team = 'ml'
    tags.`release note` ILIKE '%fix%'   run_id = '1a2b...'   version_number >= 3
    source_path = 'runs:/1a2b/model'    ... AND ...

Clauses are joined by AND only (as in MLflow).  LIKE is case-sensitive, ILIKE not;
``%`` matches any run of characters, ``_`` one character.  A tag clause never
matches an object without that tag, whatever the comparator.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from .entities import PagedList
from .entities.model_registry import ModelVersion, RegisteredModel
from .exceptions import SearchError

MODELS_MAX_RESULTS_DEFAULT = 100
MODELS_MAX_RESULTS_THRESHOLD = 1000
VERSIONS_MAX_RESULTS_DEFAULT = 10_000
VERSIONS_MAX_RESULTS_THRESHOLD = 200_000

_STRING_COMPARATORS = ("=", "!=", "LIKE", "ILIKE")
_IS_PROMPT = "mlflow.prompt.is_prompt"
_NUMERIC_COMPARATORS = ("=", "!=", "<", "<=", ">", ">=")


class _Kind:
    def __init__(self, what: str, strings: dict[str, str], numeric: dict[str, str], lists: set[str],
                 order_keys: dict[str, str]):
        self.what = what
        self.strings = strings      # filter key -> entity attribute
        self.numeric = numeric
        self.lists = lists          # keys that take IN / NOT IN
        self.order_keys = order_keys


MODELS = _Kind("registered models", {"name": "name"}, {}, {"name"},
               {"name": "name", "timestamp": "last_updated_timestamp",
                "last_updated_timestamp": "last_updated_timestamp", "creation_timestamp": "creation_timestamp"})
VERSIONS = _Kind("model versions", {"name": "name", "run_id": "run_id", "source_path": "source"},
                 {"version_number": "version"}, {"name", "run_id"},
                 {"name": "name", "version_number": "version", "creation_timestamp": "creation_timestamp",
                  "last_updated_timestamp": "last_updated_timestamp"})

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>'(?:[^'\\]|\\.|'')*')
    | (?P<dquoted>"(?:[^"\\]|\\.)*")
    | (?P<backtick>`[^`]*`)
    | (?P<number>-?\d+(?:\.\d+)?)(?![\w.])
    | (?P<op>!=|<>|<=|>=|=|<|>)
    | (?P<paren>[(),])
    | (?P<word>[A-Za-z_]\w*(?:\.(?:`[^`]*`|"[^"]*"|\w+))*)
    )""", re.VERBOSE)


class Clause:
    __slots__ = ("kind", "key", "comparator", "value")

    def __init__(self, kind: str, key: str, comparator: str, value: Any):
        self.kind = kind            # "attribute" or "tag"
        self.key = key
        self.comparator = comparator
        self.value = value

    def __repr__(self) -> str:
        return f"Clause({self.kind}.{self.key} {self.comparator} {self.value!r})"


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise SearchError(
                f"Cannot parse the filter {text!r} at {text[pos:pos + 20]!r}: expected a key such as "
                "name or tags.<key>, a comparator, or a quoted value", filter_string=text)
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _unquote(token: str) -> str:
    if token[0] == "'":
        return re.sub(r"\\(.)|''", lambda m: m.group(1) or "'", token[1:-1])
    if token[0] == '"':
        return re.sub(r"\\(.)", lambda m: m.group(1), token[1:-1])
    if token[0] == "`":
        return token[1:-1]
    return token


def _identifier(token: tuple[str, str], kind: _Kind, text: str) -> tuple[str, str]:
    ttype, value = token
    if ttype in ("backtick", "dquoted"):
        value = _unquote(value)
    elif ttype != "word":
        raise SearchError(f"Expected a key (name, tags.<key>...) in filter {text!r}, got {value!r}",
                          filter_string=text)
    prefix, dot, rest = value.partition(".")
    if dot and prefix.lower() in ("tag", "tags"):
        return "tag", _unquote(rest) if rest[:1] in "`\"" else rest
    if dot and prefix.lower() == "attribute":
        value = _unquote(rest) if rest[:1] in "`\"" else rest
    elif dot:
        raise SearchError(
            f"Invalid entity type {prefix!r} in filter {text!r}. Valid entity types are "
            "'attribute', 'tag' and 'tags'", filter_string=text)
    if value not in kind.strings and value not in kind.numeric:
        valid = sorted(set(kind.strings) | set(kind.numeric))
        raise SearchError(
            f"Invalid attribute key {value!r} in filter {text!r}. Valid keys for {kind.what} are "
            f"{valid} and tags.<key>", filter_string=text)
    return "attribute", value


def parse_filter(filter_string: str | None, kind: _Kind) -> list[Clause]:
    """Parse an MLflow registry filter into clauses; errors name the offending part."""
    if not filter_string or not filter_string.strip():
        return []
    text = filter_string
    tokens = _tokens(text)
    clauses = []
    i = 0
    while True:
        if i >= len(tokens):
            raise SearchError(f"Filter {text!r} ends where a comparison was expected", filter_string=text)
        ident_kind, key = _identifier(tokens[i], kind, text)
        i += 1
        if i >= len(tokens):
            raise SearchError(f"Filter {text!r} has no comparator after {key!r}", filter_string=text)
        ttype, comp = tokens[i]
        comparator = comp.upper() if ttype in ("op", "word") else ""
        if comparator == "<>":
            comparator = "!="
        if comparator == "NOT" and i + 1 < len(tokens) and tokens[i + 1][1].upper() == "IN":
            comparator = "NOT IN"
            i += 1
        if comparator not in ("=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN"):
            raise SearchError(f"Invalid comparator {comp!r} in filter {text!r}; use =, !=, LIKE, ILIKE, "
                              "IN, NOT IN (and <, <=, >, >= for version_number)", filter_string=text)
        i += 1
        if i >= len(tokens):
            raise SearchError(f"Filter {text!r} has no value after {key} {comparator}", filter_string=text)
        value, i = _value(tokens, i, text)
        clauses.append(_check(Clause(ident_kind, key, comparator, value), kind, text))
        if i >= len(tokens):
            return clauses
        if tokens[i][0] != "word" or tokens[i][1].upper() != "AND":
            raise SearchError(
                f"Invalid clause(s) in filter string {text!r} at {tokens[i][1]!r}: only AND may join "
                "comparisons (OR is not supported by MLflow's registry search)", filter_string=text)
        i += 1


def _value(tokens: list[tuple[str, str]], i: int, text: str) -> tuple[Any, int]:
    ttype, raw = tokens[i]
    if ttype in ("string", "dquoted"):
        return _unquote(raw), i + 1
    if ttype == "number":
        return (float(raw) if "." in raw else int(raw)), i + 1
    if ttype == "paren" and raw == "(":
        items: list[str] = []
        i += 1
        if i < len(tokens) and tokens[i] == ("paren", ")"):
            return items, i + 1
        while True:
            if i >= len(tokens) or tokens[i][0] not in ("string", "dquoted"):
                got = tokens[i][1] if i < len(tokens) else "the end"
                raise SearchError(f"Expected a quoted string in the list of filter {text!r}, got {got!r}",
                                  filter_string=text)
            items.append(_unquote(tokens[i][1]))
            i += 1
            if i < len(tokens) and tokens[i] == ("paren", ","):
                i += 1
            elif i < len(tokens) and tokens[i] == ("paren", ")"):
                return items, i + 1
            else:
                raise SearchError(f"Expected ',' or ')' in the list of filter {text!r}", filter_string=text)
    raise SearchError(
        f"Expected a quoted value in filter {text!r}, got {raw!r}; quote strings with single quotes, "
        "e.g. name = 'my-model'", filter_string=text)


def _check(c: Clause, kind: _Kind, text: str) -> Clause:
    if c.kind == "tag":
        if c.comparator not in _STRING_COMPARATORS:
            raise SearchError(f"Invalid comparator {c.comparator!r} for tag {c.key!r} in filter {text!r}; "
                              f"use one of {list(_STRING_COMPARATORS)}", filter_string=text)
        if not isinstance(c.value, str):
            raise SearchError(f"Expected a quoted string value for tag {c.key!r} (e.g. 'my-value'), got "
                              f"{c.value!r}", filter_string=text)
        return c
    if c.key in kind.numeric:
        if c.comparator not in _NUMERIC_COMPARATORS:
            raise SearchError(f"Invalid comparator {c.comparator!r} for {c.key} in filter {text!r}; use one "
                              f"of {list(_NUMERIC_COMPARATORS)}", filter_string=text)
        try:
            if isinstance(c.value, float):
                raise ValueError
            c.value = int(c.value)
        except (TypeError, ValueError):
            raise SearchError(f"Invalid value for numeric attribute {c.key!r}: {c.value!r} (expected an "
                              "integer)", filter_string=text) from None
        return c
    allowed = _STRING_COMPARATORS + (("IN", "NOT IN") if c.key in kind.lists else ())
    if c.comparator not in allowed:
        raise SearchError(f"Invalid comparator {c.comparator!r} for attribute {c.key!r} in filter {text!r}; "
                          f"use one of {list(allowed)}", filter_string=text)
    if c.comparator in ("IN", "NOT IN"):
        if not isinstance(c.value, list):
            raise SearchError(f"{c.key} {c.comparator} needs a list like ('a', 'b'), got {c.value!r}",
                              filter_string=text)
    elif not isinstance(c.value, str):
        raise SearchError(f"Expected a quoted string value for attribute {c.key!r}, got {c.value!r}",
                          filter_string=text)
    return c


def _like_regex(pattern: str, flags: int = 0) -> re.Pattern:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile(f"{regex}\\Z", flags | re.DOTALL)


def _compare(lhs: Any, comparator: str, value: Any) -> bool:
    if lhs is None:
        return False
    if comparator == "=":
        return lhs == value
    if comparator == "!=":
        return lhs != value
    if comparator == "<":
        return lhs < value
    if comparator == "<=":
        return lhs <= value
    if comparator == ">":
        return lhs > value
    if comparator == ">=":
        return lhs >= value
    if comparator == "LIKE":
        return _like_regex(value).match(lhs) is not None
    if comparator == "ILIKE":
        return _like_regex(value, re.IGNORECASE).match(lhs) is not None
    if comparator == "IN":
        return lhs in value
    if comparator == "NOT IN":
        return lhs not in value
    raise SearchError(f"Unknown comparator {comparator!r}")


def matches(obj: Any, clauses: Sequence[Clause], kind: _Kind) -> bool:
    for c in clauses:
        if c.kind == "tag":
            lhs = obj.tags.get(c.key)
            if lhs is None and c.key == _IS_PROMPT:
                # As MLflow: models without the tag are not prompts. The mlflow client adds
                # "tags.`mlflow.prompt.is_prompt` != 'true'" to every search of a server.
                if (c.comparator, c.value) in (("!=", "true"), ("=", "false")):
                    continue
                return False
        else:
            lhs = getattr(obj, kind.strings.get(c.key) or kind.numeric[c.key])
        if not _compare(lhs, c.comparator, c.value):
            return False
    return True


def parse_order_by(order_by: Sequence[str] | None, kind: _Kind) -> list[tuple[str, bool]]:
    """[(entity attribute, ascending)] from clauses like 'name ASC', '`version_number` DESC'."""
    out: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for clause in order_by or []:
        if not isinstance(clause, str) or not clause.strip():
            raise SearchError(f"Invalid order_by clause {clause!r}: expected 'KEY [ASC|DESC]'")
        parts = clause.strip().replace("`", "").split()
        ascending = True
        if len(parts) == 2 and parts[1].upper() in ("ASC", "DESC"):
            ascending = parts[1].upper() == "ASC"
        elif len(parts) != 1:
            raise SearchError(f"Invalid order_by clause {clause!r}: expected 'KEY [ASC|DESC]'")
        key = parts[0]
        if key.startswith("attribute."):
            key = key[len("attribute."):]
        if key not in kind.order_keys:
            raise SearchError(f"Invalid order by key {key!r} specified for {kind.what}. Valid keys are "
                              f"{sorted(kind.order_keys)}")
        attr = kind.order_keys[key]
        if attr in seen:
            raise SearchError(f"`order_by` contains duplicate fields: {list(order_by or [])}")
        seen.add(attr)
        out.append((attr, ascending))
    return out


class _Desc:
    """Reverses the order of any comparable value (None sorts first ascending, last descending)."""

    __slots__ = ("v",)

    def __init__(self, v: Any):
        self.v = v

    def __lt__(self, other: "_Desc") -> bool:
        return other.v < self.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.v == other.v


def _sort(items: list, keys: list[tuple[str, bool]]) -> list:
    def key(obj: Any) -> tuple:
        out = []
        for attr, ascending in keys:
            v = getattr(obj, attr)
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


def _page(items: list, max_results: int, page_token: str | None) -> PagedList:
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


def search_registered_models(models: list[RegisteredModel], filter_string: str | None, max_results: Any,
                             order_by: Sequence[str] | None, page_token: str | None) -> PagedList:
    max_results = _max_results(max_results, MODELS_MAX_RESULTS_THRESHOLD, "registered models")
    clauses = parse_filter(filter_string, MODELS)
    keys = parse_order_by(order_by, MODELS)
    if not any(a == "name" for a, _ in keys):
        keys.append(("name", True))
    found = _sort([m for m in models if matches(m, clauses, MODELS)], keys)
    return _page(found, max_results, page_token)


def search_model_versions(versions: list[ModelVersion], filter_string: str | None, max_results: Any,
                          order_by: Sequence[str] | None, page_token: str | None) -> PagedList:
    max_results = _max_results(max_results, VERSIONS_MAX_RESULTS_THRESHOLD, "model versions")
    clauses = parse_filter(filter_string, VERSIONS)
    keys = parse_order_by(order_by or ["last_updated_timestamp DESC", "name ASC", "version_number DESC"],
                          VERSIONS)
    if not any(a == "name" for a, _ in keys):
        keys.append(("name", True))
    if not any(a == "version" for a, _ in keys):
        keys.append(("version", False))
    found = _sort([v for v in versions if matches(v, clauses, VERSIONS)], keys)
    return _page(found, max_results, page_token)

