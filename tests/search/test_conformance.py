"""gitexp's search against the real mlflow package on the same data (sqlite backend).

Every query runs through both stores; the outcome (the ordered list of run
names, or the fact that it is rejected) must be identical.  Queries come from
MLflow's "Search Runs" and "Search Experiments" documentation, the MLflow
docstrings, the tutorials in /work/shared/seeds, and edge cases.
"""

from __future__ import annotations

import math

import pytest

from gitexp.entities import ViewType

from ..conftest import require_mlflow
from .twin import RUN_EXPERIMENTS, SPECS

# -- filters ---------------------------------------------------------------------------------------------
DOCS_FILTERS = [
    # MLflow docs, "Search Runs" (current and 1.x/2.x pages)
    "metrics.accuracy > 0.72",
    'metrics."accuracy" > 0.72',
    "metrics.loss <= 0.15",
    "metrics.`log-scale-loss` <= 0",
    "metrics.`f1 score` >= 0.5",
    "metrics.accuracy > 0.72 AND metrics.loss <= 0.15",
    'params.batch_size = "2"',
    'params.model LIKE "GPT%"',
    'params.model ILIKE "gPt%"',
    'params.model LIKE "GPT%" AND params.batch_size = "2"',
    'tags."environment" = "notebook"',
    'tags.environment = "notebook"',
    'tags.task = "Classification"',
    'tags.task ILIKE "classif%"',
    'datasets.name LIKE "custom"',
    "datasets.digest IN ('s8ds293b', 'jks834s2')",
    'datasets.context = "train"',
    "datasets.name IN ('custom', 'also custom')",
    'attributes.status = "ACTIVE"',
    'attributes.user_id LIKE "user1"',
    'attributes.run_name = "my-run"',
    'attributes.run_id = "a1b2c3d4"',
    "attributes.run_id IN ('a1b2c3d4', 'e5f6g7h8')",
    "attributes.start_time >= 1664067852747",
    "attributes.end_time < 1664067852747",
    "attributes.created > 1664067852747",
    "metrics.accuracy > 0.72 AND metrics.batch_size != 0",
    "metrics.accuracy > 0.72 AND metrics.batch_size != 0 AND attributes.run_id IN ('a1b2c3d4', 'e5f6g7h8')",
    "metrics.loss <= 0.15 AND metrics.loss >= 0.1",
    'params.batch_size != "None"',
    'params.model != "None"',
    "\nattributes.run_id IN ('{id:guide-1}','{id:guide-2}','{id:guide-6}')\n  AND metrics.loss > 0.3\n"
    '  AND metrics."f1 score" < 0.5\n  AND params.model LIKE "GPT%"\n',
    "attributes.run_id IN ('{id:guide-1}','{id:guide-3}', '{id:taxi-2}')",
    "metrics.accuracy > 0.92",
    'params.model = "LogisticRegression" and params.lambda = "0.001" and metrics.error <= 0.05',
    'attributes.status = "FAILED"',
    'attributes.status = "FINISHED"',
    "attributes.created > 1700000000000",
    "attributes.Created > 1700000300000",
    "attributes.start_time > 1700000300000",
    "metrics.`f1 score` > 0.5",
    "tags.`mlflow.user` = 'john@mlflow.com'",
    'tags."mlflow.user" = \'alice\'',
    "tags.`model` LIKE 'sklearn%'",
    "tags.`type` ILIKE '%Logistic%'",
    "attributes.`run name` = 'taxi-1'",
    "attributes.`Run name` = 'taxi-2'",
    "attributes.`Run Name` LIKE 'taxi-1%'",
    'params.alpha = "0.3" and params.lambda = "0.001" and metrics.error <= 0.05',
    'params."model-type" = \'cnn\'',
    'metrics."2019-04-02 error rate" < 1',
    "params.model = 'CNN' and params.layers = '10' and metrics.`prediction accuracy` >= 0.945",
    "params.model = 'Inception'",
    "metrics.rmse < 0.9 and tags.production = 'true'",
    "metrics.accuracy_score < 99.90",
    "tags.s.release ILIKE '%rc%'",
    "attributes.artifact_uri = 'models:/mymodel/1'",
    # the seeds' tutorials
    "metrics.rmse < 7",
    "tags.model = 'xgboost'",
    "tags.developer = 'Alexa'",
    "tags.`project_name` = 'grocery-forecasting'",
]

