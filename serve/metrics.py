"""Prometheus metrics of one gateway replica, served at `/metrics`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# latency buckets from 10 ms (a streaming chunk) to 30 s (a long upload on a slow model)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "audiodistill_requests",
            "HTTP requests and streams by route and status",
            ["route", "status"],
            registry=r,
        )
        self.errors = Counter(
            "audiodistill_errors",
            "Failed requests and streams by route and reason",
            ["route", "reason"],
            registry=r,
        )
        self.audio_seconds = Counter(
            "audiodistill_audio_seconds",
            "Audio received, in seconds, by model and route",
            ["model", "route"],
            registry=r,
        )
        self.latency = Histogram(
            "audiodistill_request_latency_seconds",
            "HTTP transcription time, request received to response ready",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.final_latency = Histogram(
            "audiodistill_final_latency_seconds",
            "Streams: time from a segment's closing audio arriving to its final event",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.active_streams = Gauge(
            "audiodistill_active_streams", "WebSocket streams open now", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
