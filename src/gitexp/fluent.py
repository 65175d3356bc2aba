"""The module-level API (``gitexp.start_run``, ``gitexp.log_metric``...).

It keeps the active experiment and, per thread, the stack of active runs, and
calls one Client per tracking URI for everything else.
"""

from __future__ import annotations

import atexit
import getpass
import os
import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .client import Client, resolve_tracking_uri
from .entities import Experiment, Metric, Param, Run, RunStatus, RunTag, ViewType
from .exceptions import GitexpError, InvalidParameterValue, ResourceDoesNotExist

if TYPE_CHECKING:
    import pandas as pd

    from .entities.logged_model import LoggedModel
    from .system_metrics import SystemMetricsMonitor

_tracking_uri: str | None = None
_active_experiment_id: str | None = None
_local = threading.local()


class ActiveRun(Run):
    """The run returned by start_run; a context manager that ends it on exit."""

    _started_by_pid: int  # set by start_run: the process that started it

    def __init__(self, run: Run) -> None:
        super().__init__(run.info, run.data, run.inputs)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> bool:
        if any(r.info.run_id == self.info.run_id for r in _stack()):
            if exc_type is None:
                status = RunStatus.FINISHED
            elif issubclass(exc_type, KeyboardInterrupt):
                status = RunStatus.KILLED
            else:
                status = RunStatus.FAILED
            end_run(RunStatus.to_string(status))
        return exc_type is None


def _stack() -> list[ActiveRun]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


_current: Client | None = None


def _client() -> Client:
    """The client for the tracking URI in effect, resolved once until set_tracking_uri."""
    global _current
    client = _current
    if client is None:
        client = _current = Client(resolve_tracking_uri(_tracking_uri))
    return client


# -- tracking URI -----------------------------------------------------------------------------
def set_tracking_uri(uri: str | os.PathLike[str]) -> None:
    """Track into the git repository at `uri` (a path or file:// URI)."""
    global _tracking_uri, _current
    _current = None
    uri = os.fspath(uri)
    if "://" not in uri:
        uri = os.path.abspath(uri)
    _tracking_uri = uri
    os.environ["GITEXP_TRACKING_URI"] = uri  # child processes (hyperopt workers...) follow


def get_tracking_uri() -> str:
    return resolve_tracking_uri(_tracking_uri)


def is_tracking_uri_set() -> bool:
    return _tracking_uri is not None or "GITEXP_TRACKING_URI" in os.environ


_registry_uri: str | None = None


def _same_store(a: str, b: str) -> bool:
    from .store.repo import path_from_uri

    def norm(uri: str) -> str:
        if uri.lower().startswith(("http://", "https://")):
            return uri.rstrip("/")
        try:
            return os.path.realpath(path_from_uri(uri))
        except GitexpError:  # a scheme gitexp does not track into
            return uri
    return norm(a) == norm(b)


def set_registry_uri(uri: str | os.PathLike[str] | None) -> None:
    """MLflow's registry URI. gitexp's model registry lives in the tracking store (the tracking
    branch, or the server of an http(s) tracking URI), so the only registry URI is the tracking
    URI: None or that URI are accepted (Ray Tune and others call this); any other URI is refused."""
    global _registry_uri
    if uri is None or os.fspath(uri) == "":
        _registry_uri = None
        return
    uri = os.fspath(uri)
    if not _same_store(uri, get_tracking_uri()):
        raise InvalidParameterValue(
            f"gitexp keeps the model registry with the tracking store, so the registry URI can only be the "
            f"tracking URI ({get_tracking_uri()}), not {uri!r}: call gitexp.set_tracking_uri({uri!r}) instead")
    _registry_uri = uri


def get_registry_uri() -> str:
    """The registry URI: the tracking URI (gitexp's registry lives in the tracking store)."""
    return _registry_uri if _registry_uri is not None and _same_store(_registry_uri, get_tracking_uri()) \
        else get_tracking_uri()


# -- system metrics settings (MLflow's environment variables hold them; gitexp/system_metrics.py
#    does the sampling, imported only when a run logs system metrics) ------------------------------
_SYSTEM_METRICS_ENV = "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"


def enable_system_metrics_logging() -> None:
    """Log system metrics for every run started from now on (unless start_run(log_system_metrics=False))."""
    os.environ[_SYSTEM_METRICS_ENV] = "true"


def disable_system_metrics_logging() -> None:
    """Log system metrics only for runs started with start_run(log_system_metrics=True)."""
    os.environ[_SYSTEM_METRICS_ENV] = "false"


