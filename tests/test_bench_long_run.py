"""benchmarks/bench_long_run.py --quick runs end to end and prints its tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import require_mlflow

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_long_run.py"


def test_bench_long_run_quick(tmp_path):
    out = tmp_path / "long.json"
    require_mlflow()  # the benchmark's MLflow side runs too
    cmd = [sys.executable, str(BENCH), "--quick", "--json", str(out)]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    assert "#### gitexp, 30,000 points" in text
    for figure in ("per point", ".git growth", "peak RSS", "first checkpoint", "last checkpoint",
                   "commits on the branch made by the run", "log_metric per call", "get_metric_history",
                   "end_run"):
        assert figure in text, figure
    assert ("| every point read back exactly (count, step, value incl. NaN/±inf, timestamp) | 1/1 repeats"
            " | all | PASS |") in text
    assert "PASS" in text or "FAIL" in text
    assert "#### gitexp vs MLflow" in text
    assert "| MLflow / gitexp |" in text
    data = json.loads(out.read_text())
    row = data["scales"]["30000"]["gitexp"][0]
    assert row["verified"] is True
    assert row["checkpoints"] == 12
    assert row["checkpoint_fn"] in ("checkpoint", "flush")
