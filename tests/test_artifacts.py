"""Artifacts: every kind round-trips through a real repository; paths cannot escape the run."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

import gitexp
from gitexp.exceptions import InvalidParameterValue, ResourceDoesNotExist

from .conftest import git, run_python


def _tree_paths(repo, run_id: str) -> list[str]:
    out = git("ls-tree", "-r", "--name-only", "gitexp", f".tracking/runs/{run_id[:2]}/{run_id}/", cwd=repo)
    return out.splitlines()


def test_files_directories_and_non_ascii_names_round_trip(repo, tmp_path):
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    binary = bytes(range(256)) * 50
    (src / "data.bin").write_bytes(binary)
    (src / "sub" / "ünïcødé – 数据.txt").write_text("non-ascii ✓\n", encoding="utf-8")
    (src / "sub" / "deeper" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(src / "sub" / "deeper" / "run.sh", 0o755)
    (tmp_path / "single.txt").write_text("one file")

    with gitexp.start_run() as run:
        gitexp.log_artifact(tmp_path / "single.txt")
        gitexp.log_artifact(str(tmp_path / "single.txt"), artifact_path="nested/dir")
        gitexp.log_artifacts(str(src), artifact_path="tree")
    run_id = run.info.run_id
    client = gitexp.Client()

    root = {f.path: f for f in client.list_artifacts(run_id)}
    assert set(root) == {"single.txt", "nested", "tree"}
    assert root["single.txt"].file_size == 8 and not root["single.txt"].is_dir
    assert root["tree"].is_dir and root["tree"].file_size is None
    sub = {f.path: f.file_size for f in client.list_artifacts(run_id, "tree/sub")}
    assert sub == {"tree/sub/deeper": None, "tree/sub/ünïcødé – 数据.txt": len("non-ascii ✓\n".encode())}

    out = client.download_artifacts(run_id, "tree", str(tmp_path / "dl"))
    assert out == str(tmp_path / "dl" / "tree")
    assert (tmp_path / "dl" / "tree" / "data.bin").read_bytes() == binary
    assert (tmp_path / "dl" / "tree" / "sub" / "ünïcødé – 数据.txt").read_text(encoding="utf-8") == "non-ascii ✓\n"
    script = tmp_path / "dl" / "tree" / "sub" / "deeper" / "run.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    one = client.download_artifacts(run_id, "nested/dir/single.txt", str(tmp_path / "dl2"))
    assert open(one).read() == "one file"

    # On the branch: ordinary git blobs under the run's artifacts/ directory, executable bit kept.
    paths = _tree_paths(repo, run_id)
    assert any(p.endswith("artifacts/tree/data.bin") for p in paths)
    mode = git("ls-tree", "-r", "gitexp", f".tracking/runs/{run_id[:2]}/{run_id}/artifacts/tree/sub/deeper", cwd=repo)
    assert mode.startswith("100755")
    assert git("status", "--porcelain", cwd=repo) == ""  # the work tree was not touched


def test_text_dict_image_figure_and_table_round_trip(repo, tmp_path):
    import numpy as np
    import pandas as pd
    from PIL import Image

    with gitexp.start_run() as run:
        gitexp.log_text("héllo\nworld", "notes/readme.txt")
        gitexp.log_dict({"alpha": 0.1, "layers": [1, 2]}, "config.json")
        gitexp.log_dict({"alpha": 0.1, "name": "ü"}, "config.yaml")
        gitexp.log_dict({"x": 1}, "config.txt")
        gitexp.log_image(np.zeros((8, 6, 3), dtype=np.uint8), "img/black.png")
        gitexp.log_image(Image.new("RGB", (5, 4), (255, 0, 0)), "img/red.jpg")
        gitexp.log_image(np.ones((4, 4)), key="progress/sample", step=3)
        gitexp.log_table({"inputs": ["a", "b"], "score": [0.1, 0.2]}, "eval.json")
        gitexp.log_table(pd.DataFrame({"inputs": ["c"], "score": [0.3]}), "eval.json")
    run_id = run.info.run_id
    uri = f"runs:/{run_id}"

    assert gitexp.artifacts.load_text(f"{uri}/notes/readme.txt") == "héllo\nworld"
    assert gitexp.artifacts.load_dict(f"{uri}/config.json") == {"alpha": 0.1, "layers": [1, 2]}
    assert gitexp.artifacts.load_dict(f"{uri}/config.yaml") == {"alpha": 0.1, "name": "ü"}
    assert "alpha: 0.1" in gitexp.artifacts.load_text(f"{uri}/config.yaml")
    assert json.loads(gitexp.artifacts.load_text(f"{uri}/config.txt")) == {"x": 1}
    assert gitexp.artifacts.load_image(f"{uri}/img/black.png").size == (6, 8)
    red = gitexp.artifacts.load_image(f"{uri}/img/red.jpg")
    assert red.format == "JPEG" and red.getpixel((0, 0))[0] > 200
    images = [f.path for f in gitexp.artifacts.list_artifacts(artifact_uri=f"{uri}/images")]
    assert any(p.startswith("images/progress~sample+step+3+timestamp+") and p.endswith(".png") for p in images)
    assert any(p.endswith("+compressed.webp") for p in images)
    table = gitexp.load_table("eval.json", run_ids=[run_id], extra_columns=["run_id"])
    assert list(table["inputs"]) == ["a", "b", "c"] and set(table["run_id"]) == {run_id}
    tags = gitexp.get_run(run_id).data.tags
    assert json.loads(tags["mlflow.loggedArtifacts"]) == [{"path": "eval.json", "type": "table"}]
    assert tags["mlflow.loggedImages"] == "True"


def test_figures_matplotlib_and_plotly(repo):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    pfig = go.Figure(go.Scatter(y=[1, 3, 2]))
    with gitexp.start_run() as run:
        gitexp.log_figure(fig, "plots/curve.png")
        gitexp.log_figure(fig, "plots/curve.svg")
        gitexp.log_figure(pfig, "plots/interactive.html")
        import importlib.util

        if importlib.util.find_spec("kaleido") is None:
            with pytest.raises(InvalidParameterValue, match="kaleido"):
                gitexp.log_figure(pfig, "plots/static.png")
        with pytest.raises(InvalidParameterValue, match="matplotlib or plotly"):
            gitexp.log_figure("not a figure", "plots/x.png")
    client = gitexp.Client()
    data = client._artifacts.read_bytes(run.info.run_id, "plots/curve.png")
    assert data.startswith(b"\x89PNG")
    assert b"<svg" in client._artifacts.read_bytes(run.info.run_id, "plots/curve.svg")
    assert b"plotly" in client._artifacts.read_bytes(run.info.run_id, "plots/interactive.html")
    plt.close(fig)


@pytest.mark.parametrize("bad", ["../escape", "a/../../b", "/etc", "..", "dir\\..\\x", "C:/windows", ".git/hooks",
                                 "a/.GIT/x", "new\nline", "~/home"])
def test_artifact_paths_that_escape_the_run_are_rejected(repo, tmp_path, bad):
    (tmp_path / "f.txt").write_text("x")
    with gitexp.start_run() as run:
        with pytest.raises(InvalidParameterValue) as err:
            gitexp.log_artifact(str(tmp_path / "f.txt"), artifact_path=bad)
        assert repr(bad) in err.value.message and err.value.path == bad  # names the offending value
        with pytest.raises(InvalidParameterValue):
            gitexp.log_text("x", f"{bad}/t.txt")
        with pytest.raises(InvalidParameterValue):
            gitexp.Client().download_artifacts(run.info.run_id, bad, str(tmp_path / "dl"))
    assert gitexp.Client().list_artifacts(run.info.run_id) == []


def test_file_and_directory_conflicts_are_clear_errors(repo):
    client = gitexp.Client()
    run_id = client.create_run("0").info.run_id
    client.log_text(run_id, "x", "model")
    with pytest.raises(InvalidParameterValue, match="'model' is a file"):
        client.log_text(run_id, "y", "model/MLmodel")
    client.log_text(run_id, "y", "plots/a.txt")
    with pytest.raises(InvalidParameterValue, match="already a directory"):
        client.log_text(run_id, "z", "plots")
    client.set_terminated(run_id)
    assert {f.path for f in client.list_artifacts(run_id)} == {"model", "plots"}


def test_missing_artifacts_and_unknown_runs(repo, tmp_path):
    client = gitexp.Client()
    run_id = client.create_run("0").info.run_id
    client.log_text(run_id, "x", "a/b.txt")
    assert client.list_artifacts(run_id, "nope") == []
    assert client.list_artifacts(run_id, "a/b.txt") == []  # a file has no entries, as in MLflow
    with pytest.raises(ResourceDoesNotExist, match="no artifact 'a/c.txt'.*b.txt"):
        client.download_artifacts(run_id, "a/c.txt", str(tmp_path))
    with pytest.raises(InvalidParameterValue, match="no such file"):
        client.log_artifact(run_id, str(tmp_path / "missing.txt"))
    with pytest.raises(ResourceDoesNotExist):
        client.log_text("0" * 32, "x", "a.txt")
    client.set_terminated(run_id)
    client.delete_run(run_id)
    with pytest.raises(InvalidParameterValue, match="deleted"):
        client.log_text(run_id, "x", "c.txt")


def test_pending_artifacts_are_visible_at_once_and_committed_at_run_end(repo, tmp_path):
    with gitexp.start_run() as run:
        gitexp.log_text("draft", "notes.txt")
        # Read-your-writes: listed and readable before any commit.
        assert [f.path for f in gitexp.Client().list_artifacts(run.info.run_id)] == ["notes.txt"]
        assert gitexp.artifacts.load_text(gitexp.get_artifact_uri("notes.txt")) == "draft"
        assert gitexp.get_artifact_uri() == f"runs:/{run.info.run_id}"
    code = f"""
