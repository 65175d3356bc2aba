"""System metrics, as MLflow logs them: CPU, memory, disk, network and NVIDIA GPUs of this machine.

``gitexp.start_run(log_system_metrics=True)`` (or ``gitexp.enable_system_metrics_logging()``, or
``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=true``) starts a :class:`SystemMetricsMonitor` for the run:
a daemon thread that takes a sample every ``sampling_interval`` seconds with psutil (and pynvml
when it is importable and finds a GPU) and, every ``samples_before_logging`` samples, logs the
averages through ``Client.log_batch`` -- the ordinary write path -- under MLflow's names
(``system/cpu_utilization_percentage``, ``system/<node id>/...`` with a node id), one step per
logging. ``end_run`` stops it before the run ends, so nothing is logged after.

This module is imported only when a run asks for system metrics; ``import gitexp`` never loads it
(nor psutil). The settings live in MLflow's environment variables, so child processes inherit them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from .entities import Metric
from .fluent import (
    disable_system_metrics_logging,
    enable_system_metrics_logging,
    set_system_metrics_node_id,
    set_system_metrics_samples_before_logging,
    set_system_metrics_sampling_interval,
)

if TYPE_CHECKING:
    from .client import Client

_log = logging.getLogger("gitexp.system_metrics")

PREFIX = "system/"
STOP_TIMEOUT = 5.0  # seconds end_run waits at most for a logging call in progress


def _env(name: str, kind: type, default: Any) -> Any:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return kind(value)
    except ValueError:
        _log.warning("gitexp: ignoring %s=%r (not a %s)", name, value, kind.__name__)
        return default


class _Sampler:
    """One sample of every metric, kept until the next logging (MLflow's monitors in one)."""

    def __init__(self, psutil: Any) -> None:
        self.psutil = psutil
        self.samples: dict[str, list[float]] = defaultdict(list)
        psutil.cpu_percent()  # the first call only starts psutil's clock (it returns 0.0)
        net = psutil.net_io_counters()
        self._net0 = (net.bytes_recv / 1e6, net.bytes_sent / 1e6) if net is not None else (0.0, 0.0)
        self.network: dict[str, float] = {}
        self.gpus = self._gpus()

    @staticmethod
    def _gpus() -> list[Any]:
        try:
            import pynvml  # type: ignore[import-not-found, unused-ignore]

            pynvml.nvmlInit()
            return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # no pynvml, no driver, no GPU: no GPU metrics (as MLflow)
            return []

    def sample(self) -> None:
        psutil, samples = self.psutil, self.samples
        samples["cpu_utilization_percentage"].append(psutil.cpu_percent())
        memory = psutil.virtual_memory()
        samples["system_memory_usage_megabytes"].append(memory.used / 1e6)
        samples["system_memory_usage_percentage"].append(memory.used / memory.total * 100)
        disk = psutil.disk_usage(os.sep)
        samples["disk_usage_percentage"].append(disk.percent)
        samples["disk_usage_megabytes"].append(disk.used / 1e6)
        samples["disk_available_megabytes"].append(disk.free / 1e6)
        net = psutil.net_io_counters()
        if net is not None:  # network: totals since the monitor started, not averaged (as MLflow)
            self.network = {"network_receive_megabytes": net.bytes_recv / 1e6 - self._net0[0],
                            "network_transmit_megabytes": net.bytes_sent / 1e6 - self._net0[1]}
        if self.gpus:
            self._sample_gpus()

    def _sample_gpus(self) -> None:
        import pynvml

        for i, handle in enumerate(self.gpus):
            try:
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                self.samples[f"gpu_{i}_memory_usage_percentage"].append(round(memory.used / memory.total * 100, 1))
                self.samples[f"gpu_{i}_memory_usage_megabytes"].append(memory.used / 1e6)
                self.samples[f"gpu_{i}_utilization_percentage"].append(
                    pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                power = pynvml.nvmlDeviceGetPowerUsage(handle)
                self.samples[f"gpu_{i}_power_usage_watts"].append(power / 1000)
                self.samples[f"gpu_{i}_power_usage_percentage"].append(
                    power / pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) * 100)
            except Exception as exc:
                _log.debug("gitexp: GPU %d metrics: %s", i, exc)

    def aggregate(self) -> dict[str, float]:
        out = {k: round(sum(v) / len(v), 1) for k, v in self.samples.items() if v}
        out.update(self.network)
        self.samples.clear()
        return out


class SystemMetricsMonitor:
    """Samples this machine and logs the averages to one run, on a daemon thread, until finish()."""

    def __init__(self, client: Client, run_id: str, sampling_interval: float = 10.0,
                 samples_before_logging: int = 1, resume_logging: bool = False,
                 node_id: str | None = None) -> None:
        # MLflow's environment variables win over the arguments (as in MLflow).
        self.sampling_interval = float(_env("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", float, None)
                                       or sampling_interval)
        self.samples_before_logging = max(1, int(_env("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", int, None)
                                                 or samples_before_logging))
        self.node_id = os.environ.get("MLFLOW_SYSTEM_METRICS_NODE_ID") or node_id
        self.prefix = PREFIX + (f"{self.node_id}/" if self.node_id else "")
        self.client = client
        self.run_id = run_id
        self._resume = resume_logging
        self.step = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()  # held while logging; finish() takes it to close the door
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gitexp-system-metrics", daemon=True)
        self._thread.start()

    def _next_step(self) -> int:
        """After a resume: one past the largest step of the run's system metrics (0 if none)."""
        steps = [m.step for m in self.client.get_run(self.run_id).data._metric_objs if m.key.startswith(PREFIX)]
        return max(steps) + 1 if steps else 0

    def _run(self) -> None:
        try:
            import psutil  # type: ignore[import-untyped, unused-ignore]

            if self._resume:
                self.step = self._next_step()
            sampler = _Sampler(psutil)
            while not self._stop.is_set():
                for _ in range(self.samples_before_logging):
                    sampler.sample()
                    if self._stop.wait(self.sampling_interval):
                        return  # the run ended: a partial batch is not logged (as MLflow)
                self._publish(sampler.aggregate())
        except Exception as exc:  # never into the user's code: one warning, and the run goes on
            _log.warning("gitexp: system metrics for run %s stopped: %s", self.run_id, exc)

    def _publish(self, values: dict[str, float]) -> None:
        with self._lock:
            if self._stopped:
                return
            timestamp = int(time.time() * 1000)
            self.client.log_batch(self.run_id, metrics=[Metric(self.prefix + k, v, timestamp, self.step)
                                                        for k, v in values.items()])
            self.step += 1

    def finish(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop: after this returns nothing more is logged (waits for a logging call in progress)."""
        self._stop.set()
        locked = self._lock.acquire(timeout=timeout)
        self._stopped = True
        if locked:
            self._lock.release()
        else:
            _log.warning("gitexp: system metrics of run %s did not stop within %.0f s", self.run_id, timeout)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=0.5)


__all__ = [
    "SystemMetricsMonitor",
    "disable_system_metrics_logging",
    "enable_system_metrics_logging",
    "set_system_metrics_node_id",
    "set_system_metrics_samples_before_logging",
    "set_system_metrics_sampling_interval",
]
