"""The light path (`import gitexp as mlflow`, no mlflow installed needed): system metrics, gitexp.config,
flush_async_logging, last_logged_model, and the one-line errors for what only MLflow's own package has.

Real repositories in tmp dirs and real threads; the metric names are checked against the text of the
installed mlflow's system_metrics monitors (read, not imported).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import threading
import time
from pathlib import Path

import pytest

import gitexp
from gitexp.exceptions import InvalidParameterValue, PluginRequired

from .conftest import git, run_python

SYSTEM_ENV = ("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL",
              "MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "MLFLOW_SYSTEM_METRICS_NODE_ID")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """The setters write MLflow's environment variables (as MLflow's do): undone after each test."""
    for name in (*SYSTEM_ENV, "MLFLOW_ENABLE_ASYNC_LOGGING"):
        monkeypatch.delenv(name, raising=False)


def mlflow_file(relative: str) -> Path:
    spec = importlib.util.find_spec("mlflow")  # locates the installed package without importing it
    assert spec is not None and spec.origin
    return Path(spec.origin).parent / relative


def mlflow_system_metric_names() -> set[str]:
    names = set()
    for monitor in ("cpu_monitor.py", "disk_monitor.py", "network_monitor.py"):
        names |= set(re.findall(r'_metrics\["(\w+)"\]', mlflow_file(f"system_metrics/metrics/{monitor}").read_text()))
    return names


def system_history(client, run_id: str) -> dict[str, list]:
    run = client.get_run(run_id)
    return {k: client.get_metric_history(run_id, k) for k in run.data.metrics if k.startswith("system/")}


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def monitor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gitexp-system-metrics" and t.is_alive()]


# -- system metrics ------------------------------------------------------------------------------
def test_system_metrics_use_mlflows_names_increasing_steps_and_stop_at_end_run(client):
    gitexp.set_system_metrics_sampling_interval(0.2)
    run = gitexp.start_run(log_system_metrics=True)
    run_id = run.info.run_id
    wait_for(lambda: len(client.get_metric_history(run_id, "system/cpu_utilization_percentage")) >= 3)
    gitexp.end_run()
    assert not monitor_threads()
    history = system_history(client, run_id)
    assert set(history) == {f"system/{name}" for name in mlflow_system_metric_names()}
    assert "system/system_memory_usage_megabytes" in history
    steps = [m.step for m in history["system/cpu_utilization_percentage"]]
    assert steps == list(range(len(steps)))
    for key, points in history.items():  # one logging = one step for every key
        assert [m.step for m in points] == steps, key
    assert 0 < history["system/system_memory_usage_percentage"][-1].value <= 100
    ended = client.get_run(run_id).info.end_time
    assert all(m.timestamp <= ended for points in history.values() for m in points)
    time.sleep(0.6)  # three more intervals: nothing is logged after the run ended
    gitexp.flush()
    assert {k: len(v) for k, v in system_history(client, run_id).items()} == {k: len(v) for k, v in history.items()}


def test_samples_before_logging_node_id_and_environment_variables(client, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "3")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_NODE_ID", "node_0")
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    with gitexp.start_run() as run:
        key = "system/node_0/cpu_utilization_percentage"
        started = time.monotonic()
        wait_for(lambda: len(client.get_metric_history(run.info.run_id, key)) >= 2)
        elapsed = time.monotonic() - started
    assert elapsed >= 0.5  # two loggings of three samples 0.1 s apart
    assert all(k.startswith("system/node_0/") for k in system_history(client, run.info.run_id))


def test_the_global_switch_and_the_run_argument(client):
    def logs_system_metrics(**kwargs) -> bool:
        with gitexp.start_run(**kwargs) as run:
            time.sleep(0.35)
        return bool(system_history(client, run.info.run_id))

    gitexp.set_system_metrics_sampling_interval(0.1)
    assert not logs_system_metrics()
    gitexp.enable_system_metrics_logging()
    assert logs_system_metrics()
    assert not logs_system_metrics(log_system_metrics=False)
    gitexp.disable_system_metrics_logging()
    assert not logs_system_metrics()
    assert logs_system_metrics(log_system_metrics=True)
    gitexp.set_system_metrics_sampling_interval(None)
    assert "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL" not in __import__("os").environ
    with pytest.raises(InvalidParameterValue, match="positive"):
        gitexp.set_system_metrics_sampling_interval(0)
    with pytest.raises(InvalidParameterValue, match="positive integer"):
        gitexp.set_system_metrics_samples_before_logging(0)


def test_a_resumed_run_continues_the_steps(client):
    gitexp.set_system_metrics_sampling_interval(0.1)
    with gitexp.start_run(log_system_metrics=True) as run:
        wait_for(lambda: len(client.get_metric_history(run.info.run_id, "system/disk_usage_percentage")) >= 2)
    first = [m.step for m in client.get_metric_history(run.info.run_id, "system/disk_usage_percentage")]
    with gitexp.start_run(run_id=run.info.run_id, log_system_metrics=True):
        wait_for(lambda: len(client.get_metric_history(run.info.run_id, "system/disk_usage_percentage"))
                 >= len(first) + 1)
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "system/disk_usage_percentage")]
    assert steps == list(range(len(steps)))


def test_without_psutil_one_warning_line_and_the_runs_go_on(repo):
    result = run_python(
        "import sys\n"
        "sys.modules['psutil'] = None  # this interpreter cannot import psutil\n"
        "import gitexp\n"
        "for _ in range(2):\n"
        "    with gitexp.start_run(log_system_metrics=True):\n"
        "        gitexp.log_metric('loss', 1.0)\n"
        "print(len(gitexp.search_runs(output_format='list')))\n", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"
    warnings = [line for line in result.stderr.splitlines() if "psutil" in line]
    assert len(warnings) == 1, result.stderr
    assert "pip install 'gitexp[system-metrics]'" in warnings[0]


# -- gitexp.config, registry URI, async logging --------------------------------------------------
def test_config_has_what_mlflow_config_has(repo):
    tree = ast.parse(mlflow_file("config/__init__.py").read_text())
    mlflow_all = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                      and getattr(n.targets[0], "id", "") == "__all__")
    assert set(mlflow_all) <= set(gitexp.config.__all__)
    for name in gitexp.config.__all__:
        assert callable(getattr(gitexp.config, name)), name
    assert gitexp.config.set_system_metrics_node_id is gitexp.set_system_metrics_node_id
    assert gitexp.config.get_tracking_uri() == gitexp.get_tracking_uri()


def test_registry_uri_is_the_tracking_uri(repo, tmp_path):
    gitexp.set_tracking_uri(repo)
    gitexp.set_registry_uri(None)  # Ray Tune's default
    assert gitexp.get_registry_uri() == gitexp.get_tracking_uri()
    gitexp.set_registry_uri(f"file://{repo}")
    assert gitexp.get_registry_uri() == f"file://{repo}"
    with pytest.raises(InvalidParameterValue, match="tracking URI") as exc:
        gitexp.config.set_registry_uri("databricks-uc")
    assert "\n" not in str(exc.value)
    with pytest.raises(InvalidParameterValue, match="set_tracking_uri"):
        gitexp.set_registry_uri(str(tmp_path / "elsewhere"))
    gitexp.set_tracking_uri(tmp_path)  # the registry follows the tracking store
    assert gitexp.get_registry_uri() == gitexp.get_tracking_uri()


def test_async_logging_switches_change_nothing_and_flush_async_logging_commits(repo):
    gitexp.config.enable_async_logging()
    with gitexp.start_run() as run:
        gitexp.log_metric("loss", 0.5, synchronous=False)
        gitexp.log_param("lr", 0.1, synchronous=True)
        gitexp.flush_async_logging()
        run_id = run.info.run_id
        latest = git("show", f"gitexp:.tracking/runs/{run_id[:2]}/{run_id}/latest_metrics.yaml", cwd=repo)
        assert "loss" in latest  # on the branch, not only in the journal
    gitexp.config.disable_async_logging()
    assert gitexp.get_run(run_id).data.params == {"lr": "0.1"}


# -- last_logged_model ---------------------------------------------------------------------------
def test_last_logged_model_is_the_model_log_model_logged(repo):
    pytest.importorskip("sklearn")  # the sklearn extra; installed in dev
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    assert gitexp.last_logged_model() is None
    with gitexp.start_run() as run:
        info = gitexp.sklearn.log_model(model, name="clf")
        gitexp.sklearn.log_model(model, artifact_path="nested/clf")  # no logged model can have this name
    logged = gitexp.last_logged_model()
    assert logged is not None and logged.model_id == info.model_id
    assert (logged.status, logged.source_run_id, logged.artifact_location) == \
        ("READY", run.info.run_id, f"runs:/{run.info.run_id}/clf")
    assert gitexp.models.get_model_info(info.model_uri).model_id == info.model_id  # in MLmodel
    loaded = gitexp.pyfunc.load_model(f"models:/{info.model_id}")
    assert list(loaded.predict([[0.0], [3.0]])) == [0, 1]
    other = []
    thread = threading.Thread(target=lambda: other.append(gitexp.last_logged_model()))
    thread.start()
    thread.join()
    assert other == [None]  # per thread, as in MLflow


# -- what only MLflow's own package has ----------------------------------------------------------
def assert_plugin_line(message: str, flavor: str) -> None:
    assert "\n" not in message
    assert "pip install 'gitexp[mlflow]'" in message
    assert 'import mlflow; mlflow.set_tracking_uri("gitexp:")' in message
    assert message.endswith(f"use mlflow.{flavor}")


@pytest.mark.parametrize("name, flavor", [
    ("lightgbm", "lightgbm"), ("pytorch", "pytorch"), ("tensorflow", "tensorflow"), ("keras", "keras"),
    ("transformers", "transformers"), ("onnx", "onnx"), ("catboost", "catboost"), ("statsmodels", "statsmodels"),
    ("spark", "spark"), ("lightning", "pytorch")])
def test_a_plugin_only_flavor_says_how_to_get_it(name, flavor):
    with pytest.raises(PluginRequired) as exc:
        getattr(gitexp, name)
    assert_plugin_line(str(exc.value), flavor)
    assert str(exc.value).startswith(f"gitexp.{name} is logged through MLflow's own package")
    assert not hasattr(gitexp, name)  # an AttributeError too: probing code keeps working


def test_importing_a_plugin_only_flavor_says_it_too(repo):
    result = run_python(
        "import json\n"
        "out = []\n"
        "for stmt in ('import gitexp.lightgbm', 'from gitexp import pytorch', 'import gitexp.keras.callbacks',\n"
        "             'from gitexp.models import evaluate'):\n"
        "    try:\n"
        "        exec(stmt)\n"
        "    except ImportError as exc:\n"
        "        out.append(str(exc))\n"
        "print(json.dumps(out))\n", cwd=repo)
    assert result.returncode == 0, result.stderr
    messages = json.loads(result.stdout)
    assert len(messages) == 4
    for message, flavor in zip(messages, ("lightgbm", "pytorch", "keras", "models.evaluate"), strict=True):
        assert_plugin_line(message, flavor)
    with pytest.raises(PluginRequired, match=r"gitexp\.models\.evaluate .*mlflow\.models\.evaluate"):
        gitexp.models.evaluate  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        gitexp.nothing  # noqa: B018


def test_autolog_warns_once_about_lightgbm(repo):
    pytest.importorskip("lightgbm")  # installed in dev: the case a user meets
    result = run_python(
        "import json, warnings\n"
        "import gitexp\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    gitexp.autolog(silent=True)\n"
        "    gitexp.autolog(exclude_flavors=['lightgbm', 'tensorflow', 'keras', 'statsmodels', 'spark',\n"
        "                                    'pytorch', 'transformers'])\n"
        "    gitexp.autolog()\n"
        "    gitexp.autolog()\n"
        "print(json.dumps([str(w.message) for w in caught if 'autolog' in str(w.message)]))\n", cwd=repo)
    assert result.returncode == 0, result.stderr
    messages = json.loads(result.stdout)
    assert len(messages) == 1, messages
    assert "lightgbm" in messages[0] and "\n" not in messages[0]
    assert "pip install 'gitexp[mlflow]'" in messages[0] and "mlflow.autolog()" in messages[0]
