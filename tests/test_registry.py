"""The model registry API: the promotion workflow users learn, and MLflow's rules and errors."""

from __future__ import annotations

import pytest

import gitexp
from gitexp.entities.model_registry import ModelVersion, ModelVersionStatus, RegisteredModel
from gitexp.exceptions import InvalidParameterValue, ResourceDoesNotExist, SearchError
from gitexp.store.layout import load_yaml
from gitexp.store.registry import parse_models_uri, resolve_models_uri

from .conftest import git, require_mlflow


def _run(name: str = "train") -> str:
    with gitexp.start_run(run_name=name) as run:
        gitexp.log_param("alpha", 0.1)
    return run.info.run_id


def test_promotion_workflow_from_the_tutorial(client, capsys):
    """Register two versions, Staging then Production with archive_existing_versions,
    descriptions, get_latest_versions, models:/name/Production and the alias champion."""
    run1, run2 = _run("lr"), _run("xgb")
    mv1 = gitexp.register_model(model_uri=f"runs:/{run1}/model", name="nyc-taxi-regressor")
    assert "Successfully registered model 'nyc-taxi-regressor'." in capsys.readouterr().err
    mv2 = gitexp.register_model(model_uri=f"runs:/{run2}/models_mlflow", name="nyc-taxi-regressor")
    assert (mv1.version, mv2.version) == (1, 2)
    assert (mv1.run_id, mv1.source) == (run1, f"runs:/{run1}/model")  # source stays the runs:/ URI
    assert mv1.current_stage == "None" and mv1.status == "READY"

    latest = client.get_latest_versions(name="nyc-taxi-regressor")
    assert [(v.version, v.current_stage) for v in latest] == [(2, "None")]

    client.transition_model_version_stage("nyc-taxi-regressor", 1, "Staging", archive_existing_versions=False)
    client.transition_model_version_stage("nyc-taxi-regressor", 1, "Production", archive_existing_versions=True)
    client.transition_model_version_stage("nyc-taxi-regressor", 2, "Staging", archive_existing_versions=False)
    client.update_model_version("nyc-taxi-regressor", 2, description="The model version 2 was transitioned "
                                                                     "to Staging on 2024-05-01")
    stages = {v.version: v.current_stage for v in client.search_model_versions("name='nyc-taxi-regressor'")}
    assert stages == {1: "Production", 2: "Staging"}
    assert resolve_models_uri(client._store, "models:/nyc-taxi-regressor/Production") == f"runs:/{run1}/model"
    assert resolve_models_uri(client._store, "models:/nyc-taxi-regressor/staging") == f"runs:/{run2}/models_mlflow"

    # Staging looked better: promote it, archiving the old production version.
    mv = client.transition_model_version_stage("nyc-taxi-regressor", "2", "production",
                                               archive_existing_versions=True)
    assert mv.current_stage == "Production"
    assert client.get_model_version("nyc-taxi-regressor", 1).current_stage == "Archived"
    assert [(v.version, v.current_stage) for v in client.get_latest_versions("nyc-taxi-regressor")] == \
        [(1, "Archived"), (2, "Production")]
    assert [v.version for v in client.get_latest_versions("nyc-taxi-regressor", stages=["Production"])] == [2]
    assert client.get_latest_versions("nyc-taxi-regressor", stages=["Staging"]) == []
    assert resolve_models_uri(client._store, "models:/nyc-taxi-regressor/Production") == \
        f"runs:/{run2}/models_mlflow"
    assert client.get_model_version("nyc-taxi-regressor", 2).description.startswith("The model version 2")

    client.update_registered_model("nyc-taxi-regressor", description="Trip duration")
    client.set_registered_model_alias("nyc-taxi-regressor", "champion", 2)
    model = client.get_registered_model("nyc-taxi-regressor")
    assert model.description == "Trip duration"
    assert model.aliases == {"champion": 2}
    champion = client.get_model_version_by_alias("nyc-taxi-regressor", "champion")
    assert (champion.version, champion.aliases) == (2, ["champion"])
    assert resolve_models_uri(client._store, "models:/nyc-taxi-regressor@champion") == \
        f"runs:/{run2}/models_mlflow"
    assert client.get_model_version_download_uri("nyc-taxi-regressor", 1) == f"runs:/{run1}/model"
    # The working tree, index and HEAD were never touched.
    assert git("status", "--porcelain", cwd=client.tracking_uri) == ""
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=client.tracking_uri).strip() == "main"


