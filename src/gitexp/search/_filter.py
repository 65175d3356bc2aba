"""MLflow's search filter and order_by grammar: parsing, typing rules, errors.

One tokenizer and one parser for every search: runs, experiments, registered
models, model versions and logged models.  What differs between them is data,
a :class:`Schema` per entity kind.

    filter     := clause (AND clause)*
    clause     := identifier comparator value | identifier IS [NOT] NULL
    identifier := [entity "."] key
    entity     := metric(s) | param(s) | parameter(s) | tag(s)
                | attribute(s) | attr | run | dataset(s)      (runs; the other
                  schemas allow a subset, e.g. attribute | tag | tags)
    key        := bare word (letters, digits, _ and .) | `back ticked` | "double quoted"
    value      := number | 'string' | "string" | ( 'string', ... )
    order_by   := identifier [ASC | DESC]

Which comparators and which value types an identifier takes depends on what it
names (a :class:`Schema`): metrics compare numbers; params and tags compare
quoted strings and may be tested with IS NULL; a few attributes take lists.
Everything wrong is reported as a :class:`SearchError` naming the position
and the token, with a caret under it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from ..exceptions import SearchError

Value = int | float | str | tuple[str, ...] | None

# Comparator sets by value type.
NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE")
LIST_OPS = STRING_OPS + ("IN", "NOT IN")
NULLABLE_OPS = STRING_OPS + ("IS NULL", "IS NOT NULL")
ID_OPS = ("=", "!=", "IN", "NOT IN")

_OPS_BY_TYPE = {
    "number": NUMBER_OPS,      # a number; ints and floats
    "int": NUMBER_OPS,         # a whole number (experiment times)
    "string": STRING_OPS,      # a quoted string
    "list": LIST_OPS,          # a quoted string, or a list of them for IN
    "nullable": NULLABLE_OPS,  # a quoted string; IS [NOT] NULL
    "id": ID_OPS,              # equality or membership only
}


@dataclass(frozen=True)
class Schema:
    """What a filter may name: entities, their keys and each key's value type."""

    what: str                                   # "runs" or "experiments", for messages
    entities: dict[str, str]                    # spelling -> canonical entity
    free_keys: dict[str, str]                   # entity whose keys are free text -> value type
    fixed_keys: dict[str, dict[str, str]]       # entity -> key -> value type
    key_aliases: dict[str, dict[str, str]]      # entity -> alias -> key
    orderable: dict[str, tuple[str, ...] | None]  # entity -> orderable keys (None: any)
    hints: dict[str, str]                       # unsupported key -> what to do instead
    implicit_entity: str = "attribute"
    example: str = "name"                       # an identifier for "expected an identifier such as ..."
    quoted_numbers: bool = False                # numbers may be quoted: version_number = '3' (MLflow int()s it)
    backslash_escapes: bool = False             # in values, \x is x ('C:\\dir' is C:\dir); else only \' and ''
    prefixed_attributes: bool = False           # messages name attributes with their prefix (runs)

    @property
    def singular(self) -> str:
        return self.what[:-1]


RUNS = Schema(
    what="runs",
    entities={
        "metric": "metric", "metrics": "metric",
        "param": "param", "params": "param", "parameter": "param", "parameters": "param",
        "tag": "tag", "tags": "tag",
        "attribute": "attribute", "attributes": "attribute", "attr": "attribute", "run": "attribute",
        "dataset": "dataset", "datasets": "dataset",
    },
    free_keys={"metric": "number", "param": "nullable", "tag": "nullable"},
    fixed_keys={
        "attribute": {
            "run_id": "list", "run_name": "string", "status": "string", "user_id": "string",
            "artifact_uri": "string", "start_time": "number", "end_time": "number",
        },
        "dataset": {"name": "list", "digest": "list", "context": "list"},
    },
    key_aliases={
        "attribute": {"created": "start_time", "Created": "start_time", "run name": "run_name",
                      "Run name": "run_name", "Run Name": "run_name"},
    },
    orderable={"metric": None, "param": None, "tag": None,
               "attribute": ("run_id", "run_name", "status", "user_id", "artifact_uri", "start_time", "end_time")},
    example="metrics.rmse",
    prefixed_attributes=True,
    hints={
        "lifecycle_stage": "Choose deleted or active runs with run_view_type (ViewType.DELETED_ONLY, ViewType.ALL).",
        "experiment_id": "Choose experiments with the experiment_ids (or experiment_names) argument.",
        "run_uuid": "Use attributes.run_id.",
    },
)

