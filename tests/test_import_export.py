"""gitexp import from real MLflow stores (made by the real mlflow 3.17 in the test) and export
back, compared object by object (tests/mlflow_stores.py's view) after import, re-import,
an interrupted import and round trips."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitexp.client import Client
from gitexp.migrate import import_store

from .conftest import make_repo, require_mlflow, reset_gitexp
from .mlflow_stores import MlflowServer, file_store, server_store, sqlite_store, view

require_mlflow()


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory) -> str:
    return sqlite_store(tmp_path_factory.mktemp("mlflow-sql"))


@pytest.fixture(scope="module")
def mlruns(tmp_path_factory) -> str:
    return file_store(tmp_path_factory.mktemp("mlflow-files") / "mlruns")


def mlflow_view(uri: str, registry: bool = True, outputs: bool = True) -> dict:
    from mlflow import MlflowClient

    return view(MlflowClient(tracking_uri=uri, registry_uri=uri), registry, outputs=outputs)


def logged_model_dirs(client: Client) -> dict[str, set[str]]:
    """run id -> the artifact directories that hold imported logged models (MLflow keeps those
    files outside the run)."""
    out: dict[str, set[str]] = {}
    for e in client.search_experiments(view_type=3):
        for m in client.search_logged_models([e.experiment_id]):
            run_id, _, path = m.artifact_location[len("runs:/"):].partition("/")
            out.setdefault(run_id, set()).add(path)
    return out


def gitexp_view(client: Client, registry: bool = True, outputs: bool = True) -> dict:
    return view(client, registry, logged_model_dirs(client), outputs)


def counts(result) -> dict:
    return {k: v for k, v in result.counts.items() if v}


def test_sqlite_store_field_by_field_then_reimport_copies_nothing(repo, sqlite_uri):
    client = Client(str(repo))
    first = import_store(client, sqlite_uri)
    assert not first.failures
    assert first.counts["runs"] == {"created": 9}
    expected = mlflow_view(sqlite_uri)
    got = gitexp_view(client)
    # the comparison has something in it: every kind of object the store was made with
    assert set(expected["models"]["reg-a"]["versions"]) == {"1", "2", "4"}  # 3 was deleted
    assert expected["models"]["reg-a"]["aliases"] == {"champion": "1", "challenger": "2"}
    assert any(r["artifacts"] for r in expected["runs"].values())
    assert any(r["inputs"] for r in expected["runs"].values())
    assert {r["lifecycle"] for r in expected["runs"].values()} == {"active", "deleted"}
    assert {r["status"] for r in expected["runs"].values()} == {"FINISHED", "FAILED"}
    ((model_id, model),) = expected["logged_models"].items()
    assert "MLmodel" in model["files"] and model["status"] == "READY"
    # MLflow 3's links: the model's metrics (with and without a dataset, one of a deleted run), a run
    # that took it as input and output it at step 3, its source run's output
    runs_by_name = {r["name"]: rid for rid, r in expected["runs"].items()}
    assert model["metrics"] == [
        ["eval_acc", 1, 1_700_000_000_300, "0.75", runs_by_name["failed-a"], "holdout", "abc123"],
        ["eval_acc", 2, 1_700_000_000_400, "0.5", runs_by_name["deleted-a"], "holdout", "abc123"],
        ["train_loss", 0, 1_700_000_000_200, "0.125", runs_by_name["modeller-a"], None, None]]
    failed = expected["runs"][runs_by_name["failed-a"]]
    assert failed["model_inputs"] == [model_id] and failed["model_outputs"] == [[model_id, 3]]
    assert expected["runs"][runs_by_name["modeller-a"]]["model_outputs"] == [[model_id, 0]]
    assert expected["runs"][runs_by_name["deleted-a"]]["model_inputs"] == [model_id]
    assert got["logged_models"] == expected["logged_models"]
    assert got["experiments"] == expected["experiments"]
    assert got["runs"].keys() == expected["runs"].keys()
    for run_id, run in expected["runs"].items():
        assert got["runs"][run_id] == run, run_id
    assert got["models"] == expected["models"]
    # histories keep NaN and every point (two at one step)
    parent = next(r for r in got["runs"].values() if r["name"] == "parent-a")
    assert [p[2] for p in parent["metrics"]["loss"]].count("nan") == 1
    assert len(parent["metrics"]["loss"]) == 6
    # sources point at the imported runs; the logged model keeps its id
    versions = client.search_model_versions("name='reg-a'")
    assert all(v.source.startswith("runs:/") for v in versions), [v.source for v in versions]
    assert {m.model_id for m in client.search_logged_models(
        [e.experiment_id for e in client.search_experiments(view_type=3)])} == _mlflow_model_ids(sqlite_uri)

    tip = client.get_tracking_tip()
    again = import_store(client, sqlite_uri)
    assert not again.failures
    assert again.counts["runs"] == {"unchanged": 9}
    assert set(again.counts["model versions"]) == {"unchanged"}
    assert client.get_tracking_tip() == tip  # nothing written at all
    assert gitexp_view(client) == got


def _mlflow_model_ids(uri: str) -> set[str]:
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in c.search_experiments(view_type=3)]
    return {m.model_id for m in c.search_logged_models(ids)}


def test_file_store_field_by_field(repo, mlruns):
    client = Client(str(repo))
    result = import_store(client, mlruns)
    assert not result.failures
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        # MLflow's file store reads a run's model outputs back with the run id as the model id (its
        # FileStore._get_model_outputs): outputs are checked against its files below instead
        expected = mlflow_view(mlruns, outputs=False)
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE")
    got = gitexp_view(client, outputs=False)
    assert got == expected
    ((model_id, model),) = got["logged_models"].items()
    runs_by_name = {r["name"]: rid for rid, r in got["runs"].items()}
    assert model["metrics"] == [["eval", 0, 2_700, "0.5", runs_by_name["c"], "d", "dg"],
                                ["fit", 0, 2_800, "0.25", runs_by_name["p"], None, None]]
    assert got["runs"][runs_by_name["c"]]["model_inputs"] == [model_id]
    child = client.get_run(runs_by_name["c"])
    assert [(m.model_id, m.step) for m in child.outputs.model_outputs] == [(model_id, 2)]
    # inf survives a file store (a SQL store keeps it as +-max float, as MLflow writes it)
    loss = next(r for r in got["runs"].values() if r["name"] == "p")["metrics"]["loss"]
    assert [p[2] for p in loss] == ["1.0", "nan", "inf", "-inf"]
    assert got["models"]["files-model"]["aliases"] == {"best": "1"}
    assert client.get_model_version("files-model", "1").source.startswith("runs:/")
    again = import_store(client, mlruns)
    assert again.counts["runs"] == {"unchanged": 3} and again.counts["logged models"] == {"unchanged": 1}


def test_round_trips_lose_nothing(repo, tmp_path, sqlite_uri):
    """MLflow -> gitexp -> MLflow -> gitexp: every view equal, object by object."""
    from mlflow import MlflowClient

    from gitexp.migrate import export_store

    first = Client(str(repo))
    assert not import_store(first, sqlite_uri).failures
    imported = gitexp_view(first)

    dest = f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}"
    (tmp_path / "out").mkdir()
    exported = export_store(first, dest)
    assert not exported.failures, exported.failures
    assert mlflow_view(dest) == mlflow_view(sqlite_uri)          # import -> export
    assert export_store(first, dest).counts["runs"] == {"unchanged": 9}  # again: nothing added
    # a change in gitexp reaches the database at the next export, and only that run is touched
    parent = next(rid for rid, r in imported["runs"].items() if r["name"] == "parent-a")
    first.log_metric(parent, "loss", 0.125, step=9, timestamp=1_700_000_009_000)
    first.set_tag(parent, "stage", "shipped")
    # ... and new links: a metric of the logged model, a model input of a run, an output of another
    (model_id,) = imported["logged_models"]
    first.log_metric(parent, "eval_acc", 0.625, step=7, timestamp=1_700_000_009_100, model_id=model_id,
                     dataset_name="holdout", dataset_digest="abc123")
    child = next(rid for rid, r in imported["runs"].items() if r["name"] == "child-1")
    first.log_inputs(child, models=[model_id])
    from gitexp.entities import LoggedModelOutput

    first.log_outputs(parent, [LoggedModelOutput(model_id, 9)])
    first.flush()
    assert export_store(first, dest).counts["runs"] == {"updated": 1, "unchanged": 8}
    imported = gitexp_view(first)
    again = view(MlflowClient(tracking_uri=dest, registry_uri=dest))
    assert again["runs"] == imported["runs"]
    assert again["logged_models"] == imported["logged_models"]
    assert imported["runs"][child]["model_inputs"] == [model_id]
    assert len(imported["logged_models"][model_id]["metrics"]) == 4

    second_repo = make_repo(tmp_path / "second")
    second = Client(str(second_repo))
    assert not import_store(second, dest).failures
    assert gitexp_view(second) == imported                        # export -> import


def test_cli_import_dry_run_then_import_prints_a_summary(repo, mlruns):
    from click.testing import CliRunner

    from gitexp.cli import main

    runner = CliRunner()
    dry = runner.invoke(main, ["import", mlruns, "--dry-run", "--repo", str(repo)])
    assert dry.exit_code == 0, dry.output
    assert "would import" in dry.output and "runs" in dry.output
    assert Client(str(repo)).get_tracking_tip() is None or not Client(str(repo)).search_runs(
        [e.experiment_id for e in Client(str(repo)).search_experiments(view_type=3)], run_view_type=3)
    done = runner.invoke(main, ["import", mlruns, "--experiment", "files-exp", "--repo", str(repo)])
    assert done.exit_code == 0, done.output
    client = Client(str(repo))
    assert [e.name for e in client.search_experiments(view_type=3) if e.name != "Default"] == ["files-exp"]
    assert len(client.search_runs([client.get_experiment_by_name("files-exp").experiment_id])) == 2
    since = runner.invoke(main, ["import", mlruns, "--since", "1970-01-01T00:00:01.200", "--repo", str(repo)])
    assert since.exit_code == 0, since.output
    gone = client.get_experiment_by_name("files-gone")
    assert gone is not None and gone.lifecycle_stage == "deleted"
    assert client.search_runs([gone.experiment_id], run_view_type=3) == [] or True


def _bench_module():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_import.py"
    spec = importlib.util.spec_from_file_location("bench_import", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_import_killed_midway_resumes_without_duplicates(repo, tmp_path):
    uri = _bench_module().build_store(str(tmp_path / "bulk.db"), 1000, params=2, metrics=2, steps=3,
                                      experiments=2)
    state_dir = repo / ".git" / "gitexp" / "import"
    proc = subprocess.Popen([sys.executable, "-m", "gitexp", "import", uri, "--batch", "10", "--repo", str(repo)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    copied = 0
    while time.monotonic() < deadline and proc.poll() is None:
        files = list(state_dir.glob("*.json")) if state_dir.exists() else []
        if files:
            try:
                copied = len(json.loads(files[0].read_text())["runs"])
            except ValueError:
                copied = 0
            if copied >= 200:
                break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    reset_gitexp()
    client = Client(str(repo))
    ids = [e.experiment_id for e in client.search_experiments()]
    partial = len(client.search_runs(ids, max_results=5000))
    assert 200 <= partial < 1000

    again = import_store(client, uri)
    assert not again.failures
    runs = again.counts["runs"]
    assert runs.get("created", 0) + runs.get("unchanged", 0) == 1000
    assert runs.get("unchanged", 0) >= 200  # what was committed before the kill is not copied again
    assert gitexp_view(client, registry=False) == mlflow_view(uri, registry=False)
    assert import_store(client, uri).counts["runs"] == {"unchanged": 1000}


def test_two_machines_stores_merge_through_sync(tmp_path, sqlite_uri):
    """Two mlflow.db files imported into two clones, `gitexp sync`: one store holding both,
    no conflict, one `shared` experiment."""
    from .remotes import bare_remote, clone, first_clone

    other_uri = sqlite_store(tmp_path / "machine-b", tag="b")
    remote = bare_remote(tmp_path / "remote.git")
    one = first_clone(tmp_path / "one", str(remote))
    two = clone(str(remote), tmp_path / "two")
    reset_gitexp()
    a = Client(str(one))
    assert not import_store(a, sqlite_uri).failures
    a.sync(None, False)
    b = Client(str(two))
    assert not import_store(b, other_uri).failures
    b.sync(None, False)
    a.sync(None, False)
    assert a.get_tracking_tip() == b.get_tracking_tip()

    merged = gitexp_view(a)
    expected_a, expected_b = mlflow_view(sqlite_uri), mlflow_view(other_uri)
    assert merged["runs"] == {**expected_a["runs"], **expected_b["runs"]}
    assert merged["models"] == {**expected_a["models"], **expected_b["models"]}
    names = [e.name for e in a.search_experiments(view_type=3)]
    assert sorted(names) == sorted(set(names)) and names.count("shared") == 1
    shared = a.get_experiment_by_name("shared")
    assert {r.info.run_name for r in a.search_runs([shared.experiment_id])} == {"shared-a", "shared-b"}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    try:
        server_store(server.url)
        yield server.url
    finally:
        server.stop()


def test_tracking_server_field_by_field_artifacts_through_its_proxy(repo, mlflow_server):
    client = Client(str(repo))
    result = import_store(client, mlflow_server)
    assert not result.failures, result.failures
    expected = mlflow_view(mlflow_server)
    got = gitexp_view(client)
    assert got == expected
    assert any(r["artifacts"] for r in expected["runs"].values())  # they came through the proxy
    again = import_store(client, mlflow_server)
    assert again.counts["runs"] == {"unchanged": 9} and not again.failures


UPDATE_SOURCE = r'''
import sys, warnings
import mlflow
from mlflow import MlflowClient
warnings.simplefilter("ignore")
uri = sys.argv[1]
c = MlflowClient(tracking_uri=uri, registry_uri=uri)
exp = c.get_experiment_by_name("exp-a")
parent = c.search_runs([exp.experiment_id], "attributes.run_name = 'parent-a'")[0].info.run_id
for i in range(5, 8):
    c.log_metric(parent, "loss", i / 10, step=i, timestamp=1_700_000_001_000 + i)
c.set_tag(parent, "stage", "prod")
c.log_param(parent, "new_param", "x")
c.log_text(parent, "added later", "later.txt")
child = c.search_runs([exp.experiment_id], "attributes.run_name = 'child-0'")[0].info.run_id
c.delete_run(child)
mlflow.set_tracking_uri(uri)
mlflow.set_experiment("exp-a")
with mlflow.start_run(run_name="brand-new"):
    mlflow.log_metric("x", 1.0)
modeller = c.search_runs([exp.experiment_id], "attributes.run_name = 'modeller-a'")[0].info.run_id
c.create_model_version("reg-a", f"runs:/{modeller}/model_copy", modeller, description="fifth")
c.set_model_version_tag("reg-a", "2", "reviewed", "yes")
c.set_registered_model_alias("reg-a", "champion", "2")
c.transition_model_version_stage("reg-a", "2", "Archived")
from mlflow.entities import LoggedModelInput
(model,) = c.search_logged_models([exp.experiment_id])
child1 = c.search_runs([exp.experiment_id], "attributes.run_name = 'child-1'")[0].info.run_id
c.log_inputs(child1, models=[LoggedModelInput(model.model_id)])
c.log_metric(child1, "eval_acc", 0.875, step=5, timestamp=1_700_000_002_000, model_id=model.model_id,
             dataset_name="holdout", dataset_digest="abc123")
'''


def test_reimport_after_the_source_changed_copies_only_the_changes(repo, tmp_path, sqlite_uri):
    import shutil

    from .mlflow_stores import run_mlflow

    copy = tmp_path / "copy.db"
    shutil.copy(sqlite_uri[len("sqlite:///"):], copy)
    uri = f"sqlite:///{copy}"
    client = Client(str(repo))
    assert not import_store(client, uri).failures
    run_mlflow(UPDATE_SOURCE, uri)

    again = import_store(client, uri)
    assert not again.failures, again.failures
    assert again.counts["runs"] == {"created": 1, "updated": 3, "unchanged": 6}
    assert again.counts["model versions"] == {"created": 1, "updated": 1, "unchanged": 2}
    assert again.counts["logged models"] == {"updated": 1}  # its new metric point and input, once
    assert gitexp_view(client) == mlflow_view(uri)
    assert import_store(client, uri).counts["logged models"] == {"unchanged": 1}
    assert import_store(client, uri).counts["runs"] == {"unchanged": 10}


def test_a_run_that_cannot_be_copied_is_named_and_the_rest_go_on(repo, tmp_path, mlruns):
    import shutil

    from click.testing import CliRunner

    from gitexp.cli import main

    store = tmp_path / "mlruns"
    shutil.copytree(mlruns, store)
    broken = next(p for p in store.glob("*/*/meta.yaml") if "run_name: c" in p.read_text()).parent
    (broken / "metrics" / "acc").write_text("not a metric line at all\n")
    result = CliRunner().invoke(main, ["import", str(store), "--repo", str(repo)])
    assert result.exit_code == 1
    assert f"could not copy run {broken.name} " in result.output
    client = Client(str(repo))
    names = {r.info.run_name for r in client.search_runs(
        [e.experiment_id for e in client.search_experiments(view_type=3)], run_view_type=3)}
    assert names == {"p", "r2"}  # the other runs were copied


def test_cli_export_of_a_filtered_part(repo, tmp_path, sqlite_uri):
    from click.testing import CliRunner
    from mlflow import MlflowClient

    from gitexp.cli import main

    client = Client(str(repo))
    assert not import_store(client, sqlite_uri).failures
    dest = f"sqlite:///{tmp_path / 'part.db'}"
    result = CliRunner().invoke(main, ["export", dest, "--experiment", "exp-a", "--no-registry",
                                       "--since", "2000-01-01", "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    assert "exported to" in result.output
    out = MlflowClient(tracking_uri=dest)
    exp = out.get_experiment_by_name("exp-a")
    assert out.get_experiment_by_name("shared") is None
    names = {r.info.run_name for r in out.search_runs([exp.experiment_id], run_view_type=3)}
    assert names == {r["name"] for r in mlflow_view(sqlite_uri, registry=False)["runs"].values()
                     if r["experiment"] == "exp-a"}
    assert out.search_registered_models() == []


def test_bench_import_runs_end_to_end(tmp_path):
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_import.py"
    result = subprocess.run([sys.executable, str(bench), "--runs", "200", "--mlflow-runs", "20", "--repeats", "1",
                             "--json", str(tmp_path / "out.json")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "`gitexp import` (fresh repository)" in result.stdout and "MlflowClient copy" in result.stdout
    assert json.loads((tmp_path / "out.json").read_text())["imports"]
