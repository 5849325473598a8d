"""Prometheus metrics of one model server, in its own registry.

Its own `CollectorRegistry` (not the process-global one) so that two servers in one
process, as in tests, never clash over metric names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class ServingMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("nocodetune_requests", "HTTP requests answered, by endpoint and status code.", ["endpoint", "status"], registry=self.registry)
        self.prompt_tokens = Counter("nocodetune_prompt_tokens", "Prompt tokens prefilled.", registry=self.registry)
        self.generated_tokens = Counter("nocodetune_generation_tokens", "Tokens generated.", registry=self.registry)
        self.latency = Histogram(
            "nocodetune_request_latency_seconds", "Time from request to last token.", ["endpoint"], buckets=_LATENCY_BUCKETS, registry=self.registry
        )
        self.ttft = Histogram(
            "nocodetune_time_to_first_token_seconds", "Time from request to its first generated token.", buckets=_LATENCY_BUCKETS, registry=self.registry
        )
        self.queue_depth = Gauge("nocodetune_queue_depth", "Requests waiting for a batch slot.", registry=self.registry)
        self.active = Gauge("nocodetune_active_sequences", "Sequences in the running batch.", registry=self.registry)
        self.batch_size = Histogram(
            "nocodetune_batch_size", "Sequences stepped together per decode step.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry
        )

    # -- hooks called by GenerationEngine (scheduler thread) --------------------------
    def observe_first_token(self, seconds: float) -> None:
        self.ttft.observe(seconds)

    def add_generated_tokens(self, n: int) -> None:
        self.generated_tokens.inc(n)

    def add_prompt_tokens(self, n: int) -> None:
        self.prompt_tokens.inc(n)

    def observe_batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def set_queue(self, waiting: int, active: int) -> None:
        self.queue_depth.set(waiting)
        self.active.set(active)

    # -- hooks called by the app -----------------------------------------------------
    def count_request(self, endpoint: str, status: int) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()

    def observe_latency(self, endpoint: str, seconds: float) -> None:
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
