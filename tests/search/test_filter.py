"""The filter and order_by parser on its own: what it accepts, and how it reports mistakes."""

from __future__ import annotations

import pytest

from gitexp.exceptions import InvalidParameterValue, SearchError
from gitexp.search import parse_filter, parse_order_by
from gitexp.search._filter import EXPERIMENTS, compare, like_regex


def clauses(text, schema=None):
    parsed = parse_filter(text) if schema is None else parse_filter(text, schema)
    return [(c.entity, c.key, c.op, c.value) for c in parsed]


@pytest.mark.parametrize("text,expected", [
    ("", []),
    ("   ", []),
    ("metrics.rmse < 7", [("metric", "rmse", "<", 7)]),
    ("metric.rmse>=-1.5e-3", [("metric", "rmse", ">=", -0.0015)]),
    ("params.alpha = '0.1' and tags.`model type` LIKE \"x%\"",
     [("param", "alpha", "=", "0.1"), ("tag", "model type", "LIKE", "x%")]),
    ('parameters."learning rate" != \'0.01\'', [("param", "learning rate", "!=", "0.01")]),
    ("tags.mlflow.runName ILIKE '%a%'", [("tag", "mlflow.runName", "ILIKE", "%a%")]),
    ("tag.x IS NULL AND param.y is not NULL", [("tag", "x", "IS NULL", None), ("param", "y", "IS NOT NULL", None)]),
    ("created > 1", [("attribute", "start_time", ">", 1)]),
    ("`Run Name` = 'a'", [("attribute", "run_name", "=", "a")]),
    ("run.status = 'FAILED'", [("attribute", "status", "=", "FAILED")]),
    ("attributes.run_id NOT IN ('a', \"b\",)", [("attribute", "run_id", "NOT IN", ("a", "b"))]),
    ("datasets.context in ('train')", [("dataset", "context", "IN", ("train",))]),
    ("params.a = 'it''s' AND params.b = \"say \"\"hi\"\"\" AND params.c = 'x\\'y'",
     [("param", "a", "=", "it's"), ("param", "b", "=", 'say "hi"'), ("param", "c", "=", "x'y")]),
    ("`metrics`.`f1 score` > .5", [("metric", "f1 score", ">", 0.5)]),
    ("metrics.1st > 5.", [("metric", "1st", ">", 5.0)]),
    ("params.é = 'ü'", [("param", "é", "=", "ü")]),
    ("metrics.a < 1" + "0" * 400, [("metric", "a", "<", float("inf"))]),
    ("start_time > -99999999999999999999", [("attribute", "start_time", ">", -1e20)]),
])
def test_accepted_filters(text, expected):
    assert clauses(text) == expected


@pytest.mark.parametrize("text,position,token,words", [
    ("metrics.rmse < 'abc'", 15, "'abc'", "compared with numbers"),
    ("params.alpha = 0.1", 15, "0.1", "quoted strings"),
    ("metrics.rmse < 7 OR metrics.rmse > 9", 17, "OR", "OR is not supported"),
    ("metrics.rmse < 7 AND", 17, "AND", "ends after AND"),
    ("metrics.rmse < 7 metrics.a < 1", 17, "metrics.a", "expected AND"),
    ("metrics.a-b < 1", 9, "-", "unexpected character"),
    ("Metrics.rmse < 7", 0, "Metrics.rmse", "Did you mean 'metrics'"),
    ("params.alpha == '1'", 13, "==", "Use '='"),
    ("params.alpha NOT LIKE 'x'", 17, "LIKE", "NOT is only supported in NOT IN"),
    ("params.alpha IN ('x')", 13, "IN", "cannot be compared with IN"),
    ("attributes.status IN ('x')", 18, "IN", "cannot be compared with IN"),
    ("attributes.run_id IN ()", 21, "(", "the list is empty"),
    ("attributes.run_id IN (5)", 22, "5", "list items must be quoted"),
    ("metrics.rmse IS NULL", 13, "IS", "cannot be compared with IS NULL"),
    ("rmse < 7", 0, "rmse", "need their prefix"),
    ("attributes.lifecycle_stage = 'deleted'", 0, "attributes.lifecycle_stage", "run_view_type"),
    ("params. = 'x'", 0, "params.", "missing key"),
    ("params.`a` b = 'x'", 11, "b", "expected a comparator"),
    ("params.'a' = 'x'", 7, "'a'", "single quotes are for values"),
    ("(metrics.a < 1)", 0, "(", "parentheses"),
    ("metrics.a < 1 AND params.`b", 25, "`", "never closed"),
    ("metrics.a <", 11, None, "expected a value"),
    ("tags.a IS 'x'", 10, "'x'", "IS NULL or IS NOT NULL"),
])
def test_errors_point_at_the_offending_token(text, position, token, words):
    with pytest.raises(SearchError) as info:
        parse_filter(text)
    error = info.value
    assert isinstance(error, InvalidParameterValue)
    assert error.error_code == "INVALID_PARAMETER_VALUE"
    assert (error.position, error.token) == (position, token)
    assert error.filter_string == text
    assert words in error.message
    assert f"at position {position + 1}" in error.message
    lines = error.message.splitlines()
    caret_line = next(line for line in lines if set(line.strip()) == {"^"})
    assert caret_line.index("^") - 4 == position  # the caret sits under the token
    assert lines[1] == "    " + text