import gitexp
print(gitexp.artifacts.load_text("runs:/{run.info.run_id}/notes.txt"))
"""
    result = run_python(code, cwd=repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "draft"


def test_artifacts_of_a_running_run_stay_visible_after_a_live_checkpoint(repo):
    # A checkpoint moves the owner's files to the run's live ref, not to the branch: listing,
    # reading and downloading must look there (they read the branch's older copy, and the
    # file vanished until the run was published -- a flaky server test showed it).
    with gitexp.start_run() as run:
        run_id = run.info.run_id
        gitexp.log_text("draft", "notes/a.txt")
        client = gitexp.Client()
        client._store.checkpoint(run_id)
        assert [f.path for f in client.list_artifacts(run_id, "notes")] == ["notes/a.txt"]
        assert client.read_artifact(run_id, "notes/a.txt") == b"draft"
        with open(client.download_artifacts(run_id, "notes/a.txt"), "rb") as fh:
            assert fh.read() == b"draft"
        code = f"""
import gitexp
print(gitexp.artifacts.load_text("runs:/{run_id}/notes/a.txt"))
"""
        result = run_python(code, cwd=repo)  # another process: the live ref is all it has
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "draft"


def test_a_finished_run_gets_artifacts_as_an_event_layer_that_wins(repo, tmp_path):
    client = gitexp.Client()
    with gitexp.start_run() as run:
        gitexp.log_text("v1", "a.txt")
        gitexp.log_text("keep", "b.txt")
    run_id = run.info.run_id
    client.log_text(run_id, "v2", "a.txt")
    client.log_text(run_id, "late", "extra/c.txt")
    client.flush()
    assert gitexp.artifacts.load_text(f"runs:/{run_id}/a.txt") == "v2"
    assert {f.path for f in client.list_artifacts(run_id)} == {"a.txt", "b.txt", "extra"}
    paths = _tree_paths(repo, run_id)
    assert f".tracking/runs/{run_id[:2]}/{run_id}/artifacts/a.txt" in paths  # the run's own file is untouched
    layer = [p for p in paths if ".artifacts/" in p]
    assert len(layer) == 2 and all("/events/" in p for p in layer)


def test_two_clones_logging_to_one_run_merge_without_conflicts(repo, tmp_path):
    client = gitexp.Client()
    with gitexp.start_run() as run:
        gitexp.log_text("base", "report.txt")
    run_id = run.info.run_id
    other = tmp_path / "clone"
    git("clone", "-q", str(repo), str(other), cwd=tmp_path)
    git("fetch", "-q", "origin", "gitexp:gitexp", cwd=other)
    client.log_text(run_id, "from A", "report.txt")
    client.flush()
    result = run_python(f"""
