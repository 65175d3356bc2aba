"""Where things live on the tracking branch, and how files are written.

    .tracking/format.yaml
    .tracking/experiments/<experiment_id>/events/<time>-<uid>.yaml
    .tracking/runs/<run_id[:2]>/<run_id>/
        run.yaml  params.yaml  tags.yaml  inputs.yaml  code.yaml  code.patch
        metrics/<encoded key>.jsonl
        artifacts/...                      # files logged by the run's own session
        events/<time>-<uid>.yaml
        events/<time>-<uid>.artifacts/...  # files logged by that event's (editor) session
    .tracking/registry/<encoded model name>/events/<time>-<uid>.yaml

A run's own files are written only by the session that created the run.  Every
later change, by anyone, is a new uniquely named event file.  So no two
writers ever produce different contents for the same path, and any merge of
two tracking branches is conflict-free.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any


def _yaml() -> tuple[Any, Any, Any]:
    """(yaml, Loader, Dumper), imported on first use: a search on a current index parses no
    YAML, and importing PyYAML is ~10 ms of a new process's first search."""
    global _YAML
    if _YAML is None:
        import yaml

        loader, dumper = getattr(yaml, "CSafeLoader", None), getattr(yaml, "CSafeDumper", None)
        if loader is None or dumper is None:  # pyyaml built without libyaml
            loader, dumper = yaml.SafeLoader, yaml.SafeDumper
        _YAML = (yaml, loader, dumper)
    return _YAML


_YAML: tuple[Any, Any, Any] | None = None

ROOT = ".tracking"
FORMAT_FILE = f"{ROOT}/format.yaml"
FORMAT_VERSION = 2  # 2: metric histories as chunks + latest_metrics.yaml (store/histories.py)
RUNS = f"{ROOT}/runs"
EXPERIMENTS = f"{ROOT}/experiments"
REGISTRY = f"{ROOT}/registry"

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"


def run_dir(run_id: str) -> str:
    return f"{RUNS}/{run_id[:2]}/{run_id}"


def experiment_dir(experiment_id: str) -> str:
    return f"{EXPERIMENTS}/{experiment_id}"


def artifact_uri(run_id: str) -> str:
    return f"runs:/{run_id}"


def event_artifact_dir(event_file: str) -> str:
    """Where an editor's artifacts live: events/<event name without .yaml>.artifacts."""
    stem = event_file[:-5] if event_file.endswith(".yaml") else event_file
    return f"events/{stem}.artifacts"


def experiment_artifact_location(experiment_id: str) -> str:
    return f"gitexp:/experiments/{experiment_id}"


# -- keys as file names ---------------------------------------------------
_UNSAFE = re.compile(r"[^\w.\- ]|^\.")


def encode_key(key: str) -> str:
    """A reversible, path-safe file name for a metric or model name."""
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), key)


def decode_key(name: str) -> str:
    if "%" not in name:
        return name
    from urllib.parse import unquote

    return unquote(name)


# -- event file names -------------------------------------------------------
def now_ms() -> int:
    return time.time_ns() // 1_000_000


_CLOCK = threading.local()


@contextlib.contextmanager
def recorded_at(time_ms: int | None) -> Iterator[None]:
    """Within the block, the experiment, registry and logged-model events this thread writes
    carry `time_ms` instead of now (gitexp import: another store's creation and update times,
    which those events' times are).  Successive events of one millisecond get successive
    microseconds (also across blocks), so they fold in the order they were written.
    None: now, as usual."""
    previous = getattr(_CLOCK, "at", None)
    _CLOCK.at = time_ms
    try:
        yield
    finally:
        _CLOCK.at = previous


def event_time_ns() -> int:
    """The time of a new experiment, registry or logged-model event (see recorded_at)."""
    at = getattr(_CLOCK, "at", None)
    if at is None:
        return time.time_ns()
    used: dict[int, int] = _CLOCK.__dict__.setdefault("used", {})
    if len(used) > 100_000:
        used.clear()
    seq = used[int(at)] = min(used.get(int(at), 0) + 1, 999)
    return int(at) * 1_000_000 + seq * 1000