def test_multiline_filters_report_position_without_caret():
    text = "metrics.a < 1\n  AND metrics.b <"
    with pytest.raises(SearchError) as info:
        parse_filter(text)
    assert info.value.position == len(text) and "^" not in info.value.message


@pytest.mark.parametrize("entries,expected", [
    (["metrics.rmse"], [("metric", "rmse", True)]),
    (["metrics.`f1 score` DESC", "params.a asc"], [("metric", "f1 score", False), ("param", "a", True)]),
    (["created DESC"], [("attribute", "start_time", False)]),
    ("tags.x", [("tag", "x", True)]),
    (None, []),
])
def test_order_by(entries, expected):
    assert [(k.entity, k.key, k.ascending) for k in parse_order_by(entries)] == expected


@pytest.mark.parametrize("entries,words", [
    (["metrics.a", "metrics.a DESC"], "twice"),
    (["metrics.a DOWN"], "expected ASC or DESC"),
    (["metrics.a ASC DESC"], "unexpected text after ASC/DESC"),
    (["datasets.name"], "dataset fields"),
    ([""], "empty"),
    ([5], "must be a string"),
])
def test_bad_order_by(entries, words):
    with pytest.raises(SearchError, match=words):
        parse_order_by(entries)


def test_experiment_grammar():
    assert clauses("name LIKE 'a%' AND attributes.creation_time > 5 AND tags.t IS NULL", EXPERIMENTS) == [
        ("attribute", "name", "LIKE", "a%"), ("attribute", "creation_time", ">", 5), ("tag", "t", "IS NULL", None)]
    assert clauses("experiment_id IN ('1', '2')", EXPERIMENTS) == [("attribute", "experiment_id", "IN", ("1", "2"))]
    for bad in ("params.a = 'x'", "creation_time > 1.5", "name IN ('a')", "experiment_id < '3'", "metrics.a < 1"):
        with pytest.raises(SearchError):
            parse_filter(bad, EXPERIMENTS)
    with pytest.raises(SearchError, match="cannot order experiments"):
        parse_order_by(["tags.x"], EXPERIMENTS)


@pytest.mark.parametrize("pattern,text,ignore_case,matches", [
    ("a%", "abc", False, True),
    ("a%", "Abc", False, False),
    ("a%", "Abc", True, True),
    ("_b_", "abc", False, True),
    ("_b_", "abcd", False, False),
    ("%.%", "a.b", False, True),
    ("a*", "a*", False, True),
    ("a*", "ab", False, False),
    ("ä%", "Ärger", True, False),  # ASCII-only case folding, as SQLite
    ("%", "line\nbreak", False, True),
])
def test_like_semantics(pattern, text, ignore_case, matches):
    assert compare("ILIKE" if ignore_case else "LIKE", text, pattern) is matches
    if not ignore_case:
        assert (like_regex(pattern, False).match(text) is not None) is matches
