"""Metric histories for charts: x axes, smoothing and downsampling on the server.

A chart never receives more than about `points` points, whatever the history
holds: the visible x range is cut into buckets and each bucket keeps its first,
minimum, maximum and last point (an M4-style reduction), so spikes and the
overall envelope survive, lines connect in order, and a zoom re-fetches the
new range at full detail.  Smoothing is the exponential moving average with
TensorBoard's debiasing (what MLflow's slider does), computed on the full
series before downsampling so zoom levels agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

X_AXES = ("step", "time", "relative")
DEFAULT_POINTS = 2000
MAX_POINTS = 20000


@dataclass
class Series:
    """A chart's data: x, y (and smoothed y), with how much was left out."""

    x: list[Any]
    y: list[Any]
    smoothed: list[Any] | None
    total: int          # points in the history
    in_range: int       # points inside the requested x range
    x_min: float | None  # the whole history's x extent (for "reset zoom")
    x_max: float | None

    @property
    def downsampled(self) -> bool:
        return len(self.x) < self.in_range

    def to_json(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "smoothed": self.smoothed, "total": self.total,
                "in_range": self.in_range, "shown": len(self.x), "downsampled": self.downsampled,
                "x_min": self.x_min, "x_max": self.x_max}


def axis_values(steps: np.ndarray, timestamps: np.ndarray, x_axis: str) -> np.ndarray:
    if x_axis == "step":
        return steps.astype("float64")
    if x_axis == "time":
        return timestamps.astype("float64")  # ms since the epoch; the browser shows dates
    if x_axis == "relative":
        return (timestamps - (timestamps.min() if len(timestamps) else 0)).astype("float64") / 1000.0
    raise ValueError(f"Unknown x axis {x_axis!r}; use one of {', '.join(X_AXES)}")


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average; NaN and infinite points are passed through unsmoothed."""
    out: np.ndarray = values.copy()
    finite = np.isfinite(values)
    v = values[finite]
    if not len(v):
        return out
    try:  # one C loop when scipy is there (it comes with scikit-learn)
        from scipy.signal import lfilter

        last = lfilter([1 - weight], [1, -weight], v)
    except ImportError:
        last = np.empty_like(v)
        acc = 0.0
        for i, x in enumerate(v.tolist()):
            acc = acc * weight + (1 - weight) * x
            last[i] = acc
    out[finite] = last / (1 - weight ** np.arange(1, len(v) + 1))
    return out


def select_points(x: np.ndarray, y: np.ndarray, points: int) -> np.ndarray:
    """Indices (sorted) of at most ~`points` points that keep each bucket's first, min, max and last."""
    n = len(x)
    if n <= points:
        return np.arange(n)
    buckets = max(1, points // 4)
    lo, hi = float(x[0]), float(x[-1])
    if hi <= lo:
        edges = np.linspace(0, n, buckets + 1).astype(int)  # all x equal: cut by position
    else:
        edges = np.searchsorted(x, np.linspace(lo, hi, buckets + 1), side="left")
        edges[-1] = n
    starts = np.unique(edges[:-1][edges[:-1] < n])
    ends = np.append(starts[1:], n)
    finite = np.isfinite(y)
    y_low = np.where(finite, y, np.inf)
    y_high = np.where(finite, y, -np.inf)
    keep = [starts, ends - 1]
    # The first minimum and maximum of each bucket in linear time (reduceat, no sort).
    counts = ends - starts
    bucket_of = np.repeat(np.arange(len(starts)), counts)
    for reduced, side in ((np.minimum.reduceat(y_low, starts), y_low), (np.maximum.reduceat(y_high, starts), y_high)):
        hits = np.flatnonzero(side == np.repeat(reduced, counts))
        first = np.unique(bucket_of[hits], return_index=True)[1]
        keep.append(hits[first])
    keep.append(np.flatnonzero(~finite)[: points // 4])  # gaps stay visible (capped)
    return np.unique(np.concatenate(keep))


def _clean(values: np.ndarray) -> list[Any]:
    """JSON-safe floats: NaN and infinities become None (a gap in the line)."""
    return [v if math.isfinite(v) else None for v in values.tolist()]


def history_arrays(history: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, timestamps, values) of Metric entities, as arrays (in the history's step order)."""
    n = len(history)
    steps = np.fromiter((m.step for m in history), dtype="int64", count=n)
    stamps = np.fromiter((m.timestamp for m in history), dtype="int64", count=n)
    values = np.fromiter((m.value for m in history), dtype="float64", count=n)
    return steps, stamps, values


def build_series(arrays: tuple[np.ndarray, np.ndarray, np.ndarray], x_axis: str = "step",
                 x_range: tuple[float | None, float | None] = (None, None),
                 points: int = DEFAULT_POINTS, smoothing: float = 0.0) -> Series:
    """Chart data for an x axis, a visible x range and a point budget."""
    if x_axis not in X_AXES:
        raise ValueError(f"Unknown x axis {x_axis!r}; use one of {', '.join(X_AXES)}")
    steps, stamps, y = arrays
    n = len(y)
    x = axis_values(steps, stamps, x_axis)
    if x_axis != "step":  # time axes: order by time (steps may be logged out of order in time)
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
    smoothed = ema(y, smoothing) if smoothing > 0 else None
    x_min = float(x[0]) if n else None
    x_max = float(x[-1]) if n else None
    lo, hi = x_range
    start = int(np.searchsorted(x, lo, side="left")) if lo is not None else 0
    end = int(np.searchsorted(x, hi, side="right")) if hi is not None else n
    # One point beyond each edge, so the line runs to the border of a zoomed view.
    start, end = max(0, start - 1), min(n, end + 1)
    xs, ys = x[start:end], y[start:end]
    idx = select_points(xs, ys, points)
    return Series(_clean(xs[idx]), _clean(ys[idx]),
                  _clean(smoothed[start:end][idx]) if smoothed is not None else None,
                  n, end - start, x_min, x_max)
