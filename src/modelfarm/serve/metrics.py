"""Prometheus metrics, one registry per app (no module-level state)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelfarm.models.pool import Pool

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _PoolCollector(Collector):
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        queue = GaugeMetricFamily("modelfarm_queue_depth", "Requests waiting for a model", labels=["model"])
        running = GaugeMetricFamily("modelfarm_running", "Requests being served", labels=["model"])
        loaded = GaugeMetricFamily("modelfarm_model_loaded", "1 if the model is loaded", labels=["model"])
        memory = GaugeMetricFamily("modelfarm_model_memory_bytes", "Memory of loaded models", labels=["model"])
        for s in self.pool.status():
            queue.add_metric([s.name], s.waiting)
            running.add_metric([s.name], s.running)
            loaded.add_metric([s.name], int(s.loaded))
            memory.add_metric([s.name], s.memory_bytes)
        yield from (queue, running, loaded, memory)


class Metrics:
    def __init__(self, pool: Pool) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "modelfarm_requests", "Requests answered", ["model", "endpoint", "status"], registry=self.registry
        )
        self.tokens = Counter("modelfarm_tokens", "Tokens processed", ["model", "kind"], registry=self.registry)
        self.latency = Histogram(
            "modelfarm_request_latency_seconds",
            "Request latency",
            ["model"],
            buckets=_LATENCY,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "modelfarm_time_to_first_token_seconds",
            "Time to first token",
            ["model"],
            buckets=_LATENCY,
            registry=self.registry,
        )
        self.registry.register(_PoolCollector(pool))

    def observe(
        self,
        model: str,
        endpoint: str,
        status: int,
        tokens_in: int,
        tokens_out: int,
        latency_s: float | None,
        ttft_s: float | None,
    ) -> None:
        self.requests.labels(model, endpoint, str(status)).inc()
        if tokens_in:
            self.tokens.labels(model, "prompt").inc(tokens_in)
        if tokens_out:
            self.tokens.labels(model, "completion").inc(tokens_out)
        if latency_s is not None:
            self.latency.labels(model).observe(latency_s)
        if ttft_s is not None:
            self.ttft.labels(model).observe(ttft_s)
