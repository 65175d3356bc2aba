"""Hypothesis-generated filter strings.

* Grammar-aware strings (right and wrong entity spellings, keys, comparators,
  value types, quoting) run through gitexp and the real mlflow package on the
  twin store: whenever MLflow answers, gitexp gives the same runs in the same
  order; whenever MLflow rejects the filter, gitexp rejects it too or answers.
* Random text: gitexp either answers or raises SearchError, nothing else.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitexp.entities import ViewType
from gitexp.exceptions import SearchError

from .twin import RUN_EXPERIMENTS

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

ENTITY_SPELLINGS = {
    "metric": ["metrics", "metric"],
    "param": ["params", "param", "parameter", "parameters"],
    "tag": ["tags", "tag"],
    "attribute": ["attributes", "attribute", "attr", "run", ""],
    "dataset": ["datasets", "dataset"],
}
KEYS = {
    "metric": ["rmse", "val_loss", "accuracy", "loss", "f1 score", "error", "log-scale-loss", "nope"],
    "param": ["alpha", "model", "batch_size", "learning rate", "note", "nope"],
    "tag": ["model", "environment", "task", "model type", "mlflow.runName", "mlflow.user", "nope"],
    "attribute": ["status", "run_name", "user_id", "start_time", "end_time", "created", "Run Name", "run_id"],
    "dataset": ["name", "digest", "context"],
}
COMPARATORS = ["=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "like", "ilike", "IN", "NOT IN",
               "IS NULL", "IS NOT NULL", "is null"]
NUMBERS = ["0", "1", "-1", "6.3", "7", "0.5", "1e300", "-1e300", "1700000300000", "1700000419999.5", ".25", "5."]
STRINGS = ["xgboost", "XGBoost", "xgb%", "%boost", "GPT%", "gpt%", "GPT-_", "%", "_", "0.01", "None", "FINISHED",
           "F%", "RUNNING", "train", "test", "custom", "also custom", "s8ds293b", "alice", "conformance",
           "notebook", "ärger", "Ä%", "50% off_sale", "taxi-1", "guide-%", "", " "]


def _key(key: str, style: int) -> str:
    simple = key.replace("_", "a").replace(".", "a").isalnum() and not key[0].isdigit()
    if style == 0 and simple:
        return key
    return f"`{key}`" if style in (0, 1) else f'"{key}"'


@st.composite
def clauses(draw) -> str:
    entity = draw(st.sampled_from(sorted(KEYS)))
    prefix = draw(st.sampled_from(ENTITY_SPELLINGS[entity]))
    key = draw(st.sampled_from(KEYS[entity]))
    style = draw(st.integers(0, 2))
    if prefix == "" and style == 2:
        style = 1  # a bare double-quoted identifier is a string to MLflow's parser
    ident = f"{prefix}.{_key(key, style)}" if prefix else _key(key, style)
    numeric = entity == "metric" or key in ("start_time", "end_time", "created")
    well_typed = draw(st.integers(0, 4)) > 0  # mostly well-typed clauses, some of every kind of mistake
    if well_typed:
        ops = ["=", "!=", "<", "<=", ">", ">="] if numeric else ["=", "!=", "LIKE", "ILIKE", "like"]
        if entity in ("param", "tag"):
            ops += ["IS NULL", "IS NOT NULL"]
        if entity == "dataset" or key == "run_id":
            ops += ["IN", "NOT IN"]
        op = draw(st.sampled_from(ops))
    else:
        op = draw(st.sampled_from(COMPARATORS))
    if op.upper() in ("IS NULL", "IS NOT NULL"):
        return f"{ident} {op}"
    quote = draw(st.sampled_from(["'", '"']))
    if op.upper() in ("IN", "NOT IN"):
        items = draw(st.lists(st.sampled_from(STRINGS), min_size=1, max_size=3))
        return f"{ident} {op} ({', '.join(repr(i) if quote == chr(39) else chr(34) + i + chr(34) for i in items)})"
    if numeric if well_typed else draw(st.booleans()):
        value = draw(st.sampled_from(NUMBERS))
    else:
        value = quote + draw(st.sampled_from(STRINGS)) + quote
    return f"{ident} {op} {value}"


filters = st.lists(clauses(), min_size=1, max_size=3).flatmap(
    lambda parts: st.sampled_from([" AND ", " and ", "  AND\n"]).map(lambda sep: sep.join(parts)))

orders = st.lists(
    st.tuples(st.sampled_from(["metrics.rmse", "metrics.val_loss", "params.alpha", "params.model", "tags.model",
                               "attributes.end_time", "start_time", "run_name", "status"]),
              st.sampled_from(["", " ASC", " DESC", " asc"])).map(lambda t: t[0] + t[1]),
    max_size=2, unique_by=lambda s: s.split()[0])


@SETTINGS
@given(filter_string=filters, order_by=orders, view=st.sampled_from([ViewType.ACTIVE_ONLY, ViewType.ALL]))
def test_generated_filters_agree_with_mlflow(twin, filter_string, order_by, view):
    g, m = twin.both(filter_string, order_by=order_by or None, view=view, experiments=RUN_EXPERIMENTS)
    assert g == "SearchError" or isinstance(g, list), g
    if isinstance(m, list):
        assert g == m
    else:
        assert m == "MlflowException"


def test_generated_filters_are_not_all_rejected(twin):
    """The generator reaches both outcomes: the test above is not vacuous."""
    outcomes = {"list": 0, "error": 0}

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(filter_string=filters)
    def collect(filter_string):
        g, _ = twin.both(filter_string, experiments=RUN_EXPERIMENTS)
        outcomes["list" if isinstance(g, list) else "error"] += 1

    collect()
    assert outcomes["list"] >= 10 and outcomes["error"] >= 10


@SETTINGS
@given(text=st.text(max_size=60))
def test_random_text_is_answered_or_rejected(twin, text):
    client = twin.gitexp_client()
    ids = [twin.g_exp[e] for e in RUN_EXPERIMENTS]
    for call in (lambda: client.search_runs(ids, text),
                 lambda: client.search_runs(ids, "", order_by=[text]),
                 lambda: client.search_experiments(filter_string=text),
                 lambda: client.search_experiments(order_by=[text])):
        try:
            result = call()
        except SearchError as exc:
            assert exc.error_code == "INVALID_PARAMETER_VALUE"
            assert exc.message
        else:
            assert isinstance(result, list)


tokens = st.sampled_from(["metrics.rmse", "params.alpha", "tags.model", "status", "=", "!=", "<", "LIKE", "IN",
                          "NOT", "IS", "NULL", "AND", "OR", "'x'", '"y"', "`k`", "7", "-1.5e3", "(", ")", ",",
                          ".", "'", '"', "`", "attributes.", "datasets.name", "\n", "ASC", "DESC", "é", ";"])


@SETTINGS
@given(parts=st.lists(tokens, max_size=12), sep=st.sampled_from([" ", ""]))
def test_token_soup_is_answered_or_rejected(twin, parts, sep):
    text = sep.join(parts)
    client = twin.gitexp_client()
    ids = [twin.g_exp[e] for e in RUN_EXPERIMENTS]
    try:
        result = client.search_runs(ids, text)
    except SearchError as exc:
        assert "position" in exc.message
        assert 0 <= exc.position <= len(text)
    else:
        assert isinstance(result, list)
    df_outcome = None
    try:
        df_outcome = client.search_runs_frame(ids, text)
    except SearchError:
        pass
    if df_outcome is not None:
        assert len(df_outcome) == len(result)


@pytest.mark.parametrize("bad", [None, 5, b"metrics.a < 1", ["metrics.a < 1"]])
def test_filter_of_the_wrong_type_is_a_search_error(twin, bad):
    client = twin.gitexp_client()
    if bad is None:
        assert isinstance(client.search_runs([twin.g_exp["conf-other"]], bad), list)
        return
    with pytest.raises(SearchError, match="must be a string"):
        client.search_runs([twin.g_exp["conf-other"]], bad)