EXPERIMENTS = Schema(
    what="experiments",
    entities={"attribute": "attribute", "attributes": "attribute", "tag": "tag", "tags": "tag"},
    free_keys={"tag": "nullable"},
    fixed_keys={"attribute": {"name": "string", "experiment_id": "id",
                              "creation_time": "int", "last_update_time": "int"}},
    key_aliases={},
    orderable={"attribute": ("name", "experiment_id", "creation_time", "last_update_time")},
    hints={"lifecycle_stage": "Choose deleted or active experiments with view_type."},
)

# The registry and logged models (MLflow's SearchModelUtils, SearchModelVersionUtils,
# SearchLoggedModelsUtils): attributes and tags; tags compare strings without IS NULL;
# numeric attributes take whole numbers (the registry's also quoted ones, as MLflow).
_REGISTRY_ENTITIES = {"attribute": "attribute", "tag": "tag", "tags": "tag"}

REGISTERED_MODELS = Schema(
    what="registered models",
    entities=_REGISTRY_ENTITIES,
    free_keys={"tag": "string"},
    fixed_keys={"attribute": {"name": "list"}},
    key_aliases={},
    orderable={"attribute": ("name", "timestamp", "last_updated_timestamp", "creation_timestamp")},
    hints={},
    quoted_numbers=True,
    backslash_escapes=True,
)

MODEL_VERSIONS = Schema(
    what="model versions",
    entities=_REGISTRY_ENTITIES,
    free_keys={"tag": "string"},
    fixed_keys={"attribute": {"name": "list", "run_id": "list", "source_path": "string", "version_number": "int"}},
    key_aliases={},
    orderable={"attribute": ("name", "version_number", "creation_timestamp", "last_updated_timestamp")},
    hints={"stage": "Stages cannot be searched; get the versions of a model and look at current_stage, "
                    "or use get_latest_versions(name, stages)."},
    quoted_numbers=True,
    backslash_escapes=True,
)

_LOGGED_MODEL_KEYS = {"name": "list", "model_id": "list", "model_type": "list", "status": "list",
                      "source_run_id": "list", "creation_timestamp": "int", "last_updated_timestamp": "int"}

LOGGED_MODELS = Schema(
    what="logged models",
    entities={**_REGISTRY_ENTITIES, "metric": "metric", "metrics": "metric", "param": "param", "params": "param"},
    free_keys={"tag": "string", "metric": "number", "param": "string"},
    fixed_keys={"attribute": _LOGGED_MODEL_KEYS},
    key_aliases={"attribute": {"creation_time": "creation_timestamp"}},
    orderable={"attribute": tuple(_LOGGED_MODEL_KEYS), "metric": None},
    hints={},
    backslash_escapes=True,
)

_PREFIX = {"metric": "metrics", "param": "params", "tag": "tags", "attribute": "attributes", "dataset": "datasets"}


@dataclass(frozen=True)
class Clause:
    """One parsed comparison: ``entity.key op value``."""

    entity: str           # metric | param | tag | attribute | dataset
    key: str              # canonical key (aliases resolved)
    op: str               # upper case: =, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL
    value: Value          # float/int for numbers, str, tuple of str for IN, None for IS [NOT] NULL
    position: int = 0     # where the clause starts in the filter string

    @property
    def name(self) -> str:
        return f"{_PREFIX[self.entity]}.{quote_key(self.key)}"