def _set_env(name: str, value: Any) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = str(value)


def set_system_metrics_sampling_interval(interval: float | None) -> None:
    """Seconds between two samples of system metrics (default 10; None: the default)."""
    if interval is not None and not float(interval) > 0:
        raise InvalidParameterValue(f"The system metrics sampling interval must be positive, got {interval!r}")
    _set_env("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", interval)


def set_system_metrics_samples_before_logging(samples: int | None) -> None:
    """Samples averaged into one logged value of each system metric (default 1; None: the default)."""
    if samples is not None and (int(samples) != samples or samples < 1):
        raise InvalidParameterValue(f"samples_before_logging must be a positive integer, got {samples!r}")
    _set_env("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", samples)


def set_system_metrics_node_id(node_id: str | None) -> None:
    """Name this machine in system metric keys (``system/<node_id>/...``; multi-node training)."""
    _set_env("MLFLOW_SYSTEM_METRICS_NODE_ID", node_id)


def _system_metrics_wanted(log_system_metrics: bool | None) -> bool:
    if log_system_metrics is not None:
        return bool(log_system_metrics)
    value = os.environ.get(_SYSTEM_METRICS_ENV, "").strip().lower()
    return value in ("true", "1")


_monitors: dict[str, SystemMetricsMonitor] = {}
_psutil_warned = False


def _start_system_metrics(client: Client, run_id: str, resumed: bool) -> None:
    global _psutil_warned
    import importlib.util

    try:
        missing = importlib.util.find_spec("psutil") is None
    except (ImportError, ValueError):  # ValueError: a module without a spec stands in sys.modules
        missing = True
    if missing:
        if not _psutil_warned:
            _psutil_warned = True
            import warnings

            warnings.warn("gitexp: system metrics need psutil, which is not installed; runs are logged without "
                          "them. Install it with: pip install 'gitexp[system-metrics]'", stacklevel=3)
        return
    try:
        from .system_metrics import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(client, run_id, resume_logging=resumed)
        monitor.start()
        _monitors[run_id] = monitor
    except Exception as exc:  # system metrics never stop a run
        import logging

        logging.getLogger("gitexp").warning("gitexp: could not start system metrics for run %s: %s", run_id, exc)


def _stop_system_metrics(run_id: str) -> None:
    monitor = _monitors.pop(run_id, None)
    if monitor is not None:
        monitor.finish()


# -- experiments --------------------------------------------------------------------------------
def set_experiment(experiment_name: str | None = None, experiment_id: str | None = None) -> Experiment:
    """Make an experiment active, creating it (by name) if it does not exist."""
    global _active_experiment_id
    if (experiment_name is None) == (experiment_id is None):
        raise InvalidParameterValue("set_experiment needs exactly one of experiment_name or experiment_id")
    client = _client()
    experiment: Experiment | None
    if experiment_id is not None:
        experiment = client.get_experiment(str(experiment_id))
    else:
        assert experiment_name is not None  # exactly one of the two, checked above
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            try:
                client.create_experiment(experiment_name)
            except GitexpError as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            experiment = client.get_experiment_by_name(experiment_name)
            assert experiment is not None
    if experiment.lifecycle_stage != "active":
        raise InvalidParameterValue(
            f"Cannot set the deleted experiment {experiment.name!r} as the active experiment. "
            f"Restore it with `gitexp experiments restore {experiment.experiment_id}`, or choose another name."
        )
    _active_experiment_id = experiment.experiment_id
    return experiment