def test_entities_have_mlflows_attribute_names(client):
    require_mlflow()
    from mlflow.entities import model_registry as ml
    from mlflow.entities.model_registry.model_version_status import ModelVersionStatus as MlflowStatus

    client.create_registered_model("m", tags={"t": "1"}, description="d")
    client.create_model_version("m", "runs:/abc/model", run_id="abc", tags={"k": "v"})
    client.set_registered_model_alias("m", "champion", 1)
    ours_model, ours_version = client.get_registered_model("m"), client.get_model_version("m", 1)
    for ours, theirs in ((RegisteredModel, ml.RegisteredModel), (ModelVersion, ml.ModelVersion),
                         (gitexp.entities.model_registry.RegisteredModelAlias, ml.RegisteredModelAlias),
                         (gitexp.entities.model_registry.ModelVersionTag, ml.ModelVersionTag),
                         (gitexp.entities.model_registry.RegisteredModelTag, ml.RegisteredModelTag)):
        theirs_props = {n for n in dir(theirs) if isinstance(getattr(theirs, n), property)}
        ours_props = {n for n in dir(ours) if isinstance(getattr(ours, n), property)}
        assert theirs_props <= ours_props, (ours.__name__, theirs_props - ours_props)
    assert ModelVersionStatus._STRING_TO_STATUS == MlflowStatus._STRING_TO_STATUS
    assert ModelVersionStatus.to_string(ModelVersionStatus.READY) == MlflowStatus.to_string(MlflowStatus.READY)
    # Values and their types match what MLflow's local registry returns.
    theirs = ml.ModelVersion("m", 1, ours_version.creation_timestamp, current_stage="None",
                             source="runs:/abc/model", run_id="abc", tags=[ml.ModelVersionTag("k", "v")],
                             aliases=["champion"])
    for name in ("name", "version", "current_stage", "source", "run_id", "tags", "aliases", "status"):
        assert getattr(ours_version, name) == getattr(theirs, name), name
    assert ours_model.tags == {"t": "1"} and ours_model.aliases == {"champion": 1}
    assert "version=1" in repr(ours_version) and repr(ours_model).startswith("<RegisteredModel: aliases=")


