"""Chart data: downsampling keeps the shape of 100,000 points in ~2,000, zoom gets full detail."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gitexp.entities import Metric
from gitexp.ui.series import build_series, ema, history_arrays, select_points


def arrays(values, start_ts=1_700_000_000_000, dt=10):
    n = len(values)
    return (np.arange(n, dtype="int64"), start_ts + np.arange(n, dtype="int64") * dt,
            np.asarray(values, dtype="float64"))


def test_100k_points_become_at_most_the_budget_and_keep_extremes_and_ends():
    rng = np.random.default_rng(1)
    values = rng.normal(size=100_000)
    values[12_345] = 50.0     # a spike a naive stride would miss
    values[77_777] = -40.0
    series = build_series(arrays(values), points=2000)
    assert series.total == 100_000 and series.in_range == 100_000
    assert len(series.x) <= 2000 + 4 and series.downsampled
    assert max(series.y) == 50.0 and min(series.y) == -40.0
    assert series.x[0] == 0 and series.x[-1] == 99_999
    assert series.x == sorted(series.x)


def test_select_points_takes_first_min_max_last_of_each_bucket():
    x = np.arange(12, dtype="float64")
    y = np.array([5, 1, 9, 5, 5, 0, 5, 5, 7, 5, 5, 5], dtype="float64")
    idx = select_points(x, y, 12)          # fits: everything
    assert list(idx) == list(range(12))
    idx = select_points(x, y, 8)           # two buckets of six
    assert idx.tolist() == [0, 2, 5, 6, 8, 11]  # bucket 1: first, max 9, min 0 (= last); bucket 2: first, max 7, last


def test_zoom_returns_the_range_at_full_detail_plus_one_point_each_side():
    series = build_series(arrays(np.sin(np.arange(100_000) / 100)), x_range=(50_000, 50_999), points=2000)
    assert series.in_range == 1002 and not series.downsampled
    assert series.x[0] == 49_999 and series.x[-1] == 51_000
    assert series.x_min == 0 and series.x_max == 99_999  # the whole history, to reset the zoom


def test_non_finite_values_become_gaps():
    series = build_series(arrays([1.0, math.nan, math.inf, 2.0]), points=100)
    assert series.y == [1.0, None, None, 2.0]
    many = np.ones(10_000)
    many[5000] = math.nan
    assert None in build_series(arrays(many), points=200).y


def test_time_axes_order_points_by_time():
    steps = np.array([0, 1, 2], dtype="int64")
    stamps = np.array([3000, 1000, 2000], dtype="int64")   # steps logged out of time order
    values = np.array([0.0, 1.0, 2.0])
    series = build_series((steps, stamps, values), "time")
    assert series.x == [1000.0, 2000.0, 3000.0] and series.y == [1.0, 2.0, 0.0]
    relative = build_series((steps, stamps, values), "relative")
    assert relative.x == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="x axis"):
        build_series((steps, stamps, values), "epoch")


def test_smoothing_is_debiased_ema_computed_before_downsampling():
    values = np.array([1.0, 2.0, math.nan, 4.0])
    smoothed = ema(values, 0.5)
    # TensorBoard's debiased EMA: last = 0.5*last + 0.5*v, shown as last / (1 - 0.5**n)
    assert smoothed[0] == pytest.approx(1.0)
    assert smoothed[1] == pytest.approx((0.25 + 0.5 * 2) / 0.75)
    assert math.isnan(smoothed[2])
    last = 0.5 * (0.5 * 0.5 + 0.5 * 2) + 0.5 * 4
    assert smoothed[3] == pytest.approx(last / (1 - 0.5 ** 3))
    full = build_series(arrays(np.arange(10_000, dtype="float64")), points=100, smoothing=0.9)
    assert full.smoothed is not None and len(full.smoothed) == len(full.y)
    assert build_series(arrays([1.0, 2.0]), smoothing=0.0).smoothed is None


def test_history_arrays_from_metric_entities():
    history = [Metric("loss", 0.5, 1000, 0), Metric("loss", 0.25, 2000, 1)]
    steps, stamps, values = history_arrays(history)
    assert steps.tolist() == [0, 1] and stamps.tolist() == [1000, 2000] and values.tolist() == [0.5, 0.25]


def test_smoothing_without_scipy_gives_the_same_curve(monkeypatch):
    values = np.array([3.0, 1.0, math.inf, 4.0, 1.0, 5.0, math.nan, 9.0])
    with_scipy = ema(values, 0.7)
    monkeypatch.setitem(__import__("sys").modules, "scipy.signal", None)  # import now fails
    without = ema(values, 0.7)
    assert np.allclose(with_scipy, without, equal_nan=True)
    assert math.isinf(without[2]) and math.isnan(without[6])
