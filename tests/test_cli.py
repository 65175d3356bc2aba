"""The CLI over real repositories, through click's runner and as real processes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import gitexp
from gitexp.cli import main

from .conftest import git, reset_gitexp


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from _all_commands(command, prefix + (name,))


@pytest.mark.parametrize("path", [p for p, _ in _all_commands(main)], ids=" ".join)
def test_every_command_has_help_with_an_example(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`gitexp {' '.join(path)} --help` has no example"
    assert f"gitexp {path[0]}" in result.output


def test_top_level_help_and_version():
    runner = CliRunner()
    assert "Example" in runner.invoke(main, ["--help"]).output
    assert gitexp.__version__ in runner.invoke(main, ["--version"]).output


@pytest.fixture
def logged(repo):
    """Three finished runs in experiment 'wine' and one in Default."""
    gitexp.set_experiment("wine")
    ids = []
    for i, depth in enumerate((2, 4, 8)):
        with gitexp.start_run(run_name=f"rf-{depth}") as run:
            gitexp.log_params({"max_depth": depth, "criterion": "gini"})
            for step in range(3):
                gitexp.log_metric("acc", 0.8 + 0.05 * i + 0.01 * step, step=step)
            ids.append(run.info.run_id)
    reset_gitexp()
    return repo, ids


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_runs_list_formats(logged):
    repo, ids = logged
    out = invoke("runs", "list", "-e", "wine", "--format", "json")
    assert out.exit_code == 0
    rows = json.loads(out.output)
    assert [r["run_id"] for r in rows] == ids[::-1]  # newest first
    assert rows[0]["metrics.acc"] == pytest.approx(0.92) and rows[0]["params.max_depth"] == "8"
    table = invoke("runs", "list", "-e", "wine").output
    for run_id in ids:
        assert run_id[:8] in table
    assert "rf-4" in table and "metrics.acc" in table
    parsed = list(csv.DictReader(io.StringIO(invoke("runs", "list", "-e", "wine", "-f", "csv").output)))
    assert {r["name"] for r in parsed} == {"rf-2", "rf-4", "rf-8"}
    narrow = json.loads(invoke("runs", "list", "-e", "wine", "-c", "run_id,params.max_depth", "-f", "json").output)
    assert narrow[0] == {"run_id": ids[2], "params.max_depth": "8"}


def test_runs_show_compare_history_delete_restore(logged):
    repo, ids = logged
    shown = json.loads(invoke("runs", "show", ids[0][:6], "-f", "json").output)
    assert shown["info"]["run_id"] == ids[0] and shown["data"]["params"]["max_depth"] == "2"

    compared = json.loads(invoke("runs", "compare", ids[0], ids[1], "-f", "json").output)
    by_key = {r["key"]: r for r in compared}
    assert by_key["params.max_depth"]["differs"] is True
    assert by_key["params.criterion"]["differs"] is False
    only = json.loads(invoke("runs", "compare", ids[0], ids[1], "--diff-only", "-f", "json").output)
    assert {r["key"] for r in only} == {"params.max_depth", "metrics.acc"}

    history = json.loads(invoke("metrics", "history", ids[2], "acc", "-f", "json").output)
    assert [h["step"] for h in history] == [0, 1, 2]
    assert history[-1]["value"] == pytest.approx(0.92)

    assert "Deleted run" in invoke("runs", "delete", ids[0]).output
    listed = json.loads(invoke("runs", "list", "-e", "wine", "-f", "json").output)
    assert ids[0] not in {r["run_id"] for r in listed}
    deleted = json.loads(invoke("runs", "list", "-e", "wine", "--view", "deleted", "-f", "json").output)
    assert [r["run_id"] for r in deleted] == [ids[0]]
    invoke("runs", "restore", ids[0])
    assert len(json.loads(invoke("runs", "list", "-e", "wine", "-f", "json").output)) == 3


def test_runs_code_prints_the_uncommitted_diff(repo):
    with gitexp.start_run() as clean:
        pass
    (repo / "train.py").write_text("print('training v2')\n")
    with gitexp.start_run() as dirty:
        pass
    reset_gitexp()
    assert invoke("runs", "code", clean.info.run_id).output == ""
    patch = invoke("runs", "code", dirty.info.run_id).output
    assert "-print('training')" in patch and "+print('training v2')" in patch
    # The printed diff applies to the run's commit and reproduces the file.
    git("stash", cwd=repo)
    subprocess.run(["git", "apply"], input=patch, text=True, cwd=repo, check=True)
    assert (repo / "train.py").read_text() == "print('training v2')\n"


def test_experiments_commands(repo):
    created = invoke("experiments", "create", "churn", "-t", "team=ml").output.strip()
    assert created == gitexp.Client().get_experiment_by_name("churn").experiment_id  # scriptable
    listed = json.loads(invoke("experiments", "list", "-f", "json").output)
    assert {e["name"] for e in listed} == {"Default", "churn"}
    invoke("experiments", "rename", "churn", "churn-v2")
    invoke("experiments", "delete", "churn-v2")
    assert {e["name"] for e in json.loads(invoke("experiments", "list", "-f", "json").output)} == {"Default"}
    invoke("experiments", "restore", "churn-v2")
    listed = json.loads(invoke("experiments", "list", "-f", "json").output)
    assert {e["name"] for e in listed} == {"Default", "churn-v2"}


def test_errors_are_one_clear_line(repo):
    result = CliRunner().invoke(main, ["runs", "show", "ffffffff"])
    assert result.exit_code == 1
    assert "Error:" in result.output and "ffffffff" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["experiments", "create", "Default"])
    assert result.exit_code == 1 and "already exists" in result.output


def test_init_and_doctor_in_a_new_directory(tmp_path):
    target = tmp_path / "project"
    result = invoke("init", str(target))
    assert result.exit_code == 0 and (target / ".git").is_dir()
    assert git("rev-parse", "--verify", "gitexp", cwd=target).strip()
    # The working tree and HEAD are untouched: still an unborn main branch, nothing staged.
    assert git("status", "--porcelain", cwd=target) == ""
    doctor = invoke("-C", str(target), "doctor")
    assert doctor.exit_code == 0 and "gitexp" in doctor.output


def test_console_scripts_run_as_processes(logged):
    repo, ids = logged
    bindir = os.path.dirname(sys.executable)
    for script in ("gitexp", "git-exp"):
        out = subprocess.run([os.path.join(bindir, script), "runs", "list", "-e", "wine", "-f", "json"],
                             cwd=repo, capture_output=True, text=True, check=True).stdout
        assert len(json.loads(out)) == 3
    # `git exp` finds git-exp on PATH like any git subcommand.
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ["PATH"]}
    out = subprocess.run(["git", "exp", "experiments", "list", "-f", "csv"], cwd=repo, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "wine" in out


def test_demo_tracks_real_runs_into_a_scratch_repo(tmp_path):
    target = tmp_path / "demo"
    # As after `make demo`: gitexp is in the venv's bin, which is not on PATH.
    bindir = os.path.dirname(sys.executable)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if p and os.path.realpath(p) != os.path.realpath(bindir))
    env = {**os.environ, "PATH": path}
    result = subprocess.run([os.path.join(bindir, "gitexp"), "demo", str(target), "--no-serve"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "12 runs in experiment wine-quality, best first" in result.stdout
    # Every command under "Try:" works as printed, in one shell (the first one is `cd`).
    tries = result.stdout.split("Try:", 1)[1].splitlines()
    commands = [line.strip() for line in tries if line.startswith("  ")]
    assert commands[0].startswith("cd ") and len(commands) == 7, commands
    assert all(c.startswith(("cd ", "git ", os.path.join(bindir, "gitexp"))) for c in commands), commands
    for command in commands[1:]:
        ran = subprocess.run(["sh", "-ec", f"{commands[0]}\n{command}"], capture_output=True, text=True,
                             env=env, timeout=120)
        assert ran.returncode == 0 and ran.stdout.strip(), (command, ran.stderr)
    client = gitexp.Client(str(target))
    experiment = client.get_experiment_by_name("wine-quality")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 12
    assert all(len(client.get_metric_history(r.info.run_id, "test_accuracy")) == 10 for r in runs)
    dirty = [r for r in runs if r.data.tags.get("mlflow.source.git.dirty") == "true"]
    assert len(dirty) == 6
    assert "test_size=0.25" in client.get_run_code_diff(dirty[0].info.run_id)
    # The best run's model is registered with alias champion, and loads.
    champion = client.get_model_version_by_alias("wine-classifier", "champion")
    assert gitexp.MlflowClient(str(target)).get_run(champion.run_id).data.metrics["test_accuracy"] == \
        max(r.data.metrics["test_accuracy"] for r in runs)
    reset_gitexp()


def test_docs_cli_md_is_generated_from_the_current_help():
    from pathlib import Path

    from gitexp.cli._docs import render

    doc = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    assert doc.read_text() == render(), "regenerate: python -m gitexp.cli._docs > docs/cli.md"
