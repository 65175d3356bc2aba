"""The same registry workflow against real MLflow (SQLite registry) and gitexp: same observable results."""

from __future__ import annotations

import warnings

import pytest

from .conftest import require_mlflow


def _workflow(client, resolve) -> dict:
    """The tutorial's promotion workflow plus the corners people hit; returns what a user would see."""
    seen: dict = {}
    name = "nyc-taxi-regressor"

    def stages() -> dict:
        return {int(v.version): v.current_stage
                for v in client.search_model_versions(f"name = '{name}'", order_by=["version_number ASC"])}

    model = client.create_registered_model(name, tags={"team": "ml"}, description="Trip duration")
    seen["created"] = (model.name, model.tags, model.description, model.aliases, model.latest_versions)
    for i, run_id in enumerate(("aaa", "bbb", "ccc"), start=1):
        mv = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id, tags={"i": str(i)})
        seen[f"v{i}"] = (int(mv.version), mv.current_stage, mv.source, mv.run_id, mv.tags, mv.status, mv.aliases)
    steps = [(1, "staging", False), (1, "Production", True), (2, "Staging", False), (2, "production", True),
             (3, "STAGING", True), (3, "None", False), (3, "Staging", False), (1, "archived", False)]
    for version, stage, archive in steps:
        mv = client.transition_model_version_stage(name, version, stage, archive_existing_versions=archive)
        seen[f"transition {version} {stage} {archive}"] = (mv.current_stage, stages())
    seen["latest"] = [(int(v.version), v.current_stage) for v in client.get_latest_versions(name)]
    seen["latest prod"] = [(int(v.version), v.current_stage) for v in client.get_latest_versions(name, ["Production"])]
    seen["latest staging+none"] = [int(v.version) for v in client.get_latest_versions(name, ["staging", "None"])]
    client.update_model_version(name, 2, description="transitioned to Production")
    client.update_registered_model(name, description="Trip duration, NYC")
    client.set_registered_model_alias(name, "champion", 2)
    client.set_registered_model_alias(name, "challenger", 3)
    client.set_registered_model_alias(name, "champion", "3")
    client.set_registered_model_alias(name, "champion", 2)
    seen["aliases"] = dict(client.get_registered_model(name).aliases)
    for alias in ("champion", "challenger", "latest"):
        mv = client.get_model_version_by_alias(name, alias)
        seen[f"@{alias}"] = (int(mv.version), sorted(mv.aliases) if alias != "latest" else None, mv.description)
    for uri in (f"models:/{name}/Production", f"models:/{name}/staging", f"models:/{name}/1",
                f"models:/{name}@champion", f"models:/{name}/latest", f"models:/{name}@latest"):
        seen[uri] = resolve(client, uri)
    client.set_model_version_tag(name, 2, "validated", "yes")
    client.delete_model_version_tag(name, 1, "i")
    client.delete_model_version_tag(name, 1, "never-set")
    client.set_registered_model_tag(name, "owner", "rebeka")
    client.delete_registered_model_tag(name, "team")
    seen["tags"] = (client.get_registered_model(name).tags, client.get_model_version(name, 1).tags,
                    client.get_model_version(name, 2).tags)
    client.delete_model_version(name, 3)
    seen["after delete"] = (stages(), dict(client.get_registered_model(name).aliases))
    seen["next version"] = int(client.create_model_version(name, "runs:/ddd/model", run_id="ddd").version)
    seen["filters"] = [
        sorted(int(v.version) for v in client.search_model_versions("run_id = 'bbb'")),
        sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}' AND version_number >= 2")),
        sorted(int(v.version) for v in client.search_model_versions("tags.validated = 'yes'")),
        sorted(int(v.version) for v in client.search_model_versions("source_path LIKE 'runs:/%'")),
    ]
    client.create_registered_model("churn")
    client.create_registered_model("Churn-EU", tags={"team": "growth"})
    seen["models"] = [m.name for m in client.search_registered_models()]
    seen["models desc"] = [m.name for m in client.search_registered_models(order_by=["name DESC"])]
    seen["models ilike"] = [m.name for m in client.search_registered_models("name ILIKE 'churn%'")]
    seen["models like"] = [m.name for m in client.search_registered_models("name LIKE 'churn%'")]
    seen["models tag"] = [m.name for m in client.search_registered_models("tags.team = 'growth'")]
    page = client.search_registered_models(max_results=2)
    seen["page"] = ([m.name for m in page], [m.name for m in client.search_registered_models(
        max_results=2, page_token=page.token)])
    client.rename_registered_model(name, "taxi")  # MLflow's returns None despite its annotation
    renamed = client.get_registered_model("taxi")
    seen["renamed"] = (renamed.name, sorted(int(v.version) for v in client.search_model_versions("name = 'taxi'")),
                       dict(client.get_registered_model("taxi").aliases))
    seen["latest of renamed"] = [(int(v.version), v.current_stage) for v in renamed.latest_versions]
    client.delete_registered_model("churn")
    seen["after model delete"] = [m.name for m in client.search_registered_models()]

    errors = {}
    bad_calls = {
        "missing model": lambda: client.get_registered_model("nope"),
        "duplicate model": lambda: client.create_registered_model("taxi"),
        "missing version": lambda: client.get_model_version("taxi", 42),
        "deleted version": lambda: client.get_model_version("taxi", 3),
        "non-integer version": lambda: client.get_model_version("taxi", "two"),
        "unknown stage": lambda: client.transition_model_version_stage("taxi", 1, "Prod"),
        "reserved alias": lambda: client.set_registered_model_alias("taxi", "latest", 1),
        "version-like alias": lambda: client.set_registered_model_alias("taxi", "V1", 1),
        "bad alias characters": lambda: client.set_registered_model_alias("taxi", "a b", 1),
        "missing alias": lambda: client.get_model_version_by_alias("taxi", "nope"),
        "alias to missing version": lambda: client.set_registered_model_alias("taxi", "x", 99),
        "slash in name": lambda: client.create_registered_model("a/b"),
        "version of missing model": lambda: client.create_model_version("nope", "runs:/x/m"),
        "rename onto existing": lambda: client.rename_registered_model("taxi", "Churn-EU"),
        "OR in filter": lambda: client.search_registered_models("name = 'a' OR name = 'b'"),
        "bad filter key": lambda: client.search_model_versions("stage = 'Production'"),
        "bad order key": lambda: client.search_model_versions(order_by=["stage"]),
    }
    for label, call in bad_calls.items():
        try:
            call()
            errors[label] = None
        except Exception as exc:  # both libraries' MlflowException
            errors[label] = getattr(exc, "error_code", type(exc).__name__)
    seen["errors"] = errors
    return seen


def _mlflow_resolve(client, uri):
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    name, version = get_model_name_and_version(client, uri)
    return int(version), client.get_model_version_download_uri(name, version)


def _gitexp_resolve(client, uri):
    from gitexp.store.registry import resolve_models_uri

    return int(client.resolve_model_version(uri).version), resolve_models_uri(client._store, uri)


@pytest.mark.slow
def test_registry_workflow_matches_mlflow(client, tmp_path, monkeypatch):
    require_mlflow()
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    from mlflow import MlflowClient

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow deprecates stages; gitexp keeps them
        expected = _workflow(MlflowClient(tracking_uri=db, registry_uri=db), _mlflow_resolve)
    ours = _workflow(client, _gitexp_resolve)
    expected_errors, our_errors = expected.pop("errors"), ours.pop("errors")
    assert ours == expected
    assert our_errors == expected_errors
    assert expected["latest"] == [(1, "Archived"), (2, "Production"), (3, "Staging")]  # the fixture is meaningful
