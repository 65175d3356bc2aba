"""`gitexp demo`: track real runs into a scratch repository and show them."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from importlib import resources

import click

from .. import _git as git
from ._common import default_run_columns, emit, run_row

_DIRTY_EDIT = ("test_size=0.3", "test_size=0.25")


def _git(args: list[str], cwd: str) -> None:
    # A scratch repository must work on machines without a git identity.
    identity = ["-c", "user.name=gitexp demo", "-c", "user.email=demo@gitexp.invalid"]
    has_identity = git.run(["config", "user.email"], cwd=cwd).returncode == 0
    git.run([*([] if has_identity else identity), *args], cwd=cwd, check=True)


def _train(path: str, note: str) -> None:
    click.secho(f"$ python train.py    # {note}", fg="cyan")
    env = {**os.environ, "GITEXP_TRACKING_URI": path}
    result = subprocess.run([sys.executable, "train.py"], cwd=path, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise click.ClickException(f"the demo training script failed:\n{result.stderr}")


@click.command("demo")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--serve/--no-serve", default=True, show_default=True,
              help="Open the web UI on the demo repository afterwards (needs gitexp[server]).")
@click.option("--port", "-p", default=5000, show_default=True, type=click.IntRange(0, 65535),
              help="Port for the web UI (checked before training: a busy port is an error naming it).")
def demo(directory: str | None, serve: bool, port: int) -> None:
    """Track real runs into a scratch repository and show them.

    Creates a git repository (DIRECTORY, or a new temporary directory), commits
    a scikit-learn training script, runs it (6 runs), edits the script without
    committing and runs it again (6 more runs that record the uncommitted diff),
    then lists the runs and, with gitexp[server], serves the web UI.

    \b
    Example:
        gitexp demo                 # scratch repo in a temporary directory
        gitexp demo ./gitexp-demo --no-serve
        gitexp demo --port 8080      # make demo PORT=8080
    """
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise click.ClickException("the demo trains scikit-learn models: pip install -e '.[sklearn,server]' "
                                   "(in a checkout of gitexp)") from exc
    if directory and os.path.exists(directory) and os.listdir(directory):
        raise click.ClickException(f"{os.path.abspath(directory)} is not empty; give a new or empty directory")
    sock = _bind(port) if serve else None  # a busy port fails now, not after the training
    try:
        _demo(directory, serve, sock)
    finally:
        if sock is not None:
            sock.close()


def _bind(port: int) -> socket.socket | None:
    try:
        from ..server.app import bind
    except ImportError:
        return None  # no gitexp[server]: _serve says so at the end
    return bind("127.0.0.1", port, option="--port (make demo PORT=...)")


def gitexp_command() -> str:
    """How to run this gitexp from a shell: `gitexp` when that is what PATH finds, else the full
    path of the script installed beside this Python (e.g. a virtualenv that is not activated)."""
    script = os.path.join(os.path.dirname(sys.executable), "gitexp")
    found = shutil.which("gitexp")
    if found and os.path.exists(script) and os.path.samefile(found, script):
        return "gitexp"
    if os.path.exists(script):
        return shlex.quote(script)
    return f"{shlex.quote(sys.executable)} -m gitexp"


def _demo(directory: str | None, serve: bool, sock: socket.socket | None) -> None:
    path = os.path.abspath(directory) if directory else tempfile.mkdtemp(prefix="gitexp-demo-")
    os.makedirs(path, exist_ok=True)
    click.secho(f"Scratch repository: {path}", bold=True)
    git.run(["init", "-q", "-b", "main", path], check=True)
    script = os.path.join(path, "train.py")
    with resources.as_file(resources.files("gitexp") / "demo_data" / "train.py") as source:
        shutil.copyfile(source, script)
    _git(["add", "train.py"], path)
    _git(["commit", "-q", "-m", "Wine random forest"], path)
    _train(path, "6 runs on committed code")
    with open(script, encoding="utf-8") as f:
        text = f.read()
    with open(script, "w", encoding="utf-8") as f:
        f.write(text.replace(*_DIRTY_EDIT))
    _train(path, "6 more runs after an uncommitted edit (test_size 0.3 -> 0.25)")

    from ..client import Client

    client = Client(path)
    experiment = client.get_experiment_by_name("wine-quality")
    assert experiment is not None  # the demo's train.py made it
    runs = client.search_runs([experiment.experiment_id], max_results=100,
                              order_by=["metrics.test_accuracy DESC", "start_time DESC"])
    rows = [run_row(r) for r in runs]
    for r in rows:
        r["run_id"] = r["run_id"][:8]
    columns, caption = default_run_columns(rows, "table")
    emit(rows, columns, "table", title=f"{len(rows)} runs in experiment wine-quality, best first",
         caption=caption)
    best = runs[0]
    client.create_registered_model("wine-classifier", description="Random forest on the wine dataset")
    version = client.create_model_version("wine-classifier", f"runs:/{best.info.run_id}/model",
                                          run_id=best.info.run_id)
    client.set_registered_model_alias("wine-classifier", "champion", version.version)
    dirty = next(r for r in runs if r.data.tags.get("mlflow.source.git.dirty") == "true")
    gx = gitexp_command()
    activate = os.path.join(os.path.dirname(sys.executable), "activate")
    where = (f"\n(`{gx}` is this gitexp, which is not on your PATH: `source {shlex.quote(activate)}` "
             "lets you type `gitexp`.)" if gx != "gitexp" and os.path.exists(activate) else "")
    click.echo(f"""
The runs are commits on the branch `gitexp` of {path}; your working tree was not touched.
Try:{where}
  cd {shlex.quote(path)}
  git log --oneline gitexp | head -3
  {gx} runs list --filter "params.max_depth = '8' and metrics.test_accuracy > 0.9" --order-by "metrics.test_f1 DESC"
  {gx} runs compare {runs[0].info.run_id[:8]} {runs[-1].info.run_id[:8]}
  {gx} runs code {dirty.info.run_id[:8]}       # the uncommitted edit that run ran with
  {gx} metrics history {runs[0].info.run_id[:8]} test_accuracy
  {gx} models show wine-classifier      # the best run's model, registered with alias champion""")
    if sock is not None:
        _serve(path, sock)
    elif serve:
        click.echo("\n(The web UI needs gitexp[server]: pip install 'gitexp[server]', then `gitexp ui`.)")


def _serve(path: str, sock: socket.socket) -> None:
    from ..server.app import serve, url_of  # the web UI at /, and MLflow's REST API

    click.secho(f"\nWeb UI: {url_of('127.0.0.1', sock.getsockname()[1])}  (Ctrl-C to stop)", bold=True)
    serve(path, host="127.0.0.1", port=sock.getsockname()[1], sock=sock)


COMMANDS = [demo]