EDGE_FILTERS = [
    # NaN and infinities: NaN matches only !=; inf compares as a huge number
    "metrics.rmse > 1e300",
    "metrics.rmse < -1e300",
    "metrics.rmse != 6.3",
    "metrics.rmse = 6.3",
    "metrics.rmse >= 0",
    "metrics.val_loss > 0.5",
    "metrics.val_loss < 0.5",
    "metrics.val_loss != 0.5",
    "metrics.val_loss = 0.8",
    "metrics.rmse > 6 AND metrics.rmse < 7.0",
    "metrics.rmse > -7 and metrics.rmse <= 6.99",
    "metrics.accuracy_score = 12",
    "metrics.accuracy_score > 1.2e1",
    # missing keys never match, IS NULL finds them
    "params.max_depth != '30'",
    "tags.environment IS NULL",
    "tags.environment IS NOT NULL",
    "params.model IS NULL",
    "params.model IS NOT NULL AND tags.model IS NULL",
    "tags.environment is null and params.batch_size = '4'",
    "tags.production != 'true'",
    # strings: case, %, _, quotes, non-ASCII (ILIKE folds ASCII only, as SQLite)
    "params.model = 'GPT-3.5'",
    "params.model LIKE 'GPT-_'",
    "params.model LIKE '%.%'",
    "params.model LIKE 'gpt%'",
    "params.model ILIKE 'gpt-4'",
    "params.alpha = \"it's\"",
    "params.note LIKE '50\\% off%'",
    "params.note LIKE '%off_sale'",
    "params.note LIKE '50%'",
    "params.alpha ILIKE 'ärger'",
    "params.alpha ILIKE 'Ä%'",
    "params.alpha LIKE '%rger'",
    "params.glob LIKE 'a*b?[c]'",
    "params.glob LIKE 'a_b%'",
    "params.glob LIKE '%[c]'",
    "params.glob LIKE 'a*%'",
    "params.glob ILIKE 'A*B%'",
    "params.glob = 'a*b?[c]'",
    "tags.model ILIKE 'XGB%'",
    "tags.model LIKE 'xgb%'",
    "tags.model != 'xgboost'",
    "tags.`model type` = 'tree'",
    "tags.mlflow.runName LIKE 'guide-%'",
    "tags.`mlflow.note.content` = 'best'",
    # attributes
    "attributes.status != 'FINISHED'",
    "status = 'RUNNING'",
    "attr.status LIKE 'F%'",
    "run.status ILIKE 'killed'",
    "attributes.end_time > 0",
    "attributes.end_time != 1700000500000",
    "attributes.end_time <= 1700000440000",
    "attributes.start_time = 1700000420000",
    "attributes.start_time > 1700000419999.5",
    "created < 1700000200000",
    "attributes.user_id = 'alice'",
    "attributes.user_id != 'alice'",
    "run_name LIKE '%-1%'",
    "attributes.run_name != 'taxi-1'",
    "attributes.run_id NOT IN ('{id:taxi-1}', '{id:taxi-2}')",
    "attributes.run_id = '{id:taxi-3}'",
    "attributes.run_id LIKE '{id:taxi-3}'",
    # datasets: any of a run's inputs may match each clause
    "datasets.name = 'custom' AND datasets.context = 'eval'",
    "datasets.name = 'wine'",
    "dataset.name != 'custom'",
    "datasets.context NOT IN ('train')",
    "datasets.context IN ('eval', 'test')",
    "datasets.digest LIKE 'auto%' AND datasets.context = 'test'",
    "dataset.name ILIKE 'ALSO%'",
    # entity spellings
    "metric.rmse < 7 AND param.alpha = '0.01' AND tag.model = 'xgboost'",
    "parameter.alpha = '0.01' AND parameters.alpha != '0.5'",
    "attribute.status = 'FINISHED' AND metrics.rmse <= 6.3",
    "`metrics`.rmse < 6",
    "metrics.rmse<7 AND params.alpha='0.01'",
    "metrics.rmse < 7 and params.alpha = '0.01' AnD tags.model = 'xgboost'",
]