@pytest.mark.parametrize("call, code, words", [
    (lambda c: c.get_registered_model("nope"), "RESOURCE_DOES_NOT_EXIST", "name=nope not found"),
    (lambda c: c.create_registered_model("m"), "RESOURCE_ALREADY_EXISTS", "(name=m) already exists"),
    (lambda c: c.get_model_version("m", 9), "RESOURCE_DOES_NOT_EXIST", "version=9) not found"),
    (lambda c: c.get_model_version("m", "one"), "INVALID_PARAMETER_VALUE", "'version' must be an integer"),
    (lambda c: c.transition_model_version_stage("m", 1, "Prod"), "INVALID_PARAMETER_VALUE", "'Prod'"),
    (lambda c: c.transition_model_version_stage("m", 1, "Archived", archive_existing_versions=True),
     "INVALID_PARAMETER_VALUE", "not an Active stage"),
    (lambda c: c.set_registered_model_alias("m", "Latest", 1), "INVALID_PARAMETER_VALUE", "reserved"),
    (lambda c: c.set_registered_model_alias("m", "v2", 1), "INVALID_PARAMETER_VALUE", "reserved"),
    (lambda c: c.set_registered_model_alias("m", "my alias", 1), "INVALID_PARAMETER_VALUE", "'my alias'"),
    (lambda c: c.set_registered_model_alias("m", "champion", 7), "RESOURCE_DOES_NOT_EXIST", "version=7"),
    (lambda c: c.get_model_version_by_alias("m", "nope"), "INVALID_PARAMETER_VALUE", "alias nope not found"),
    (lambda c: c.create_registered_model("a/b"), "INVALID_PARAMETER_VALUE", "'a/b'"),
    (lambda c: c.create_registered_model("a:b"), "INVALID_PARAMETER_VALUE", "'a:b'"),
    (lambda c: c.create_registered_model(""), "INVALID_PARAMETER_VALUE", "non-empty name"),
    (lambda c: c.create_registered_model(".."), "INVALID_PARAMETER_VALUE", "'..'"),
    (lambda c: c.create_model_version("nope", "runs:/x/model"), "RESOURCE_DOES_NOT_EXIST", "name=nope"),
    (lambda c: c.create_model_version("m", ""), "INVALID_PARAMETER_VALUE", "needs a source"),
    (lambda c: c.create_model_version("m", "models:/m/5"), "INVALID_PARAMETER_VALUE", "models:/m/5"),
    (lambda c: c.rename_registered_model("m", "other"), "RESOURCE_ALREADY_EXISTS", "(name=other)"),
    (lambda c: c.set_registered_model_tag("m", "../x", "v"), "INVALID_PARAMETER_VALUE", "'../x'"),
    (lambda c: c.search_registered_models("name = 'm' OR name = 'x'"), "INVALID_PARAMETER_VALUE", "OR"),
    (lambda c: c.search_registered_models("run_id = 'x'"), "INVALID_PARAMETER_VALUE", "'run_id'"),
    (lambda c: c.search_model_versions("version_number LIKE '1'"), "INVALID_PARAMETER_VALUE", "LIKE"),
    (lambda c: c.search_registered_models(max_results=1001), "INVALID_PARAMETER_VALUE", "1001"),
    (lambda c: c.search_registered_models(order_by=["version_number"]), "INVALID_PARAMETER_VALUE",
     "'version_number'"),
])
def test_errors_carry_mlflows_codes_and_name_the_bad_value(client, call, code, words):
    client.create_registered_model("m")
    client.create_registered_model("other")
    client.create_model_version("m", "runs:/abc/model")
    with pytest.raises(gitexp.MlflowException) as info:
        call(client)
    assert info.value.error_code == code
    assert words in info.value.message


def test_stage_names_are_case_insensitive_and_canonical(client):
    client.create_registered_model("m")
    client.create_model_version("m", "/models/a")
    for spelling, canonical in (("STAGING", "Staging"), ("production", "Production"),
                                ("archived", "Archived"), ("none", "None")):
        assert client.transition_model_version_stage("m", 1, spelling).current_stage == canonical
    client.transition_model_version_stage("m", 1, "pRoDuCtIoN")
    assert [v.version for v in client.get_latest_versions("m", ["PRODUCTION"])] == [1]
    assert client.get_model_version_stages("m", 1) == ["None", "Staging", "Production", "Archived"]


def test_archive_existing_versions_archives_only_that_stage(client):
    client.create_registered_model("m")
    for i in range(4):
        client.create_model_version("m", f"/models/{i}")
    client.transition_model_version_stage("m", 1, "Production")
    client.transition_model_version_stage("m", 2, "Production")   # two in Production is allowed
    client.transition_model_version_stage("m", 3, "Staging")
    client.transition_model_version_stage("m", 4, "Production", archive_existing_versions=True)
    stages = {v.version: v.current_stage for v in client.search_model_versions("name = 'm'")}
    assert stages == {1: "Archived", 2: "Archived", 3: "Staging", 4: "Production"}


def test_version_numbers_are_never_reused_and_aliases_go_with_deleted_versions(client):
    client.create_registered_model("m")
    for i in range(3):
        client.create_model_version("m", f"/models/{i}")
    client.set_registered_model_alias("m", "champion", 3)
    client.set_registered_model_alias("m", "challenger", 2)
    client.delete_model_version("m", 3)
    with pytest.raises(ResourceDoesNotExist):
        client.get_model_version("m", 3)
    assert client.get_registered_model("m").aliases == {"challenger": 2}
    assert client.create_model_version("m", "/models/next").version == 4
    assert client.get_model_version_by_alias("m", "latest").version == 4
    assert resolve_models_uri(client._store, "models:/m/latest") == "/models/next"
    # Deleting the model deletes its versions; a model created again under the name starts at 1.
    client.delete_registered_model("m")
    with pytest.raises(ResourceDoesNotExist):
        client.get_registered_model("m")
    client.create_registered_model("m")
    assert client.get_registered_model("m").aliases == {}
    assert client.create_model_version("m", "/models/fresh").version == 1


