"""Prometheus metrics of the API (a registry per application, so tests stay independent)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class ApiMetrics:
    """Request counters and latency histograms."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "aggregator_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "aggregator_http_request_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.runs = Counter(
            "aggregator_api_runs",
            "Runs triggered through the API by final status.",
            ["status"],
            registry=self.registry,
        )
        self.logins = Counter(
            "aggregator_logins",
            "Login attempts by outcome.",
            ["outcome"],
            registry=self.registry,
        )
