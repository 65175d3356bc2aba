"""The same runs logged into gitexp and into the real mlflow package (sqlite backend).

The data follows MLflow's "Search Runs" guide (its ten `search-run-guide` runs),
the tutorials in /work/shared/seeds (nyc-taxi rmse runs with model tags, the
grocery-forecasting experiment tags) and edge cases: NaN and infinite latest
metrics, histories whose latest value is not the last logged, missing keys,
quotes, case and non-ASCII text, running/failed/killed and deleted runs, a
deleted experiment.  Every run has a distinct start_time, so orders never
depend on run ids (which differ between the two stores).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASE = 1_700_000_000_000


@dataclass
class RunSpec:
    name: str
    experiment: str
    start: int                      # start_time offset in seconds from BASE
    status: str = "FINISHED"
    end: int | None = None          # end_time offset (default start + 60 s)
    user: str = "conformance"
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, timestamp, step
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: list[tuple[str, str, str]] = field(default_factory=list)  # name, digest, context
    deleted: bool = False

    @property
    def start_time(self) -> int:
        return BASE + self.start * 1000

    @property
    def end_time(self) -> int:
        return BASE + (self.end if self.end is not None else self.start + 60) * 1000


def _specs() -> list[RunSpec]:
    specs: list[RunSpec] = []
    # MLflow's search-run-guide data (docs: Search Runs), as its script logs it.
    loss = [1 - 0.1 * i for i in range(10)]
    models = ["GPT-2", "GPT-3", "GPT-3.5", "GPT-4"] + ["None"] * 6
    tasks = ["classification", "regression", "causal lm"] + ["None"] * 7
    envs = ["notebook"] * 5 + ["None"] * 5
    digests = ["s8ds293b", "jks834s2"] + [f"auto{i:04d}" for i in range(2, 10)]
    order = [3, 7, 1, 9, 5, 0, 8, 2, 6, 4]
    for i in range(10):
        specs.append(RunSpec(
            name=f"guide-{i}", experiment="search-run-guide", start=100 + order[i] * 10,
            metrics=[("loss", loss[i], BASE + i, 0), ("accuracy", 0.1 * i, BASE + i, 0),
                     ("log-scale-loss", math.log(loss[i]), BASE + i, 0), ("f1 score", 0.1 * i, BASE + i, 0)],
            params={"batch_size": "2" if i < 5 else "4", "learning rate": ["0.001", "0.01"][i % 2],
                    "model": models[i]},
            tags={"task": tasks[i], "environment": envs[i]},
            datasets=[("custom" if i < 5 else "also custom", digests[i], "train" if i < 5 else "test")],
        ))
    # The nyc-taxi tutorial: rmse, model tags, hyperparameters; plus edge cases.
    taxi = [
        # name, start, rmse, model tag, params, extra
        ("taxi-1", 300, 6.3, "xgboost", {"alpha": "0.01", "max_depth": "30"}, {}),
        ("taxi-2", 310, 7.1, "sklearn", {"alpha": "0.1", "max_depth": "4"}, {"developer": "Alexa"}),
        ("taxi-3", 320, 5.9, "xgboost", {"alpha": "0.001", "max_depth": "12"}, {"s.release": "1.1.0-RC"}),
        ("taxi-4", 330, 8.2, "lightgbm", {"alpha": "0.5"}, {"s.release": "1.2.0-GA"}),
        ("taxi-5", 340, 6.99, "XGBoost", {"alpha": "0.01", "train_data_path": "data/jan_2021.csv"},
         {"developer": "alexa"}),
        ("taxi-6", 350, 7.0, "sklearn", {"alpha": "1", "model": "GPT-4"}, {"production": "true"}),
        ("taxi-7", 360, 5.5, "xgboost", {"alpha": "it's", "note": "50% off_sale"}, {"mlflow.note.content": "best"}),
        ("taxi-8", 370, math.nan, "xgboost", {"alpha": "Ärger"}, {"type": "LogisticRegression"}),
        ("taxi-9", 380, math.inf, None, {"alpha": "ärger", "model": "gpt-4"}, {"type": "logistic"}),
        ("taxi-10", 390, -math.inf, "sklearn", {"glob": "aXb"}, {"production": "false"}),
        ("taxi-11", 400, 6.0, "xgboost", {"alpha": "0.01", "glob": "a*b?[c]"}, {"model type": "tree"}),
    ]
    for name, start, rmse, model, params, extra in taxi:
        tags = dict(extra)
        if model is not None:
            tags["model"] = model
        specs.append(RunSpec(name=name, experiment="nyc-taxi-experiment", start=start,
                             metrics=[("rmse", rmse, BASE + start, 0)], params=params, tags=tags))
    taxi_specs = {s.name: s for s in specs}
    # Histories: the latest value is the largest step, then the latest timestamp, then the largest value.
    taxi_specs["taxi-1"].metrics += [("val_loss", 0.9, BASE + 10, 0), ("val_loss", 0.4, BASE + 5, 3),
                                     ("val_loss", 0.7, BASE + 20, 2)]
    taxi_specs["taxi-2"].metrics += [("val_loss", 0.3, BASE + 10, 5), ("val_loss", 0.6, BASE + 30, 5)]
    taxi_specs["taxi-3"].metrics += [("val_loss", 0.2, BASE + 10, 1), ("val_loss", 0.8, BASE + 10, 1)]
    taxi_specs["taxi-4"].metrics += [("val_loss", math.nan, BASE + 10, 9), ("val_loss", 0.1, BASE + 10, 1)]
    taxi_specs["taxi-5"].metrics += [("val_loss", 0.5, BASE + 10, 2), ("val_loss", math.nan, BASE + 5, 1)]
    taxi_specs["taxi-6"].metrics += [("error", 0.04, BASE, 0), ("prediction accuracy", 0.95, BASE, 0)]
    taxi_specs["taxi-7"].metrics += [("error", 0.06, BASE, 0), ("prediction accuracy", 0.945, BASE, 0),
                                     ("2019-04-02 error rate", 0.5, BASE, 0)]
    taxi_specs["taxi-8"].metrics += [("accuracy_score", 99.95, BASE, 0)]
    taxi_specs["taxi-9"].metrics += [("accuracy_score", 12, BASE, 0), ("error", 0.01, BASE, 0)]
    # Lifecycle and status edge cases.
    specs += [
        RunSpec("taxi-running", "nyc-taxi-experiment", 410, status="RUNNING",
                metrics=[("rmse", 6.5, BASE, 0)], params={"alpha": "0.01"}, tags={"model": "xgboost"}),
        RunSpec("taxi-failed", "nyc-taxi-experiment", 420, status="FAILED", end=500,
                metrics=[("rmse", 9.9, BASE, 0)], tags={"model": "sklearn"}, user="alice"),
        RunSpec("taxi-killed", "nyc-taxi-experiment", 430, status="KILLED", end=440,
                params={"model": "LogisticRegression", "lambda": "0.001", "layers": "10",
                        "model-type": "cnn"},
                metrics=[("error", 0.05, BASE, 0), ("rmse", 0.8, BASE, 0)], user="alice"),
        RunSpec("taxi-deleted", "nyc-taxi-experiment", 450, metrics=[("rmse", 1.0, BASE, 0)],
                params={"alpha": "0.01"}, tags={"model": "xgboost"}, deleted=True),
        RunSpec("taxi-deleted-2", "nyc-taxi-experiment", 460, status="FAILED",
                metrics=[("rmse", 7.5, BASE, 0)], tags={"model": "sklearn"}, deleted=True),
        RunSpec("other-1", "conf-other", 500, metrics=[("rmse", 4.0, BASE, 0)],
                params={"model": "Inception"}, tags={"model": "xgboost", "mlflow.user": "john@mlflow.com"},
                user="john@mlflow.com"),
        RunSpec("other-2", "conf-other", 510, metrics=[("rmse", 12.0, BASE, 0)],
                params={"model": "CNN", "layers": "10"}, tags={"model": "sklearn"},
                datasets=[("custom", "zz999", "eval"), ("wine", "w1", "train")]),
        RunSpec("other-3", "conf-other", 520, params={"model": "Inception"}, tags={"team": "x"}),
        RunSpec("gone-1", "conf-gone", 530, metrics=[("rmse", 3.0, BASE, 0)], tags={"model": "xgboost"}),
    ]
    return specs


SPECS = _specs()
EXPERIMENTS = {
    "search-run-guide": {},
    "nyc-taxi-experiment": {"project_name": "taxi", "team": "ml"},
    "conf-other": {"project_name": "grocery-forecasting", "project_quarter": "Q3-2023", "team": "stores-ml"},
    "conf-gone": {"team": "old"},
}
RUN_EXPERIMENTS = ("search-run-guide", "nyc-taxi-experiment", "conf-other", "conf-gone")


class Twin:
    """The two stores, and helpers to run one query on both."""

    def __init__(self, root: Path):
        self.root = root
        self.repo = root / "repo"
        self.db_uri = f"sqlite:///{root / 'mlflow.db'}"
        self.g_ids: dict[str, str] = {}      # run name -> gitexp run id
        self.m_ids: dict[str, str] = {}      # run name -> mlflow run id
        self.g_exp: dict[str, str] = {}
        self.m_exp: dict[str, str] = {}

    # -- building ----------------------------------------------------------------------------------
    def build(self) -> Twin:
        from tests.conftest import make_repo

        make_repo(self.repo)
        self._build_gitexp()
        self._build_mlflow()
        return self

    def gitexp_client(self):
        import gitexp

        return gitexp.Client(str(self.repo))

    def mlflow_client(self):
        from mlflow import MlflowClient

        return MlflowClient(self.db_uri)

    def _build_gitexp(self) -> None:
        from gitexp.entities import Metric, Param

        client = self.gitexp_client()
        for name, tags in EXPERIMENTS.items():
            self.g_exp[name] = client.create_experiment(name, tags=tags)
            time.sleep(0.003)  # distinct creation times, as in the MLflow store
        for spec in SPECS:
            run = client.create_run(self.g_exp[spec.experiment], start_time=spec.start_time,
                                    tags={"mlflow.user": spec.user, **spec.tags}, run_name=spec.name)
            run_id = run.info.run_id
            self.g_ids[spec.name] = run_id
            client.log_batch(run_id, metrics=[Metric(k, v, ts, step) for k, v, ts, step in spec.metrics],
                             params=[Param(k, v) for k, v in spec.params.items()])
            if spec.datasets:
                client._store.log_inputs(run_id, [
                    ({"name": n, "digest": d, "source_type": "local", "source": f"/data/{n}"},
                     {"mlflow.data.context": c}) for n, d, c in spec.datasets])
            if spec.status == "RUNNING":
                client.flush(run_id)
            else:
                client.set_terminated(run_id, spec.status, end_time=spec.end_time)
            if spec.deleted:
                client.delete_run(run_id)
        client.delete_experiment(self.g_exp["conf-gone"])
        client.flush()

    def _build_mlflow(self) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param

        client = self.mlflow_client()
        for name, tags in EXPERIMENTS.items():
            self.m_exp[name] = client.create_experiment(name, artifact_location=str(self.root / "artifacts" / name),
                                                        tags=tags)
            time.sleep(0.003)
        for spec in SPECS:
            run = client.create_run(self.m_exp[spec.experiment], start_time=spec.start_time,
                                    tags={"mlflow.user": spec.user, **spec.tags}, run_name=spec.name)
            run_id = run.info.run_id
            self.m_ids[spec.name] = run_id
            client.log_batch(run_id, metrics=[Metric(k, v, ts, step) for k, v, ts, step in spec.metrics],
                             params=[Param(k, v) for k, v in spec.params.items()])
            if spec.datasets:
                client.log_inputs(run_id, [
                    DatasetInput(Dataset(n, d, "local", f"/data/{n}"), [InputTag("mlflow.data.context", c)])
                    for n, d, c in spec.datasets])
            if spec.status != "RUNNING":
                client.set_terminated(run_id, spec.status, end_time=spec.end_time)
            if spec.deleted:
                client.delete_run(run_id)
        client.delete_experiment(self.m_exp["conf-gone"])

    # -- querying -------------------------------------------------------------------------------------
    def render(self, text: str, side: str) -> str:
        """Replace {id:<run name>} with that run's id in one store."""
        ids = self.g_ids if side == "g" else self.m_ids
        return re.sub(r"\{id:([\w-]+)\}", lambda m: ids[m.group(1)], text)

    def names(self, runs: list, side: str) -> list[str]:
        by_id = {v: k for k, v in (self.g_ids if side == "g" else self.m_ids).items()}
        return [by_id[r.info.run_id] for r in runs]

    def both(self, filter_string: str = "", order_by: list[str] | None = None, view: int = 1,
             experiments: tuple[str, ...] = RUN_EXPERIMENTS, max_results: int = 1000,
             page_token: Any = (None, None)) -> tuple[Any, Any]:
        """(gitexp outcome, mlflow outcome): a list of run names, or the exception class name."""
        g = self._one("g", filter_string, order_by, view, experiments, max_results, page_token[0])
        m = self._one("m", filter_string, order_by, view, experiments, max_results, page_token[1])
        return g, m

    def _one(self, side, filter_string, order_by, view, experiments, max_results, token):
        client = self.gitexp_client() if side == "g" else self.mlflow_client()
        exp_ids = [(self.g_exp if side == "g" else self.m_exp)[e] for e in experiments]
        try:
            page = client.search_runs(exp_ids, self.render(filter_string, side), view, max_results, order_by, token)
        except Exception as exc:  # any failure: the outcome is compared, whatever it is
            return type(exc).__name__
        return self.names(page, side)

    def page(self, side, filter_string, order_by, max_results, token):
        client = self.gitexp_client() if side == "g" else self.mlflow_client()
        exp_ids = [(self.g_exp if side == "g" else self.m_exp)[e] for e in RUN_EXPERIMENTS]
        page = client.search_runs(exp_ids, self.render(filter_string, side), 3, max_results, order_by, token)
        return self.names(page, side), page.token
