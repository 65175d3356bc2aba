"""What the examples share: command-line options, the repository to track into, synthetic taxi trips.

Each example adds this directory to sys.path and imports from here, so every
example still runs with one command: ``python examples/<name>/<script>.py``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import gitexp


def setup(description: str) -> argparse.Namespace:
    """Parse --small/--repo, and point gitexp at the repository to track into."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--small", action="store_true",
                        default=os.environ.get("GITEXP_EXAMPLES_SMALL", "") not in ("", "0"),
                        help="a quick run on less data (also: GITEXP_EXAMPLES_SMALL=1)")
    parser.add_argument("--repo", default=None, metavar="PATH",
                        help="git repository to track into (default: the one around the current directory); "
                             "a path that does not exist yet is created with `git init`")
    args = parser.parse_args()
    repo = Path(args.repo or os.getcwd()).resolve()
    if args.repo and not repo.exists():
        repo.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
    inside = subprocess.run(["git", "-C", str(repo), "rev-parse", "--git-dir"], capture_output=True)
    if inside.returncode != 0:
        sys.exit(f"{repo} is not inside a git repository. gitexp keeps runs in one: run this example inside "
                 "a repository (git init demo && cd demo), or pass --repo PATH (created if missing).")
    gitexp.set_tracking_uri(str(repo))
    return args


def synthetic_trips(month: int, n: int, seed: int = 0):
    """NYC-green-taxi-like trips of 2021-<month>: zones, distance, pickup/dropoff times (duration in minutes).

    Duration grows with distance, depends on the pickup/dropoff zone pair (some pairs are
    congested) and on the hour, plus noise -- enough structure for Lasso to do
    a little and boosted trees a lot better.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed + month)
    zones = np.arange(1, 41)
    pickup = rng.choice(zones, n)
    dropoff = np.where(rng.random(n) < 0.3, pickup, rng.choice(zones, n))
    distance = np.round(np.abs(pickup - dropoff) * 0.35 + rng.gamma(2.0, 0.9, n), 2)
    start = pd.Timestamp(f"2021-{month:02d}-01")
    pickup_time = start + pd.to_timedelta(rng.integers(0, 28 * 24 * 60, n), unit="min")
    hour = pickup_time.hour.to_numpy()
    rush = ((hour >= 7) & (hour <= 9)) | ((hour >= 16) & (hour <= 19))
    congestion = 1.0 + 0.6 * (((pickup * 7 + dropoff * 3) % 11) == 0) + 0.35 * rush
    # Short trips crawl through the centre, long ones use faster roads: minutes grow like distance^0.6.
    minutes = 2.0 + 7.0 * distance ** 0.6 * congestion + rng.normal(0, 1.5, n)
    df = pd.DataFrame({
        "PULocationID": pickup, "DOLocationID": dropoff, "trip_distance": distance,
        "lpep_pickup_datetime": pickup_time,
        "lpep_dropoff_datetime": pickup_time + pd.to_timedelta(np.clip(minutes, 0.2, 120), unit="min"),
    })
    return df


def read_dataframe(df):
    """The tutorial's read_dataframe, on a synthetic month: duration in minutes, 1..60, zones as strings."""
    df = df.copy()
    df["duration"] = (df.lpep_dropoff_datetime - df.lpep_pickup_datetime).dt.total_seconds() / 60
    df = df[(df.duration >= 1) & (df.duration <= 60)].copy()
    categorical = ["PULocationID", "DOLocationID"]
    df[categorical] = df[categorical].astype(str)
    df["PU_DO"] = df["PULocationID"] + "_" + df["DOLocationID"]
    return df


def trip_dicts(df):
    return df[["PU_DO", "trip_distance"]].to_dict(orient="records")


def with_int32_indices(X):
    """Sparse matrices as Lasso accepts them.

    DictVectorizer (scikit-learn 1.9 with SciPy 1.17) makes int64 index arrays, which the
    coordinate-descent models (Lasso) refuse; the data is unchanged.
    """
    import numpy as np

    X = X.tocsr(copy=True)
    if X.indices.dtype != np.int32 and X.nnz < 2**31 and X.shape[1] < 2**31:
        X.indices = X.indices.astype(np.int32)
        X.indptr = X.indptr.astype(np.int32)
    return X