import gitexp
gitexp.Client().log_text("{run_id}", "from B", "report.txt")
gitexp.Client().log_text("{run_id}", "only B", "b.txt")
""", cwd=other)
    assert result.returncode == 0, result.stderr
    git("fetch", "-q", str(other), "gitexp:clone-b", cwd=repo)
    git("worktree", "add", "-q", str(tmp_path / "merge"), "gitexp", cwd=repo)
    merged = subprocess.run(["git", "merge", "--no-edit", "clone-b"], cwd=tmp_path / "merge",
                            capture_output=True, text=True)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    from gitexp.client import forget_stores

    forget_stores()
    fresh = gitexp.Client()
    assert {f.path for f in fresh.list_artifacts(run_id)} == {"report.txt", "b.txt"}
    # Both edits survive in their own layers; the later one is read.
    assert fresh._artifacts.read_bytes(run_id, "report.txt") in (b"from A", b"from B")


def test_an_artifact_logged_by_a_killed_process_is_recovered(repo, tmp_path):
    code = """
import os, gitexp
run = gitexp.start_run()
gitexp.log_text("survived", "crash/notes.txt")
print(run.info.run_id, flush=True)
os._exit(9)
"""
    result = run_python(code, cwd=repo)
    run_id = result.stdout.strip()
    client = gitexp.Client()
    client._store.recover_dead_journals(force=True)
    assert gitexp.artifacts.load_text(f"runs:/{run_id}/crash/notes.txt") == "survived"
    assert client.get_run(run_id).info.status == "KILLED"
    assert any(p.endswith("artifacts/crash/notes.txt") for p in _tree_paths(repo, run_id))


def test_download_into_default_temporary_directory_and_local_uris(repo, tmp_path):
    client = gitexp.Client()
    run_id = client.create_run("0").info.run_id
    client.log_dict(run_id, {"a": 1}, "cfg/params.json")
    local = gitexp.artifacts.download_artifacts(run_id=run_id, artifact_path="cfg")
    assert os.path.isfile(os.path.join(local, "params.json"))
    (tmp_path / "plain.txt").write_text("local file")
    assert gitexp.artifacts.load_text(str(tmp_path / "plain.txt")) == "local file"
    assert gitexp.artifacts.load_text((tmp_path / "plain.txt").as_uri()) == "local file"
    with pytest.raises(InvalidParameterValue, match="Unsupported artifact URI"):
        gitexp.artifacts.download_artifacts("ftp://example.com/x")
    with pytest.raises(InvalidParameterValue, match="either artifact_uri"):
        gitexp.artifacts.download_artifacts("runs:/x/y", run_id=run_id)


def test_cli_lists_and_downloads(repo, tmp_path):
    from click.testing import CliRunner

    from gitexp.cli import main

    client = gitexp.Client()
    run_id = client.create_run("0").info.run_id
    client.log_text(run_id, "x" * 2048, "model/weights.bin")
    client.log_text(run_id, "y", "readme.md")
    client.set_terminated(run_id)
    runner = CliRunner()
    listing = runner.invoke(main, ["artifacts", "list", run_id[:8], "--format", "json"])
    assert listing.exit_code == 0, listing.output
    assert json.loads(listing.output) == [
        {"path": "model", "is_dir": True, "size": None},
        {"path": "readme.md", "is_dir": False, "size": 1},
    ]
    recursive = runner.invoke(main, ["artifacts", "list", run_id[:8], "-r", "-f", "csv"])
    assert "model/weights.bin,False,2048" in recursive.output
    missing = runner.invoke(main, ["artifacts", "list", run_id[:8], "nothing"])
    assert missing.exit_code != 0 and "no artifact 'nothing'" in missing.output
    out = runner.invoke(main, ["artifacts", "download", run_id[:8], "model", "-o", str(tmp_path / "o")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "o" / "model" / "weights.bin").read_text() == "x" * 2048
    for args in (["artifacts", "--help"], ["artifacts", "list", "--help"], ["artifacts", "download", "--help"]):
        assert "Example:" in runner.invoke(main, args).output


def test_the_tutorial_preprocessor_round_trip(repo):
    """Seed tutorial 000: log a pickled DictVectorizer, download it by run id, unpickle it."""
    import pickle

    os.makedirs("models")
    with open("models/preprocessor.b", "wb") as fh:
        pickle.dump({"vocabulary": {"PU_DO": 0, "trip_distance": 1}}, fh)
    with open("models/lin_reg.bin", "wb") as fh:
        pickle.dump([0.5, 1.5], fh)
    with gitexp.start_run() as run:
        gitexp.log_artifact(local_path="models/lin_reg.bin", artifact_path="models_pickle")
        gitexp.log_artifact("models/preprocessor.b", artifact_path="preprocessor")
    run_id = run.info.run_id
    os.makedirs("later")
    os.chdir("later")
    client = gitexp.Client(str(repo))
    client.download_artifacts(run_id=run_id, path="preprocessor", dst_path=".")
    with open("preprocessor/preprocessor.b", "rb") as f_in:
        assert pickle.load(f_in) == {"vocabulary": {"PU_DO": 0, "trip_distance": 1}}
    assert [f.path for f in client.list_artifacts(run_id, "models_pickle")] == ["models_pickle/lin_reg.bin"]


def test_logging_a_repository_directory_skips_its_git_dir(repo, tmp_path):
    project = tmp_path / "project"
    git("init", "-q", str(project), cwd=tmp_path)
    (project / "README.md").write_text("hello")
    with gitexp.start_run() as run:
        gitexp.log_artifacts(str(project), "snapshot")
    files = gitexp.Client().list_artifacts(run.info.run_id, "snapshot")
    assert [f.path for f in files] == ["snapshot/README.md"]


def test_import_gitexp_stays_light(repo):
    result = run_python("import sys, gitexp\n"
                        "print(sorted(m for m in ('numpy', 'pandas', 'fsspec', 'PIL', 'sklearn') if m in sys.modules))",
                        cwd=repo)
    assert result.stdout.strip() == "[]", result.stderr