@dataclass(frozen=True)
class OrderKey:
    entity: str
    key: str
    ascending: bool

    @property
    def name(self) -> str:
        return f"{_PREFIX[self.entity]}.{quote_key(self.key)}"


def quote_key(key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][\w.]*", key):
        return key
    return f"`{key}`" if "`" not in key else '"' + key.replace('"', '""') + '"'


# -- tokens ---------------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
      | (?P<word>[\w.]+)
      | (?P<backtick>`[^`]*`)
      | (?P<dquote>"(?:[^"\\]|\\.|"")*")
      | (?P<squote>'(?:[^'\\]|\\.|'')*')
      | (?P<op><=|>=|!=|<>|==|=|<|>)
      | (?P<lparen>\() | (?P<rparen>\)) | (?P<comma>,)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def _unquote(token: _Token, backslash_escapes: bool = False) -> str:
    quote = token.text[0]
    body = token.text[1:-1]
    if quote == "`":
        return body
    if backslash_escapes:
        # The registry's rule (gitexp's CLI quotes names this way): a backslash escapes any character.
        return re.sub(r"\\(.)|" + quote * 2, lambda m: quote if m.group(1) is None else m.group(1), body,
                      flags=re.DOTALL)
    # A quote inside a quoted string is written twice ('it''s') or escaped (\').
    return body.replace(quote * 2, quote).replace("\\" + quote, quote)