# Rejected by both.
INVALID_FILTERS = [
    "metrics.rmse < 'seven'",
    "metrics.rmse LIKE '7'",
    "metrics.rmse IS NULL",
    "params.alpha = 0.01",
    "params.alpha > '0.01'",
    "params.alpha IN ('0.01')",
    "tags.model = xgboost",
    "attributes.status IN ('FINISHED')",
    "attributes.status = 5",
    "attributes.start_time > '5'",
    "attributes.end_time IS NULL",
    "attributes.lifecycle_stage = 'deleted'",
    "attributes.experiment_id = '1'",
    "datasets.source = 'x'",
    "datasets.name > 'a'",
    "metrics.rmse < 7 OR metrics.rmse > 8",
    "(metrics.rmse < 7)",
    "metrics.rmse",
    "metrics.rmse <",
    "< 7",
    "Metrics.rmse < 7",
    "metric.a-b < 1",
    "metrics.rmse < 7;",
    "metrics.rmse < 7 -- comment",
    "attributes.run_id IN ()",
    "attributes.run_id IN (1, 2)",
    "params.alpha = 'x' AND params.`",
    "rmse < 7",
    # In MLflow's docs (2.x), rejected by MLflow 3: IN works on run_id and dataset fields only.
    "attributes.`run_name` IN ('alpha', 'beta', 'gamma')",
]


@pytest.mark.parametrize("filter_string", DOCS_FILTERS + EDGE_FILTERS)
def test_filter_matches_mlflow(twin, filter_string):
    for view in (ViewType.ACTIVE_ONLY, ViewType.ALL):
        g, m = twin.both(filter_string, view=view)
        assert g == m, f"view {view}"
    assert isinstance(g, list)


def test_the_filters_select_something(twin):
    """The corpus is not vacuous: most queries match some runs, and not all of them."""
    sizes = [len(twin.both(f, view=ViewType.ALL)[0]) for f in DOCS_FILTERS + EDGE_FILTERS]
    assert sum(1 for s in sizes if 0 < s < len(SPECS)) >= 0.7 * len(sizes)


@pytest.mark.parametrize("filter_string", INVALID_FILTERS)
def test_invalid_filter_rejected_like_mlflow(twin, filter_string):
    g, m = twin.both(filter_string)
    assert m == "MlflowException"
    assert g == "SearchError"


# -- order_by -------------------------------------------------------------------------------------------------
ORDERS = [
    ["metrics.rmse"],
    ["metrics.rmse ASC"],
    ["metrics.rmse DESC"],
    ["metrics.val_loss ASC"],
    ["metrics.val_loss DESC"],
    ["metrics.`f1 score` DESC"],
    ["params.model"],
    ["params.model DESC", "metrics.rmse ASC"],
    ["params.alpha ASC", "metrics.rmse DESC"],
    ["params.`learning rate` DESC", "metrics.accuracy"],
    ["tags.model ASC"],
    ["tags.environment DESC"],
    ["tags.model", "params.alpha DESC", "metrics.rmse"],
    ["attributes.start_time ASC"],
    ["start_time"],
    ["created DESC"],
    ["Created"],
    ["attributes.end_time DESC"],
    ["attributes.end_time"],
    ["status", "run_name DESC"],
    ["attributes.run_name"],
    ["user_id DESC"],
    ["metrics.rmse desc"],
    ["metrics.missing_everywhere"],
]


@pytest.mark.parametrize("order_by", ORDERS, ids=lambda o: ",".join(o))
def test_order_by_matches_mlflow(twin, order_by):
    for filter_string in ("", "tags.model != 'lightgbm'"):
        g, m = twin.both(filter_string, order_by=order_by, view=ViewType.ALL)
        assert g == m


@pytest.mark.parametrize("order_by", [["metrics.rmse ASC", "metrics.rmse DESC"], ["metrics.rmse ASCENDING"],
                                      ["datasets.name"], ["attributes.lifecycle_stage"], ["metrics.rmse ASC DESC"],
                                      ["tags.`model"]])
def test_invalid_order_by_rejected_like_mlflow(twin, order_by):
    g, m = twin.both("", order_by=order_by)
    assert (g, m) == ("SearchError", "MlflowException")


def test_seed_tutorial_query(twin):
    """The nyc-taxi tutorial: best five runs under rmse 7, best first."""
    g, m = twin.both("metrics.rmse < 7", order_by=["metrics.rmse ASC"], max_results=5,
                     experiments=("nyc-taxi-experiment",))
    assert g == m == ["taxi-10", "taxi-killed", "taxi-7", "taxi-3", "taxi-11"]