def test_rename_keeps_versions_stages_and_aliases(client):
    client.create_registered_model("taxi", tags={"team": "ml"})
    client.create_model_version("taxi", "/models/a")
    client.transition_model_version_stage("taxi", 1, "Production")
    client.set_registered_model_alias("taxi", "champion", 1)
    renamed = client.rename_registered_model("taxi", "nyc-taxi")
    assert (renamed.name, renamed.tags, renamed.aliases) == ("nyc-taxi", {"team": "ml"}, {"champion": 1})
    assert client.get_model_version("nyc-taxi", 1).current_stage == "Production"
    assert resolve_models_uri(client._store, "models:/nyc-taxi@champion") == "/models/a"
    with pytest.raises(ResourceDoesNotExist):
        client.get_registered_model("taxi")
    assert client.create_model_version("nyc-taxi", "/models/b").version == 2
    old_name_history = client.get_registered_model_history("taxi")  # the audit trail survives renames
    assert [(h.action, h.model) for h in old_name_history][-2:] == [("rename", "nyc-taxi"),
                                                                    ("create_version", "nyc-taxi")]
    # The old name is free again, in a directory of its own.
    client.create_registered_model("taxi")
    assert client.create_model_version("taxi", "/models/c").version == 1
    tree = git("ls-tree", "--name-only", "gitexp:.tracking/registry", cwd=client.tracking_uri).split()
    assert tree == ["taxi", "taxi~2"]
    assert client.rename_registered_model("nyc-taxi", "nyc-taxi").name == "nyc-taxi"  # no-op, as MLflow


def test_tags_on_models_and_versions(client):
    client.create_registered_model("m", tags={"team": "ml"})
    client.create_model_version("m", "/models/a", tags={"validated": "no"}, description="first")
    client.create_model_version("m", "/models/b")
    client.set_registered_model_tag("m", "owner", "rebeka")
    client.delete_registered_model_tag("m", "team")
    client.delete_registered_model_tag("m", "never-set")  # not an error, as in MLflow
    client.set_model_version_tag("m", 1, "validated", "yes")
    client.set_model_version_tag("m", "2", "flag", 3)
    client.delete_model_version_tag("m", 2, "flag")
    client.transition_model_version_stage("m", 2, "Staging")
    client.set_model_version_tag("m", key="via-stage", value="x", stage="staging")
    assert client.get_registered_model("m").tags == {"owner": "rebeka"}
    assert client.get_model_version("m", 1).tags == {"validated": "yes"}
    assert client.get_model_version("m", 1).description == "first"
    assert client.get_model_version("m", 2).tags == {"via-stage": "x"}
    with pytest.raises(InvalidParameterValue, match="exactly one of version and stage"):
        client.set_model_version_tag("m", 1, "k", "v", stage="Staging")


def test_search_registered_models_filter_order_and_pages(client):
    for name, team in (("churn", "growth"), ("churn-v2", "growth"), ("taxi", "ml"), ("Taxi-eu", "ml")):
        client.create_registered_model(name, tags={"team": team})
    names = lambda page: [m.name for m in page]  # noqa: E731
    assert names(client.search_registered_models()) == ["Taxi-eu", "churn", "churn-v2", "taxi"]
    assert names(client.search_registered_models("name LIKE 'churn%'")) == ["churn", "churn-v2"]
    assert names(client.search_registered_models("name LIKE 'taxi%'")) == ["taxi"]
    assert names(client.search_registered_models("name ILIKE 'taxi%'")) == ["Taxi-eu", "taxi"]
    assert names(client.search_registered_models("tags.team = 'ml' AND name != 'taxi'")) == ["Taxi-eu"]
    assert names(client.search_registered_models("name IN ('taxi', 'churn')")) == ["churn", "taxi"]
    assert names(client.search_registered_models("tags.missing != 'x'")) == []
    assert names(client.search_registered_models(order_by=["name DESC"])) == ["taxi", "churn-v2", "churn", "Taxi-eu"]
    assert names(client.search_registered_models(order_by=["last_updated_timestamp DESC"]))[0] == "Taxi-eu"
    first = client.search_registered_models(max_results=3)
    assert names(first) == ["Taxi-eu", "churn", "churn-v2"] and first.token
    second = client.search_registered_models(max_results=3, page_token=first.token)
    assert names(second) == ["taxi"] and second.token is None
    assert [m.name for m in gitexp.search_registered_models(filter_string="tags.team = 'growth'")] == \
        ["churn", "churn-v2"]
    assert len(client.list_registered_models()) == 4
    with pytest.raises(SearchError, match="page token"):
        client.search_registered_models(page_token="garbage")