class _Parser:
    def __init__(self, text: str, schema: Schema, kind: str) -> None:
        self.text = text
        self.schema = schema
        self.kind = kind  # "filter" or "order_by"
        self.tokens = self._tokenize()
        self.i = 0

    # -- errors ---------------------------------------------------------------------------------------
    def error(self, message: str, token: _Token | None = None, hint: str | None = None) -> SearchError:
        if token is None:
            position, shown, width = len(self.text), "end of input", 1
        else:
            position, shown, width = token.start, repr(token.text), max(len(token.text), 1)
        single_line = "\n" not in self.text and len(self.text) <= 200
        lines = [f"Invalid {self.kind} {self.text!r}: {message} (at position {position + 1}: {shown})."]
        if single_line:
            lines += [f"    {self.text}", "    " + " " * position + "^" * width]
        if hint:
            lines.append(hint)
        field = "filter_string" if self.kind == "filter" else "order_by"
        details: dict[str, Any] = {field: self.text, "position": position,
                                   "token": None if token is None else token.text}
        return SearchError("\n".join(lines), **details)

    # -- lexing -----------------------------------------------------------------------------------------
    def _tokenize(self) -> list[_Token]:
        tokens = []
        pos = 0
        text = self.text
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                bad = _Token("bad", text[pos], pos)
                if text[pos] in "`\"'":
                    raise self.error(f"the quote {text[pos]} is never closed", bad,
                                     "Close the quote, or double a quote that is part of the value ('it''s').")
                hint = None
                if text[pos] in "-/:+*@#$%&":
                    hint = ("Keys with special characters go in back ticks, e.g. metrics.`log-loss`; "
                            "a negative number is written with its minus sign attached (-1.5).")
                raise self.error(f"unexpected character {text[pos]!r}", bad, hint)
            kind = match.lastgroup
            if kind != "ws":
                tokens.append(_Token(kind, match.group(), pos))  # type: ignore[arg-type]  # every alternative is named
            pos = match.end()
        return tokens

    def peek(self, offset: int = 0) -> _Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    # -- identifiers ---------------------------------------------------------------------------------
    def identifier(self) -> tuple[str, str, _Token]:
        """(entity, key, first token) of the identifier at the cursor."""
        first = self.peek()
        if first is None:
            raise self.error(f"expected an identifier such as {self._example_identifier()}", None)
        if first.kind not in ("word", "backtick", "dquote"):
            raise self.error(f"expected an identifier such as {self._example_identifier()}", first,
                             "Each condition starts with what it tests, e.g. metrics.rmse < 0.5.")
        if first.kind == "word" and first.upper in ("AND", "OR", "NOT") and self.kind == "filter":
            raise self.error(f"expected a condition before {first.text.upper()}", first)
        parts = [self.take()]
        while (nxt := self.peek()) is not None and nxt.start == parts[-1].end and \
                nxt.kind in ("word", "backtick", "dquote"):
            parts.append(self.take())

        head = parts[0]
        if head.kind == "word" and "." in head.text:
            entity_text, _, rest = head.text.partition(".")
            rest_parts = parts[1:]
        elif head.kind != "word" and len(parts) > 1 and parts[1].kind == "word" and parts[1].text.startswith("."):
            entity_text = _unquote(head)
            rest = parts[1].text[1:]
            rest_parts = parts[2:]
        else:
            if len(parts) > 1:
                raise self.error("unexpected text right after the identifier", parts[1],
                                 "Separate the identifier and the comparator, or quote the whole key in back ticks.")
            key = head.text if head.kind == "word" else _unquote(head)
            return self.schema.implicit_entity, self._check_key(self.schema.implicit_entity, key, head), head

        entity = self._entity(entity_text, head)
        if rest:
            if rest_parts:
                raise self.error("unexpected text after the key", rest_parts[0],
                                 f"Quote the whole key in back ticks, e.g. {_PREFIX.get(entity, entity)}.`a b`.")
            key = rest
        else:
            if not rest_parts:
                nxt = self.peek()
                if nxt is not None and nxt.kind == "squote" and nxt.start == parts[-1].end:
                    raise self.error("single quotes are for values, not keys", nxt,
                                     f"Quote the key in back ticks or double quotes, e.g. "
                                     f"{_PREFIX.get(entity, entity)}.`{_unquote(nxt)}`.")
                raise self.error(f"missing key after '{entity_text}.'", head,
                                 f"Name the key, e.g. {_PREFIX.get(entity, entity)}.rmse.")
            if rest_parts[0].kind == "word":
                raise self.error("unexpected text after the key", rest_parts[0])
            key = _unquote(rest_parts[0])
            if len(rest_parts) > 1:
                raise self.error("unexpected text after the quoted key", rest_parts[1],
                                 f"Quote the whole key, e.g. {_PREFIX.get(entity, entity)}.`a.b`.")
        if key == "":
            raise self.error("the key is empty", head)
        return entity, self._check_key(entity, key, head), head

    def _example_identifier(self) -> str:
        return self.schema.example

    def _entity(self, text: str, token: _Token) -> str:
        entity = self.schema.entities.get(text)
        if entity is not None:
            return entity
        close = self.schema.entities.get(text.lower())
        valid = ", ".join(sorted(set(self.schema.entities)))
        hint = f"Did you mean {text.lower()!r}? " if close else ""
        raise self.error(f"unknown entity {text!r} in identifier", token,
                         f"{hint}An identifier starts with one of: {valid}.")

    def _check_key(self, entity: str, key: str, token: _Token) -> str:
        fixed = self.schema.fixed_keys.get(entity)
        if fixed is None:
            return key
        key = self.schema.key_aliases.get(entity, {}).get(key, key)
        if self.kind == "order_by":
            # Some keys are for ordering only (registered models: timestamp).
            fixed = {**fixed, **dict.fromkeys(self.schema.orderable.get(entity) or (), "order")}
        if key not in fixed:
            hint = self.schema.hints.get(key)
            what = "attribute" if entity == "attribute" else f"{entity} field"
            message = f"{key!r} is not a searchable {self.schema.singular} {what}"
            if hint is None:
                names = sorted(fixed) + sorted(self.schema.key_aliases.get(entity, {}))
                hint = f"Valid {what}s: {', '.join(names)}."
                if entity == "attribute" and self.schema.prefixed_attributes:
                    hint += " Metrics, params and tags need their prefix, e.g. metrics.rmse."
            raise self.error(message, token, hint)
        return key

    def value_type(self, entity: str, key: str) -> str:
        fixed = self.schema.fixed_keys.get(entity)
        return fixed[key] if fixed is not None else self.schema.free_keys[entity]

    # -- filters ------------------------------------------------------------------------------------
    def parse_filter(self) -> list[Clause]:
        clauses: list[Clause] = []
        if not self.tokens:
            return clauses
        while True:
            clauses.append(self.clause())
            token = self.peek()
            if token is None:
                return clauses
            if token.upper == "AND":
                self.take()
                if self.peek() is None:
                    raise self.error("the filter ends after AND", token, "Remove the trailing AND or add a condition.")
                continue
            if token.upper == "OR":
                raise self.error("OR is not supported", token,
                                 "Filters join conditions with only AND (as in MLflow); "
                                 "run one search per alternative and combine the results.")
            raise self.error("expected AND between conditions", token)

    def clause(self) -> Clause:
        if (tok := self.peek()) is not None and tok.kind == "lparen":
            raise self.error("parentheses are not supported around conditions", tok,
                             "Write conditions joined by AND, without parentheses.")
        entity, key, first = self.identifier()
        value_type = self.value_type(entity, key)
        allowed = _OPS_BY_TYPE[value_type]
        op, op_token = self.comparator(entity, key)
        if op not in allowed:
            raise self.error(f"{_describe(entity, key, self.schema)} cannot be compared with {op}", op_token,
                             f"Use one of: {', '.join(allowed)}.")
        if op in ("IS NULL", "IS NOT NULL"):
            return Clause(entity, key, op, None, first.start)
        if op in ("IN", "NOT IN"):
            return Clause(entity, key, op, self.string_list(), first.start)
        token = self.peek()
        if token is None:
            raise self.error(f"expected a value after {op}", None)
        self.take()
        if value_type in ("number", "int"):
            if token.kind in ("squote", "dquote") and self.schema.quoted_numbers:
                return Clause(entity, key, op, self._quoted_int(token, entity, key), first.start)
            if token.kind != "number":
                example = f"{_written(entity, key, self.schema)} {op} 0.5" if value_type == "number" \
                    else f"{quote_key(key)} {op} {3 if key == 'version_number' else 1700000000000}"
                got = f"the string {_unquote(token)!r}" if token.kind in ("squote", "dquote") else repr(token.text)
                raise self.error(f"{_describe(entity, key, self.schema)} is compared with numbers, got {got}", token,
                                 f"Write the number without quotes, e.g. {example}.")
            return Clause(entity, key, op, self._number(token, value_type, key), first.start)
        if token.kind not in ("squote", "dquote"):
            example = f"{_written(entity, key, self.schema)} {op} '{token.text}'"
            raise self.error(f"{_describe(entity, key, self.schema)} is compared with quoted strings, "
                             f"got {token.text!r}", token, f"Quote the value, e.g. {example}.")
        return Clause(entity, key, op, self._text(token), first.start)

    def _number(self, token: _Token, value_type: str, key: str) -> int | float:
        text = token.text
        if re.fullmatch(r"-?\d+", text):
            number = int(text)
            # Beyond 64 bits SQLite has only doubles: compare as one (1e400 is inf, as in MLflow).
            return number if abs(number) < 2**63 else float(text)
        if value_type == "int":
            unit = "" if key == "version_number" else " (milliseconds since the epoch)"
            raise self.error(f"expected a whole number{unit}", token)
        return float(text)

    def _text(self, token: _Token) -> str:
        """A quoted value's text."""
        return _unquote(token, self.schema.backslash_escapes)

    def _quoted_int(self, token: _Token, entity: str, key: str) -> int:
        text = self._text(token).strip()
        if re.fullmatch(r"[-+]?\d+", text) is None:
            raise self.error(f"{_describe(entity, key, self.schema)} is compared with whole numbers, "
                             f"got the string {self._text(token)!r}", token,
                             f"e.g. {quote_key(key)} = 3")
        return int(text)

    def comparator(self, entity: str, key: str) -> tuple[str, _Token]:
        token = self.peek()
        if token is None:
            raise self.error(f"expected a comparator after {_describe(entity, key, self.schema)}", None,
                             f"e.g. {_written(entity, key, self.schema)} = ...")
        self.take()
        if token.kind == "op":
            if token.text in ("==", "<>"):
                better = "=" if token.text == "==" else "!="
                raise self.error(f"unknown comparator {token.text!r}", token, f"Use {better!r}.")
            return token.text, token
        word = token.upper
        if word in ("LIKE", "ILIKE", "IN"):
            return word, token
        if word == "NOT":
            nxt = self.peek()
            if nxt is not None and nxt.upper == "IN":
                self.take()
                return "NOT IN", token
            raise self.error("NOT is only supported in NOT IN", nxt or token,
                             "There is no NOT LIKE; use != for inequality.")
        if word == "IS":
            nxt = self.peek()
            if nxt is not None and nxt.upper == "NULL":
                self.take()
                return "IS NULL", token
            if nxt is not None and nxt.upper == "NOT":
                after = self.peek(1)
                if after is not None and after.upper == "NULL":
                    self.take()
                    self.take()
                    return "IS NOT NULL", token
            raise self.error("expected IS NULL or IS NOT NULL", nxt or token)
        raise self.error(f"expected a comparator after {_describe(entity, key, self.schema)}", token,
                         "Comparators: =, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL.")

    def string_list(self) -> tuple[str, ...]:
        start = self.peek()
        if start is None or start.kind != "lparen":
            raise self.error("expected a parenthesised list of quoted strings", start,
                             "e.g. attributes.run_id IN ('a1b2c3', 'd4e5f6')")
        self.take()
        items: list[str] = []
        while True:
            token = self.peek()
            if token is None:
                raise self.error("the list is never closed", None, "Close it with ')'.")
            if token.kind == "rparen":
                self.take()
                break
            if token.kind not in ("squote", "dquote"):
                raise self.error("list items must be quoted strings", token,
                                 "e.g. ('a1b2c3', 'd4e5f6')")
            items.append(self._text(self.take()))
            sep = self.peek()
            if sep is not None and sep.kind == "comma":
                self.take()
            elif sep is None or sep.kind != "rparen":
                raise self.error("expected ',' or ')' in the list", sep)
        if not items:
            raise self.error("the list is empty", start, "Give at least one quoted value.")
        return tuple(items)

    # -- order_by ----------------------------------------------------------------------------------
    def parse_order_key(self) -> OrderKey:
        if not self.tokens:
            raise self.error("the order_by clause is empty", None, "e.g. 'metrics.rmse ASC'")
        entity, key, first = self.identifier()
        orderable = self.schema.orderable.get(entity, ())
        if orderable is not None and key not in orderable:
            if entity == "dataset":
                raise self.error("runs cannot be ordered by dataset fields", first)
            choices = [f"{_PREFIX[e]}.<key>" if keys is None else ", ".join(keys)
                       for e, keys in self.schema.orderable.items()
                       if keys or (keys is None and self.schema is not RUNS)]
            raise self.error(f"cannot order {self.schema.what} by {key!r}", first,
                             f"Order by one of: {', '.join(choices)}"
                             + (", or by metrics.*, params.*, tags.*" if self.schema is RUNS else "") + ".")
        ascending = True
        token = self.peek()
        if token is not None:
            if token.upper in ("ASC", "DESC"):
                ascending = token.upper == "ASC"
                self.take()
            else:
                raise self.error("expected ASC or DESC after the key", token)
            extra = self.peek()
            if extra is not None:
                raise self.error("unexpected text after ASC/DESC", extra,
                                 "Give one key per order_by entry: order_by=['metrics.rmse ASC', 'params.alpha']")
        return OrderKey(entity, key, ascending)