# -- view types, experiments, paging ---------------------------------------------------------------------------
@pytest.mark.parametrize("view", [ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL])
@pytest.mark.parametrize("filter_string", ["", "tags.model = 'xgboost'", "metrics.rmse > 2"])
def test_view_types_match_mlflow(twin, view, filter_string):
    g, m = twin.both(filter_string, order_by=["metrics.rmse"], view=view)
    assert g == m
    if view == ViewType.DELETED_ONLY and not filter_string:
        assert set(g) == {"taxi-deleted", "taxi-deleted-2", "gone-1"}


def test_experiment_subsets_match_mlflow(twin):
    for experiments in [("search-run-guide",), ("conf-other", "nyc-taxi-experiment"), ("conf-gone",)]:
        for view in (ViewType.ACTIVE_ONLY, ViewType.ALL):
            g, m = twin.both("", experiments=experiments, view=view)
            assert g == m


@pytest.mark.parametrize("order_by", [None, ["metrics.rmse"], ["params.model DESC"]])
def test_paging_matches_mlflow(twin, order_by):
    pages = {}
    for side in ("g", "m"):
        names, token, seen = [], None, 0
        while True:
            page, token = twin.page(side, "", order_by, 4, token)
            names.append(page)
            seen += 1
            if not token:
                break
            assert seen < 50
        pages[side] = names
    assert pages["g"] == pages["m"]
    assert sum(len(p) for p in pages["g"]) == len(SPECS)


def test_max_results_matches_mlflow(twin):
    for n in (1, 2, 7, 40):
        g, m = twin.both("", order_by=["metrics.rmse DESC"], max_results=n, view=ViewType.ALL)
        assert g == m and len(g) == min(n, len(SPECS))


# -- the DataFrame --------------------------------------------------------------------------------------------
def _normal(value):
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if abs(value) >= 1.7976931348623157e308:  # MLflow's sqlite store keeps infinities as +-max float
            return "inf" if value > 0 else "-inf"
    return value


@pytest.mark.parametrize("filter_string,order_by", [("", None), ("metrics.rmse < 7", ["metrics.rmse"]),
                                                    ("params.model LIKE 'GPT%'", ["params.model DESC"])])
def test_dataframe_matches_mlflow(twin, filter_string, order_by):
    mlflow = require_mlflow()

    import gitexp

    g_ids = [twin.g_exp[e] for e in RUN_EXPERIMENTS]
    m_ids = [twin.m_exp[e] for e in RUN_EXPERIMENTS]
    previous = gitexp.get_tracking_uri() if gitexp.is_tracking_uri_set() else None
    gitexp.set_tracking_uri(twin.repo)
    mlflow.set_tracking_uri(twin.db_uri)
    try:
        g = gitexp.search_runs(g_ids, filter_string, order_by=order_by)
        m = mlflow.search_runs(m_ids, filter_string, order_by=order_by)
    finally:
        gitexp.fluent._reset()
        if previous:
            gitexp.set_tracking_uri(previous)
        mlflow.set_tracking_uri("")
    assert list(g.columns[:6]) == list(m.columns[:6])
    assert set(g.columns) == set(m.columns)
    assert len(g) == len(m) > 0
    assert g["start_time"].dtype == m["start_time"].dtype  # datetime64[<unit>, UTC], as pandas makes it
    assert g["end_time"].dtype == m["end_time"].dtype
    assert str(g["start_time"].dtype).endswith(", UTC]")
    g_names = list(g["tags.mlflow.runName"])
    assert g_names == list(m["tags.mlflow.runName"])
    for column in m.columns:
        if column in ("run_id", "experiment_id", "artifact_uri"):
            continue
        for name, gv, mv in zip(g_names, g[column], m[column], strict=True):
            gv, mv = _normal(gv), _normal(mv)
            if column.startswith("params.") or column.startswith("tags."):
                gv = None if gv is None or gv != gv else gv
                mv = None if mv is None or mv != mv else mv
            if column.endswith("_time"):
                gv = None if gv is None or gv != gv else gv
                mv = None if mv is None or mv != mv else mv
            assert gv == mv, (column, name)
    assert list(g["run_id"]) == [twin.g_ids[n] for n in g_names]
    assert list(g["experiment_id"]) == [twin.g_exp[s.experiment] for n in g_names for s in SPECS if s.name == n]