def test_search_model_versions_filters(client):
    run = _run()
    client.create_registered_model("a")
    client.create_registered_model("b")
    client.create_model_version("a", f"runs:/{run}/model", run_id=run, tags={"validated": "yes"})
    client.create_model_version("a", "/models/a2")
    client.create_model_version("b", "/models/b1", tags={"validated": "no"})
    found = lambda f, **kw: [(v.name, v.version) for v in client.search_model_versions(f, **kw)]  # noqa: E731
    assert found(f"run_id = '{run}'") == [("a", 1)]
    assert found("name = 'a'", order_by=["version_number ASC"]) == [("a", 1), ("a", 2)]
    assert found("name = 'a' AND version_number > 1") == [("a", 2)]
    assert found("version_number = '1'", order_by=["name DESC"]) == [("b", 1), ("a", 1)]
    assert found("tags.validated = 'yes'") == [("a", 1)]
    assert found("source_path LIKE '/models/%'", order_by=["name ASC", "version_number DESC"]) == \
        [("a", 2), ("b", 1)]
    assert found("name IN ('b')") == [("b", 1)]
    # Default order: most recently updated first.
    assert found(None) == [("b", 1), ("a", 2), ("a", 1)]
    assert [v.version for v in gitexp.search_model_versions(filter_string="name='a'")] == [2, 1]


def test_register_model_creates_missing_model_and_checks_the_run(client, capsys):
    run = _run()
    mv = gitexp.register_model(f"runs:/{run}/model", "fresh", tags={"stage-gate": "pending"})
    assert client.get_registered_model("fresh").name == "fresh"
    assert (mv.version, mv.run_id, mv.tags) == (1, run, {"stage-gate": "pending"})
    again = gitexp.register_model(f"runs:/{run}/model", "fresh")
    assert again.version == 2
    assert "already exists. Creating a new version" in capsys.readouterr().err
    with pytest.raises(ResourceDoesNotExist, match="0123456789abcdef0123456789abcdef"):
        gitexp.register_model("runs:/0123456789abcdef0123456789abcdef/model", "fresh")
    with pytest.raises(InvalidParameterValue, match="runs:/<run_id>"):
        gitexp.register_model("runs:/", "fresh")
    # A registered version can be registered again under another name: its files are the same.
    copy = gitexp.register_model("models:/fresh/1", "copied")
    assert (copy.source, copy.run_id) == ("models:/fresh/1", run)
    assert client.get_model_version_download_uri("copied", 1) == f"runs:/{run}/model"
    assert client.copy_model_version("models:/fresh@latest", "copied").version == 2


def test_models_uri_forms_and_errors(client):
    client.create_registered_model("m")
    client.create_model_version("m", "/models/1")
    assert parse_models_uri("models:/m/3").version == 3
    assert parse_models_uri("models:/m/PRODUCTION").stage == "Production"
    assert parse_models_uri("models:/m@champion").alias == "champion"
    parsed = parse_models_uri("models:/m/latest")
    assert (parsed.version, parsed.stage, parsed.alias) == (None, None, None)
    for bad in ("models:/", "models:/m/", "models:/m/1/extra", "models:/@x", "runs:/abc/model",
                "models:/m/Prod", "models:/just-an-id"):
        with pytest.raises(InvalidParameterValue):
            parse_models_uri(bad)
    with pytest.raises(ResourceDoesNotExist, match="stage 'Production'"):
        resolve_models_uri(client._store, "models:/m/Production")
    with pytest.raises(ResourceDoesNotExist, match="name=nope"):
        resolve_models_uri(client._store, "models:/nope/1")
    assert client.resolve_model_version("models:/m/1").source == "/models/1"