def event_name(time_ns: int | None = None) -> str:
    """<UTC time to the microsecond>-<random>.yaml: sorts in (time, id) order."""
    ns = time.time_ns() if time_ns is None else time_ns
    stamp = _dt.datetime.fromtimestamp(ns / 1e9, _dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}.{(ns // 1000) % 1_000_000:06d}Z-{secrets.token_hex(6)}.yaml"


# -- YAML ----------------------------------------------------------------------
def load_yaml(data: bytes | str) -> Any:
    yaml, loader, _ = _yaml()
    return yaml.load(data, Loader=loader)


def dump_yaml(doc: Any) -> bytes:
    yaml, _, dumper = _yaml()
    text: str = yaml.dump(doc, Dumper=dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return text.encode()


# Flat maps (run.yaml, params.yaml, tags.yaml) are most of what gitexp writes and
# reads, so they get an exact fast path: one "key: value" line per entry, a value
# plain only when YAML reads it back as the same string, else JSON-quoted (JSON
# strings are valid YAML double-quoted scalars).  Anything else goes to libyaml.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*\Z")
# Characters YAML will not take raw in a quoted scalar (all in the BMP, so \\uXXXX
# escapes them for both JSON and YAML).
_NOT_YAML_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
_STR_TAG = "tag:yaml.org,2002:str"
_resolved: dict[str, str] = {}


def _resolves_as(text: str) -> str:
    tag = _resolved.get(text)
    if tag is None:
        yaml = _yaml()[0]
        tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False))
        if len(_resolved) < 50_000:
            _resolved[text] = tag
    return tag


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.match(text) and _resolves_as(text) == _STR_TAG:
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    return _NOT_YAML_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def flat_key(key: str) -> str:
    """A key as dump_flat writes it (plain or JSON-quoted)."""
    return _scalar(key)


def load_flat_key(text: str) -> str:
    if text.startswith('"'):
        key = json.loads(text)
        if not isinstance(key, str):
            raise ValueError(text)
        return key
    if not _PLAIN.match(text) or _resolves_as(text) != _STR_TAG:
        raise ValueError(text)
    return text


def dump_flat(doc: dict[str, Any]) -> bytes:
    """YAML for a flat map of strings, ints and nulls (read back by load_flat)."""
    return "".join(f"{_scalar(k)}: {_scalar(v)}\n" for k, v in doc.items()).encode()


# dump_flat's commonest lines, checked for a whole file in one scan: a plain or JSON-quoted key
# without escapes, then a JSON-quoted string without escapes, a plain string, an int or null.
FAST_KEY = r'(?:[A-Za-z_][A-Za-z0-9_.\-/]*|"[^"\\\x00-\x1f]*")'
_FAST_VALUE = r'(?:"[^"\\\x00-\x1f]*"|[A-Za-z_][A-Za-z0-9_.\-/]*|-?(?:0|[1-9][0-9]*))'
_FAST_FLAT = re.compile(f"(?:{FAST_KEY}: {_FAST_VALUE}\n)*")
_FAST_PAIR = re.compile(f"({FAST_KEY}): ({_FAST_VALUE})\n")
# The plain scalars of _PLAIN's form that YAML 1.1 does not read as strings (its bool and null
# words: its other implicit types start with a digit, a sign, a dot or '~'); a test checks this
# against the resolver.
YAML_WORDS = frozenset("yes Yes YES no No NO true True TRUE false False FALSE on On ON off Off OFF "
                       "null Null NULL".split())


def _load_flat_fast(text: str) -> dict[str, Any] | None:
    """load_flat of a file in the fast form, else None."""
    if not _FAST_FLAT.fullmatch(text):
        return None
    out: dict[str, Any] = {}
    words = YAML_WORDS
    for key, value in _FAST_PAIR.findall(text):
        if key[0] == '"':
            key = key[1:-1]
        elif key in words:
            return None
        first = value[0]
        if first == '"':
            out[key] = value[1:-1]
        elif first == "-" or first.isdigit():
            out[key] = int(value)
        elif value in words:
            if value != "null":
                return None
            out[key] = None
        else:
            out[key] = value
    return out


def load_flat(data: bytes) -> dict[str, Any]:
    """Read a flat YAML map; files not in dump_flat's form go through libyaml."""
    out: dict[str, Any] = {}
    try:
        fast = _load_flat_fast(data.decode())
        if fast is not None:
            return fast
        for line in data.decode().splitlines():
            if line.startswith('"'):
                end = _json_string_end(line)
                key = json.loads(line[:end])
                rest = line[end:]
            else:
                key, sep, tail = line.partition(": ")
                if not sep or not _PLAIN.match(key) or _resolves_as(key) != _STR_TAG:
                    raise ValueError(line)
                rest = ": " + tail
            if not rest.startswith(": "):
                raise ValueError(line)
            value = rest[2:]
            if value.startswith('"'):
                out[key] = json.loads(value)
            elif value == "null":
                out[key] = None
            elif value.lstrip("-").isdigit():
                out[key] = int(value)
            elif _PLAIN.match(value) and _resolves_as(value) == _STR_TAG:
                out[key] = value
            else:
                raise ValueError(line)
    except (ValueError, UnicodeDecodeError):
        loaded = load_yaml(data)
        return loaded if isinstance(loaded, dict) else {}
    return out


def _json_string_end(line: str) -> int:
    i = 1
    while True:
        i = line.index('"', i)
        backslashes = 0
        j = i - 1
        while line[j] == "\\":
            backslashes += 1
            j -= 1
        if backslashes % 2 == 0:
            return i + 1
        i += 1


# -- metric histories as JSONL -----------------------------------------------
def _number(value: float) -> str:
    if math.isnan(value):
        return '"NaN"'
    if math.isinf(value):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    return repr(value)


def metric_line(step: int, value: float, timestamp: int) -> str:
    return f'{{"step": {step}, "value": {_number(value)}, "timestamp": {timestamp}}}\n'


_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


# The exact lines metric_line writes; anything else (hand edits, other tools) goes through json.
_METRIC_LINE = r'\{"step": (-?\d+), "value": (-?[0-9][0-9.eE+-]*|"NaN"|"Infinity"|"-Infinity"), "timestamp": (\d+)\}\n'
_METRIC_LINES = re.compile(f"(?:{_METRIC_LINE})*")
_METRIC_LINE_RE = re.compile(_METRIC_LINE)
_QUOTED_SPECIAL = {'"NaN"': math.nan, '"Infinity"': math.inf, '"-Infinity"': -math.inf}


def parse_metric_lines(data: bytes) -> list[tuple[int, int, float]]:
    """(step, timestamp, value) for each line of a metric history file."""
    text = data.decode()
    if _METRIC_LINES.fullmatch(text):
        # Fast path (cold index builds parse every history): one C-level scan.
        special = _QUOTED_SPECIAL
        return [(int(step), int(ts), special[value] if value[0] == '"' else float(value))
                for step, value, ts in _METRIC_LINE_RE.findall(text)]
    if not text.strip():
        return []
    records = json.loads("[" + ",".join(line for line in text.splitlines() if line.strip()) + "]")
    out = []
    for r in records:
        value = r["value"]
        if isinstance(value, str):
            value = _SPECIAL[value]
        out.append((int(r.get("step", 0)), int(r.get("timestamp", 0)), float(value)))
    return out


def format_metric_lines(points: Iterable[tuple[int, int, float]]) -> str:
    return "".join(metric_line(s, v, t) for s, t, v in points)
