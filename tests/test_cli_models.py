"""`gitexp models ...` through click's CliRunner on a real repository."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

import gitexp
from gitexp.cli import main
from gitexp.cli.models import models as models_group


def _cli(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, list(args))
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def run_id(repo) -> str:
    with gitexp.start_run() as run:
        gitexp.log_param("alpha", 0.5)
    return run.info.run_id


def test_every_models_command_has_help_with_an_example():
    names = set(models_group.commands)
    assert {"list", "show", "versions", "register", "transition", "alias", "history", "delete"} <= names
    assert "Example:" in (models_group.help or "")
    for name, command in models_group.commands.items():
        assert command.help and "Example:" in command.help, name
        assert _cli("models", name, "--help").output.count("gitexp models") >= 1


def test_register_promote_alias_and_audit_from_the_command_line(run_id, monkeypatch):
    # A run id prefix is enough, as for `gitexp runs show`.
    assert _cli("models", "register", f"runs:/{run_id[:8]}/model", "taxi", "-t", "validated=no").stdout.strip() == "1"
    assert _cli("models", "register", f"runs:/{run_id}/model2", "taxi", "-d", "second").stdout.strip() == "2"
    client = gitexp.Client()
    assert client.get_model_version("taxi", 1).source == f"runs:/{run_id}/model"
    assert client.get_model_version("taxi", 1).tags == {"validated": "no"}

    out = _cli("models", "transition", "taxi", "1", "production").output
    assert "version 1: None -> Production" in out
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Release Manager")
    out = _cli("models", "transition", "taxi", "2", "Production", "--archive-existing").output
    assert "version 2: None -> Production" in out and "version 1: Production -> Archived" in out
    assert _cli("models", "alias", "taxi", "champion", "2").output.strip() == "models:/taxi@champion -> version 2"
    assert "version 2 (Production)" in _cli("models", "alias", "taxi", "champion").output

    listed = json.loads(_cli("models", "list", "-f", "json").output)
    assert listed[0]["name"] == "taxi" and listed[0]["aliases"] == "@champion=v2"
    assert listed[0]["latest"] == "v1 Archived, v2 Production"
    shown = json.loads(_cli("models", "show", "taxi", "-f", "json").output)
    assert [(v["version"], v["current_stage"]) for v in shown["versions"]] == [(1, "Archived"), (2, "Production")]
    assert shown["aliases"] == {"champion": 2}
    assert [v["version"] for v in shown["latest_versions"]] == [1, 2]
    table = _cli("models", "show", "taxi").output
    assert "Registered model taxi" in table and "@champion" in table
    versions = list(csv.DictReader(io.StringIO(_cli("models", "versions", "taxi", "--stage", "production",
                                                     "-f", "csv").output)))
    assert [(r["version"], r["stage"], r["description"]) for r in versions] == [("2", "Production", "second")]

    rows = list(csv.DictReader(io.StringIO(_cli("models", "history", "taxi", "-f", "csv").output)))
    promotions = [(r["user"], r["version"], r["detail"]) for r in rows if r["action"] == "transition_stage"]
    assert promotions == [("Test Author", "1", "None -> Production"),
                          ("Release Manager", "2", "None -> Production; archived version(s) 1")]
    assert all(len(r["commit"]) == 40 for r in rows)
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: one row per change
    table = _cli("models", "history", "taxi").output
    assert "Release Manager" in table and "None -> Production; archived version(s) 1" in table

    _cli("models", "alias", "taxi", "champion", "--delete")
    assert gitexp.Client().get_registered_model("taxi").aliases == {}
    _cli("models", "rename", "taxi", "nyc-taxi")
    _cli("models", "delete", "nyc-taxi", "--version", "1")
    assert [v["version"] for v in json.loads(_cli("models", "versions", "nyc-taxi", "-f", "json").output)] == [2]
    _cli("models", "delete", "nyc-taxi")
    assert json.loads(_cli("models", "list", "-f", "json").output) == []


def test_models_cli_errors_are_one_clear_line(repo):
    result = _cli("models", "show", "nope", ok=False)
    assert result.exit_code == 1
    assert "Registered Model with name=nope not found" in result.output and "Traceback" not in result.output
    gitexp.Client().create_registered_model("m")
    gitexp.Client().create_model_version("m", "/models/1")
    result = _cli("models", "transition", "m", "1", "prod", ok=False)
    assert "Invalid Model Version stage: 'prod'" in result.output
    result = _cli("models", "register", "runs:/zzzz/model", "m", ok=False)
    assert "Run 'zzzz' not found" in result.output
    result = _cli("models", "list", "--filter", "name = 'a' OR name = 'b'", ok=False)
    assert "only AND" in result.output


def test_models_with_quotes_and_backslashes_in_their_names(repo):
    name = "it's a \\model"
    client = gitexp.Client()
    client.create_registered_model(name)
    client.create_model_version(name, "/models/odd")
    shown = json.loads(_cli("models", "show", name, "-f", "json").output)
    assert shown["name"] == name and [v["source"] for v in shown["versions"]] == ["/models/odd"]
    assert json.loads(_cli("models", "versions", name, "-f", "json").output)[0]["version"] == 1