def _written(entity: str, key: str, schema: Schema) -> str:
    """How a user writes this identifier in this schema's filters."""
    if entity == "attribute" and not schema.prefixed_attributes:
        return quote_key(key)
    return f"{_PREFIX[entity]}.{quote_key(key)}"


def _describe(entity: str, key: str, schema: Schema) -> str:
    if entity == "attribute" and not schema.prefixed_attributes:
        return f"the {schema.singular} attribute {key!r}"
    return f"{_PREFIX[entity]}.{quote_key(key)}"


# -- public entry points -------------------------------------------------------------------------------
def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise SearchError(f"{what} must be a string, got {value!r} ({type(value).__name__})")
    from .._validation import text

    return text(what[:1].upper() + what[1:], value)  # SQLite cannot bind a lone surrogate


def parse_filter(filter_string: str | None, schema: Schema = RUNS) -> list[Clause]:
    """The AND-ed clauses of a filter string ([] for an empty filter)."""
    if filter_string is None:
        return []
    text = _require_str(filter_string, "filter_string")
    return _Parser(text, schema, "filter").parse_filter()


def parse_order_by(order_by: list[str] | tuple[str, ...] | str | None, schema: Schema = RUNS) -> list[OrderKey]:
    """Parsed order_by entries; a key listed twice is an error (as in MLflow)."""
    if order_by is None:
        return []
    if isinstance(order_by, str):
        order_by = [order_by]
    keys: list[OrderKey] = []
    seen: dict[tuple[str, str], str] = {}
    for entry in order_by:
        text = _require_str(entry, "Each order_by entry")
        key = _Parser(text, schema, "order_by").parse_order_key()
        ident = (key.entity, key.key)
        if ident in seen:
            name = _written(key.entity, key.key, schema)
            raise SearchError(f"order_by names {name} twice ({seen[ident]!r} and {text!r}); give each key once",
                              order_by=text, position=0, token=text)
        seen[ident] = text
        keys.append(key)
    return keys