def _experiment_id() -> str:
    if _active_experiment_id is not None:
        return _active_experiment_id
    name = os.environ.get("GITEXP_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if name:
        experiment_id: str = set_experiment(name).experiment_id
        return experiment_id
    exp_id = os.environ.get("GITEXP_EXPERIMENT_ID") or os.environ.get("MLFLOW_EXPERIMENT_ID")
    return exp_id or "0"


def _experiment_chosen() -> bool:
    """Whether this process chose an experiment (set_experiment or the environment)."""
    return _active_experiment_id is not None or any(
        os.environ.get(v) for v in ("GITEXP_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_NAME", "GITEXP_EXPERIMENT_ID",
                                    "MLFLOW_EXPERIMENT_ID"))


def create_experiment(name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None) -> str:
    return _client().create_experiment(name, artifact_location, tags)


def get_experiment(experiment_id: str) -> Experiment:
    return _client().get_experiment(experiment_id)


def get_experiment_by_name(name: str) -> Experiment | None:
    return _client().get_experiment_by_name(name)


def search_experiments(view_type: int = ViewType.ACTIVE_ONLY, max_results: int | None = None,
                       filter_string: str | None = None, order_by: list[str] | None = None) -> list[Experiment]:
    return list(_client().search_experiments(view_type, max_results, filter_string, order_by))


def delete_experiment(experiment_id: str) -> None:
    _client().delete_experiment(experiment_id)


def restore_experiment(experiment_id: str) -> None:
    _client().restore_experiment(experiment_id)


def rename_experiment(experiment_id: str, new_name: str) -> None:
    _client().rename_experiment(experiment_id, new_name)


def set_experiment_tag(key: str, value: Any) -> None:
    _client().set_experiment_tag(_experiment_id(), key, value)


def set_experiment_tags(tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        set_experiment_tag(key, value)


def delete_experiment_tag(key: str) -> None:
    _client().delete_experiment_tag(_experiment_id(), key)


# -- runs ------------------------------------------------------------------------------------------
def _source_tags() -> dict[str, str]:
    source = sys.argv[0] if sys.argv and sys.argv[0] else "<console>"
    if os.path.isfile(source):
        source = os.path.abspath(source)
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return {"mlflow.source.name": source, "mlflow.source.type": "LOCAL", "mlflow.user": user}


def _start_code_capture(client: Client, run_id: str) -> None:
    if os.environ.get("GITEXP_CAPTURE_CODE", "1") in ("0", "false", "no"):
        return
    client.capture_code(run_id)


def start_run(run_id: str | None = None, experiment_id: str | None = None, run_name: str | None = None,
              nested: bool = False, parent_run_id: str | None = None, tags: dict[str, Any] | None = None,
              description: str | None = None, log_system_metrics: bool | None = None) -> ActiveRun:
    """Start (or resume, with run_id) a run and make it active. Use it as a context manager."""
    stack = _stack()
    if stack and not nested:
        raise GitexpError(
            f"Run {stack[0].info.run_id} is already active. End it with gitexp.end_run() before "
            "starting another, or pass nested=True to start a child run."
        )
    client = _client()
    tags = {k: str(v) for k, v in (tags or {}).items()}
    if description:
        if "mlflow.note.content" in tags:
            raise InvalidParameterValue(
                "The description is given both as description= and as the tag mlflow.note.content; pass one"
            )
        tags["mlflow.note.content"] = description
    existing = run_id or os.environ.pop("GITEXP_RUN_ID", None) or os.environ.pop("MLFLOW_RUN_ID", None)
    if existing:
        run = client.get_run(existing)
        if _active_experiment_id is not None and run.info.experiment_id != _active_experiment_id:
            raise InvalidParameterValue(
                f"Cannot resume run {existing}: it belongs to experiment {run.info.experiment_id}, "
                f"but the active experiment is {_active_experiment_id}"
            )
        if run.info.lifecycle_stage == "deleted":
            raise InvalidParameterValue(f"Cannot resume run {existing}: it is deleted; restore it first")
        client.update_run(existing, "RUNNING", run_name)
        if tags:
            client.log_batch(existing, tags=[RunTag(k, v) for k, v in tags.items()])
        run = client.get_run(existing)
    else:
        if parent_run_id:
            if stack and parent_run_id != stack[-1].info.run_id:
                raise InvalidParameterValue(
                    f"parent_run_id {parent_run_id} is not the active run {stack[-1].info.run_id}; "
                    "end the active run first"
                )
            try:
                parent = client.get_run(parent_run_id)
            except ResourceDoesNotExist as exc:
                raise ResourceDoesNotExist(
                    f"Parent run {parent_run_id} not found. If another process started it moments ago, it is "
                    "not committed yet: call gitexp.flush() there after starting it (before starting workers), "
                    f"or pass the parent to workers by fork. ({exc})", run_id=parent_run_id) from exc
            if parent.info.lifecycle_stage == "deleted":
                raise InvalidParameterValue(f"Cannot start a run under deleted parent run {parent_run_id}")
            if experiment_id is None and not _experiment_chosen():
                experiment_id = parent.info.experiment_id  # a worker process: the child joins its parent
        elif stack:
            parent_run_id = stack[-1].info.run_id
        exp_id = str(experiment_id) if experiment_id is not None else _experiment_id()
        all_tags = {**_source_tags(), **tags}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(exp_id, None, all_tags, run_name, user_id=all_tags.get("mlflow.user"))
        _start_code_capture(client, run.info.run_id)
    if _system_metrics_wanted(log_system_metrics):
        _start_system_metrics(client, run.info.run_id, resumed=bool(existing))
    active = ActiveRun(run)
    active._started_by_pid = os.getpid()
    stack.append(active)
    _register_atexit()
    return active


def end_run(status: str = "FINISHED") -> None:
    """End the active run (if any) with the given status."""
    stack = _stack()
    if not stack:
        return
    run = stack.pop()
    _local.last_run_id = run.info.run_id
    if _monitors:
        _stop_system_metrics(run.info.run_id)  # first: nothing is logged after the run ends
    _client().set_terminated(run.info.run_id, status)


_atexit_registered = False


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_end_runs_at_exit)


def _end_runs_at_exit() -> None:
    while _stack():
        if getattr(_stack()[-1], "_started_by_pid", os.getpid()) != os.getpid():
            _stack().pop()  # inherited through fork(): the parent process ends it, not this child
            continue
        try:
            end_run()
        except Exception:
            _stack().pop()


def active_run() -> ActiveRun | None:
    stack = _stack()
    return stack[-1] if stack else None


def last_active_run() -> Run | None:
    run = active_run()
    if run is not None:
        return get_run(run.info.run_id)
    last = getattr(_local, "last_run_id", None)
    return get_run(last) if last else None


def _run_id(run_id: str | None = None) -> str:
    if run_id:
        return run_id
    stack = _stack()
    run = stack[-1] if stack else start_run()
    active_id: str = run.info.run_id
    return active_id


def get_run(run_id: str) -> Run:
    return _client().get_run(run_id)


def get_parent_run(run_id: str) -> Run | None:
    return _client().get_parent_run(run_id)


def delete_run(run_id: str) -> None:
    _client().delete_run(run_id)


def restore_run(run_id: str) -> None:
    _client().restore_run(run_id)


def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    """Log a parameter (stored as a string; it cannot change once logged)."""
    _client().log_param(_run_id(), key, value)
    return value


def log_params(params: dict[str, Any], synchronous: bool | None = None, run_id: str | None = None) -> None:
    _client().log_batch(_run_id(run_id), params=[Param(k, v) for k, v in params.items()])


def log_metric(key: str, value: float, step: int | None = None, synchronous: bool | None = None,
               timestamp: int | None = None, run_id: str | None = None, model_id: str | None = None,
               dataset: Any = None) -> None:
    """Log one metric value; histories keep every (step, value, timestamp)."""
    stack = getattr(_local, "stack", None)
    rid = run_id or (stack[-1].info._run_id if stack else _run_id())
    (_current or _client()).log_metric(rid, key, value, timestamp, step)  # the hot path: one call less


def log_metrics(metrics: dict[str, float], step: int | None = None, synchronous: bool | None = None,
                run_id: str | None = None, timestamp: int | None = None, model_id: str | None = None,
                dataset: Any = None) -> None:
    from .store.layout import now_ms

    ts = timestamp if timestamp is not None else now_ms()
    _client().log_batch(_run_id(run_id), metrics=[Metric(k, v, ts, step or 0) for k, v in metrics.items()])


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    _client().set_tag(_run_id(), key, value)


def set_tags(tags: dict[str, Any], synchronous: bool | None = None) -> None:
    _client().log_batch(_run_id(), tags=[RunTag(k, str(v)) for k, v in tags.items()])


def delete_tag(key: str) -> None:
    _client().delete_tag(_run_id(), key)


def search_runs(experiment_ids: list[str] | None = None, filter_string: str = "",
                run_view_type: int = ViewType.ACTIVE_ONLY, max_results: int = 100000,
                order_by: list[str] | None = None, output_format: str = "pandas",
                search_all_experiments: bool = False, experiment_names: list[str] | None = None,
                as_of: Any = None) -> pd.DataFrame | list[Run]:
    """Runs matching an MLflow filter string, as a pandas DataFrame (or a list with output_format='list').

    The DataFrame has MLflow's columns: run_id, experiment_id, status, artifact_uri,
    start_time, end_time (UTC datetimes), then metrics.*, params.* and tags.*.
    Without experiment ids or names the active experiment is searched, or every
    active experiment with search_all_experiments=True.  ``as_of`` (gitexp
    addition) searches the store as it was at a commit or a date.
    """
    client = _client()
    no_ids = not experiment_ids
    no_names = not experiment_names
    if not no_ids and not no_names:
        raise InvalidParameterValue("Only experiment_ids or experiment_names can be used, but not both")
    if output_format not in ("pandas", "list"):
        raise InvalidParameterValue(f"output_format must be 'pandas' or 'list', got {output_format!r}")
    if not no_names:
        ids = []
        for name in experiment_names or []:
            experiment = client.get_experiment_by_name(name) if name is not None else None
            if experiment is not None:
                ids.append(experiment.experiment_id)
            elif name is not None:
                import logging

                logging.getLogger("gitexp").warning("gitexp: no experiment named %r; it is left out of the search",
                                                    name)
    elif not no_ids:
        ids = [experiment_ids] if isinstance(experiment_ids, (str, int)) else list(experiment_ids)  # type: ignore[arg-type]  # MLflow takes one id too
    elif search_all_experiments:
        ids = [e.experiment_id for e in client.search_experiments(ViewType.ACTIVE_ONLY, None)]
    else:
        ids = [_experiment_id()]
    if output_format == "pandas":
        return client.search_runs_frame(ids, filter_string, run_view_type, max_results, order_by, as_of)
    runs: list[Run] = []
    token = None
    while ids and len(runs) < max_results:
        page = client.search_runs(ids, filter_string, run_view_type, min(max_results - len(runs), 50000),
                                  order_by, token, as_of)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return runs


def metric_history_frame(run_ids: Any, keys: str | list[str] | None = None) -> pd.DataFrame:
    """A tidy pandas DataFrame of metric histories (gitexp addition).

    One row per logged point, columns run_id, key, step, timestamp (ms), value --
    ready for ``df.groupby(["run_id", "key"])`` or a line plot per run.
    `run_ids` may be one id, a list of ids or Runs, or a search_runs DataFrame.
    """
    return _client().metric_history_frame(run_ids, keys)


def flush() -> None:
    """Commit everything logged so far now, instead of at the next checkpoint."""
    _client().flush()


def flush_async_logging() -> None:
    """MLflow's name for gitexp.flush(): returns once everything logged so far is committed.

    gitexp's logging is always asynchronous in MLflow's sense (a call writes its journal
    line and returns; commits happen in the background), so this is what waits for them."""
    flush()


def last_logged_model() -> LoggedModel | None:
    """The logged model (MLflow 3's LoggedModel) most recently logged by this thread, or None.

    A flavor's log_model (gitexp.sklearn.log_model, gitexp.xgboost.log_model, autologging)
    records one; as in MLflow, the last one is remembered per thread."""
    model_id = getattr(_local, "last_logged_model_id", None)
    return _client().get_logged_model(model_id) if model_id else None


def _set_last_logged_model(model_id: str | None) -> None:
    _local.last_logged_model_id = model_id


def _reset() -> None:
    """Forget the tracking URI, active experiment and runs of this process (tests, notebooks)."""
    global _tracking_uri, _current, _active_experiment_id, _registry_uri
    _registry_uri = None
    while _stack():
        try:
            end_run()
        except Exception:
            _stack().pop()
    for run_id in list(_monitors):
        _stop_system_metrics(run_id)
    if _tracking_uri is not None and os.environ.get("GITEXP_TRACKING_URI") == _tracking_uri:
        del os.environ["GITEXP_TRACKING_URI"]
    _tracking_uri = None
    _current = None
    _active_experiment_id = None
    _local.last_run_id = None
    _local.last_logged_model_id = None


__all__ = [
    "ActiveRun", "active_run", "create_experiment", "delete_experiment", "delete_experiment_tag",
    "delete_run", "delete_tag", "disable_system_metrics_logging", "enable_system_metrics_logging", "end_run",
    "flush", "flush_async_logging", "get_experiment", "get_experiment_by_name", "get_parent_run",
    "get_registry_uri", "get_run", "get_tracking_uri", "is_tracking_uri_set", "last_active_run",
    "last_logged_model", "log_metric", "log_metrics", "log_param", "log_params", "metric_history_frame",
    "rename_experiment", "restore_experiment", "restore_run", "search_experiments", "search_runs",
    "set_experiment", "set_experiment_tag", "set_experiment_tags", "set_registry_uri",
    "set_system_metrics_node_id", "set_system_metrics_samples_before_logging",
    "set_system_metrics_sampling_interval", "set_tag", "set_tags", "set_tracking_uri", "start_run",
]