def test_run_entities_equal_get_run(twin):
    """Runs built from the index are the runs get_run folds from the branch."""
    client = twin.gitexp_client()
    found = client.search_runs([twin.g_exp[e] for e in RUN_EXPERIMENTS], run_view_type=ViewType.ALL)
    assert len(found) == len(SPECS)
    for run in found:
        assert run == client.get_run(run.info.run_id)
    mlflow_runs = {r.info.run_name: r for r in twin.mlflow_client().search_runs(
        [twin.m_exp[e] for e in RUN_EXPERIMENTS], run_view_type=ViewType.ALL)}
    for run in found:
        other = mlflow_runs[run.info.run_name]
        assert run.info.status == other.info.status
        assert run.info.lifecycle_stage == other.info.lifecycle_stage
        assert (run.info.start_time, run.info.end_time, run.info.user_id) == \
            (other.info.start_time, other.info.end_time, other.info.user_id)
        assert run.data.params == other.data.params
        assert run.data.tags == other.data.tags
        assert {k: _normal(v) for k, v in run.data.metrics.items()} == \
            {k: _normal(v) for k, v in other.data.metrics.items()}
        assert [(d.dataset.name, d.dataset.digest, [(t.key, t.value) for t in d.tags])
                for d in run.inputs.dataset_inputs] == \
            [(d.dataset.name, d.dataset.digest, [(t.key, t.value) for t in d.tags])
             for d in other.inputs.dataset_inputs]


# -- experiments ----------------------------------------------------------------------------------------------
EXPERIMENT_QUERIES = [
    ("", None),
    ("tags.`project_name` = 'grocery-forecasting'", None),
    ("attribute.name = 'conf-other'", None),
    ("name = 'conf-other'", None),
    ("name LIKE 'conf%'", None),
    ("name ILIKE 'CONF%'", ["name DESC"]),
    ("name != 'Default'", ["name"]),
    ("tags.team != 'x'", None),
    ("tags.team ILIKE '%ML%'", None),
    ("tags.team LIKE '%ml'", None),
    ("tags.project_name IS NULL", None),
    ("tags.project_name IS NOT NULL", ["name ASC"]),
    ("name LIKE '%' AND tags.team = 'ml'", None),
    # gitexp's implicit Default experiment has no creation time; MLflow's has one.
    ("creation_time > 0 AND name != 'Default'", ["creation_time ASC"]),
    ("", ["creation_time"]),
    ("", ["creation_time DESC"]),
    ("", ["last_update_time DESC", "name"]),
    ("", ["name DESC"]),
    ("tag.team = 'stores-ml'", None),
]


@pytest.mark.parametrize("filter_string,order_by", EXPERIMENT_QUERIES)
def test_search_experiments_matches_mlflow(twin, filter_string, order_by):
    for view in (ViewType.ACTIVE_ONLY, ViewType.ALL, ViewType.DELETED_ONLY):
        g = [e.name for e in twin.gitexp_client().search_experiments(view, 1000, filter_string, order_by)]
        m = [e.name for e in twin.mlflow_client().search_experiments(view, 1000, filter_string, order_by)]
        assert g == m, view


@pytest.mark.parametrize("filter_string", ["name IN ('a')", "params.a = 'x'", "name = 5", "creation_time = 'x'",
                                          "creation_time > 1.5", "tags.a > 'x'", "lifecycle_stage = 'active'",
                                          "name = 'a' OR name = 'b'"])
def test_invalid_experiment_filter_rejected_like_mlflow(twin, filter_string):
    from mlflow.exceptions import MlflowException

    from gitexp.exceptions import SearchError

    with pytest.raises(MlflowException):
        twin.mlflow_client().search_experiments(filter_string=filter_string)
    with pytest.raises(SearchError):
        twin.gitexp_client().search_experiments(filter_string=filter_string)


def test_experiment_paging_matches_mlflow(twin):
    out = {}
    for side, client in (("g", twin.gitexp_client()), ("m", twin.mlflow_client())):
        names, token = [], None
        while True:
            page = client.search_experiments(ViewType.ALL, 2, None, ["name"], token)
            names.append([e.name for e in page])
            token = page.token
            if not token:
                break
        out[side] = names
    assert out["g"] == out["m"]