# -- evaluating a clause in Python (experiments; SQLite's exact LIKE semantics) ---------------------
_ASCII_LOWER = {i: i + 32 for i in range(ord("A"), ord("Z") + 1)}


def like_regex(pattern: str, ignore_ascii_case: bool) -> re.Pattern[str]:
    """SQLite's LIKE: % any run, _ one character, no escape character.

    ILIKE folds ASCII letters only, exactly as SQLite (and so MLflow's sqlite store) does.
    """
    if ignore_ascii_case:
        pattern = pattern.translate(_ASCII_LOWER)
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(regex + r"\Z", re.DOTALL)


def compare(op: str, lhs: Any, rhs: Value) -> bool:
    """SQL semantics: a missing (None) left side never matches.

    `lhs` is any logged value, ordered as Python orders it (a TypeError is no match)."""
    if lhs is None:
        return False
    if op == "=":
        return bool(lhs == rhs)
    if op == "!=":
        return bool(lhs != rhs)
    if op in ("LIKE", "ILIKE"):
        text = str(lhs)
        if op == "ILIKE":
            text = text.translate(_ASCII_LOWER)
        return like_regex(str(rhs), op == "ILIKE").match(text) is not None
    if op == "IN":
        return lhs in cast("tuple[str, ...]", rhs)  # IN and NOT IN parse their right side as a tuple
    if op == "NOT IN":
        return lhs not in cast("tuple[str, ...]", rhs)
    try:
        if op == "<":
            return bool(lhs < rhs)
        if op == "<=":
            return bool(lhs <= rhs)
        if op == ">":
            return bool(lhs > rhs)
        if op == ">=":
            return bool(lhs >= rhs)
    except TypeError:
        return False
    raise SearchError(f"Unknown comparator {op!r}")