def test_every_change_is_a_readable_event_committed_by_its_author(client, monkeypatch):
    client.create_registered_model("m")
    client.create_model_version("m", "/models/1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Release Manager")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "rm@example.com")
    client.transition_model_version_stage("m", 1, "Production")
    client.set_registered_model_alias("m", "champion", 1)
    history = client.get_registered_model_history("m")
    assert [(h.action, h.version, h.user) for h in history] == [
        ("create_model", None, "Test Author"), ("create_version", 1, "Test Author"),
        ("transition_stage", 1, "Release Manager"), ("set_alias", 1, "Release Manager")]
    promote = history[2]
    assert promote.detail == "None -> Production" and promote.email == "rm@example.com"
    assert promote.timestamp >= history[0].timestamp
    repo = client.tracking_uri
    author = git("log", "-1", "--format=%an <%ae>|%cn", promote.commit, cwd=repo).strip()
    assert author == "Release Manager <rm@example.com>|Release Manager"
    doc = load_yaml(git("show", f"gitexp:{promote.event}", cwd=repo))
    assert doc["user"] == "Release Manager" and doc["model"] == "m"
    assert doc["ops"] == [{"op": "transition_stage", "stage": "Production", "archive_existing_versions": False,
                           "uid": doc["ops"][0]["uid"], "version": 1}]
    assert promote.event.startswith(".tracking/registry/m/events/")
    # Deleted models keep their audit trail.
    client.delete_registered_model("m")
    assert [h.action for h in client.get_registered_model_history("m")][-1] == "delete_model"
    with pytest.raises(ResourceDoesNotExist, match="now or in the past"):
        client.get_registered_model_history("never")


def test_model_names_with_odd_characters_round_trip(client):
    for name in ("Ünïcode model", "with spaces", ".hidden", "per%cent", "x" * 256):
        client.create_registered_model(name)
        client.create_model_version(name, "/m")
        assert client.get_model_version(name, 1).name == name
    dirs = git("ls-tree", "--name-only", "gitexp:.tracking/registry", cwd=client.tracking_uri).split("\n")
    assert all(len(d.encode()) <= 150 for d in dirs)
    with pytest.raises(InvalidParameterValue, match="limit is 256"):
        client.create_registered_model("x" * 257)


# gitexp explains that sqlite:///mlflow.db means "the repository around it"
@pytest.mark.filterwarnings("ignore:gitexp keeps runs in a git repository")
def test_the_tutorials_registry_code_runs_as_written(repo):
    """Seed tutorial 000, with `mlflow` replaced by `gitexp`."""
    from gitexp.tracking import MlflowClient

    MLFLOW_TRACKING_URI = "sqlite:///mlflow.db"
    client = MlflowClient(tracking_uri=MLFLOW_TRACKING_URI)
    gitexp.set_tracking_uri(MLFLOW_TRACKING_URI)
    for _ in range(4):
        run_id = _run()
        model_uri = f"runs:/{run_id}/model"
        gitexp.register_model(model_uri=model_uri, name="nyc-taxi-regressor")

    model_name = "nyc-taxi-regressor"
    latest_versions = client.get_latest_versions(name=model_name)
    assert [(version.version, version.current_stage) for version in latest_versions] == [(4, "None")]

    model_version = 4
    new_stage = "Staging"
    client.transition_model_version_stage(
        name=model_name,
        version=model_version,
        stage=new_stage,
        archive_existing_versions=False
    )
    from datetime import datetime
    date = datetime.today().date()
    client.update_model_version(
        name=model_name,
        version=model_version,
        description=f"The model version {model_version} was transitioned to {new_stage} on {date}"
    )
    assert client.get_model_version(model_name, 4).current_stage == "Staging"
    assert client.get_model_version(model_name, 4).description.startswith("The model version 4 was transitioned")
    assert [m.name for m in client.list_registered_models()] == [model_name]  # tutorial 001's call
    assert resolve_models_uri(client._store, f"models:/{model_name}/Staging") == model_uri
