"""`gitexp runs list` (filter, order, columns, as-of) and `gitexp runs export`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import gitexp
from gitexp.cli import main
from gitexp.entities import Metric, Param


@pytest.fixture
def runs(repo):
    client = gitexp.Client()
    exp = client.create_experiment("nyc-taxi")
    other = client.create_experiment("other")
    ids = {}
    for i, (model, rmse) in enumerate([("xgboost", 6.5), ("sklearn", 7.5), ("xgboost", 5.0), ("lgbm", float("inf"))]):
        run = client.create_run(exp, start_time=1_700_000_000_000 + i * 1000, run_name=f"taxi-{i}",
                                tags={"model": model})
        client.log_batch(run.info.run_id, metrics=[Metric("rmse", rmse, 1, 0)],
                         params=[Param("max_depth", str(3 + i))])
        client.set_terminated(run.info.run_id, end_time=1_700_000_100_000)
        ids[f"taxi-{i}"] = run.info.run_id
    run = client.create_run(other, run_name="elsewhere")
    client.set_terminated(run.info.run_id)
    client.flush()
    return ids


def invoke(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_list_filter_order_max_columns(runs):
    result = invoke("runs", "list", "-e", "nyc-taxi", "--filter", "tags.model = 'xgboost'",
                    "--order-by", "metrics.rmse ASC", "--max", "5", "-c", "run_id,name,metrics.rmse,params.max_depth",
                    "-f", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["name"], r["metrics.rmse"], r["params.max_depth"]) for r in rows] == \
        [("taxi-2", 5.0, "5"), ("taxi-0", 6.5, "3")]
    assert rows[0]["run_id"] == runs["taxi-2"]


def test_list_repeated_order_by_and_all_experiments(runs):
    result = invoke("runs", "list", "--all-experiments", "--order-by", "params.max_depth DESC",
                    "--order-by", "run_name", "-c", "name", "-f", "csv")
    assert result.output.splitlines() == ["name", "taxi-3", "taxi-2", "taxi-1", "taxi-0", "elsewhere"]
    result = invoke("runs", "list", "--max", "2", "-c", "name", "-f", "csv")
    assert result.output.splitlines() == ["name", "elsewhere", "taxi-3"]


def test_list_as_of(runs, repo):
    client = gitexp.Client()
    client.delete_run(runs["taxi-0"])
    client.flush()
    now = invoke("runs", "list", "-e", "nyc-taxi", "-c", "name", "-f", "csv")
    then = invoke("runs", "list", "-e", "nyc-taxi", "-c", "name", "-f", "csv", "--as-of", "gitexp~1")
    assert "taxi-0" not in now.output and "taxi-0" in then.output


def test_list_errors_are_one_clear_message(runs):
    result = CliRunner().invoke(main, ["runs", "list", "--filter", "metrics.rmse < 'x'"])
    assert result.exit_code == 1
    assert "metrics.rmse is compared with numbers" in result.output and "^^^" in result.output
    result = CliRunner().invoke(main, ["runs", "list", "-c", "run_id,bogus"])
    assert result.exit_code == 2 and "unknown column 'bogus'" in result.output
    result = CliRunner().invoke(main, ["runs", "list", "--as-of", "no-such-thing"])
    assert result.exit_code == 1 and "as_of" in result.output


def test_export_csv_json_parquet(runs, tmp_path):
    import pandas as pd

    csv_file = tmp_path / "runs.csv"
    result = invoke("runs", "export", "-e", "nyc-taxi", "--order-by", "metrics.rmse", "-o", str(csv_file))
    assert result.exit_code == 0
    table = pd.read_csv(csv_file)
    assert list(table["tags.mlflow.runName"]) == ["taxi-2", "taxi-0", "taxi-1", "taxi-3"]
    assert list(table.columns[:6]) == ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    assert table["start_time"][0] == "2023-11-14T22:13:22.000000Z"

    result = invoke("runs", "export", "-e", "nyc-taxi", "-f", "json", "--filter", "metrics.rmse > 7",
                    "-c", "run_id,start_time,metrics.rmse,params.max_depth,tags.absent")
    records = json.loads(result.output)
    assert records == [
        {"run_id": runs["taxi-3"], "start_time": "2023-11-14T22:13:23.000Z", "metrics.rmse": "Infinity",
         "params.max_depth": "6", "tags.absent": None},
        {"run_id": runs["taxi-1"], "start_time": "2023-11-14T22:13:21.000Z", "metrics.rmse": 7.5,
         "params.max_depth": "4", "tags.absent": None},
    ]

    parquet = tmp_path / "runs.parquet"
    result = invoke("runs", "export", "--all-experiments", "-f", "parquet", "-o", str(parquet))
    assert result.exit_code == 0 and "Wrote 5 runs" in result.output
    frame = pd.read_parquet(parquet)
    expected = gitexp.Client().search_runs_frame(
        [e.experiment_id for e in gitexp.search_experiments(view_type=3)])
    assert list(frame.columns) == list(expected.columns)
    assert list(frame["run_id"]) == list(expected["run_id"])
    assert str(frame["start_time"].dtype).endswith("UTC]")


def test_export_errors(runs):
    result = CliRunner().invoke(main, ["runs", "export", "-f", "parquet"])
    assert result.exit_code == 2 and "-o FILE" in result.output
    result = CliRunner().invoke(main, ["runs", "export", "-c", "run_id,nonsense"])
    assert result.exit_code == 2 and "nonsense" in result.output


@pytest.mark.parametrize("command", [["runs", "list"], ["runs", "export"]])
def test_help_has_examples(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "--filter" in result.output and "--as-of" in result.output
