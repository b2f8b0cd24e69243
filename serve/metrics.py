"""The gateway's metrics, recorded in two places that answer different questions.

- Ray's metrics system (`ray.util.metrics`): every node's metrics export, which Prometheus
  scrapes per node, so sums over gateway replicas are right. Use it for dashboards.
- This replica's own registry, served at `/metrics` with a `replica` label on every series:
  Serve's proxy picks the replica that answers, so one scrape of `/metrics` is one replica's
  view and says which (two scrapes may come from two replicas: never sum them).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# latency buckets from 10 ms (a streaming chunk) to 30 s (a long upload on a slow model)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Metric:
    """One metric in both systems. `kind` is "counter", "gauge" or "histogram"; `labels`
    are its own labels (the local copy adds `replica`)."""

    def __init__(
        self,
        kind: str,
        name: str,
        doc: str,
        labels: tuple[str, ...],
        replica: str,
        registry: CollectorRegistry,
        cluster: bool,
    ):
        from ray.util import metrics as ray_metrics

        local = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[kind]
        extra = {"buckets": LATENCY_BUCKETS} if kind == "histogram" else {}
        self.local = local(name, doc, [*labels, "replica"], registry=registry, **extra)
        self.cluster = None
        if cluster:
            remote = {
                "counter": ray_metrics.Counter,
                "gauge": ray_metrics.Gauge,
                "histogram": ray_metrics.Histogram,
            }[kind]
            extra = {"boundaries": list(LATENCY_BUCKETS)} if kind == "histogram" else {}
            self.cluster = remote(name, doc, tag_keys=(*labels, "replica"), **extra)
        self.kind, self.labels, self.replica = kind, labels, replica

    def record(self, value: float, *label_values: str) -> None:
        """Add `value` (counter), set the gauge to it, or observe it (histogram)."""
        method = {"counter": "inc", "gauge": "set", "histogram": "observe"}[self.kind]
        values = (*label_values, self.replica)
        getattr(self.local.labels(*values), method)(value)
        if self.cluster is not None and not (self.kind == "counter" and value == 0):
            # Ray's metrics have the same three methods, with tags (a counter refuses 0)
            tags = dict(zip((*self.labels, "replica"), values, strict=True))
            getattr(self.cluster, method)(value, tags)


class GatewayMetrics:
    """What one gateway replica counts. `cluster`: also record in Ray's metrics system
    (needs a Ray worker, which a Serve replica is)."""

    def __init__(self, replica: str, cluster: bool = True) -> None:
        self.replica = replica
        self.registry = CollectorRegistry()

        def metric(kind: str, name: str, doc: str, *labels: str) -> _Metric:
            return _Metric(kind, name, doc, labels, replica, self.registry, cluster)

        self.requests = metric(
            "counter",
            "audiodistill_requests",
            "HTTP requests and streams by route and status",
            "route",
            "status",
        )
        self.errors = metric(
            "counter",
            "audiodistill_errors",
            "Failed requests and streams by route and reason",
            "route",
            "reason",
        )
        self.audio_seconds = metric(
            "counter",
            "audiodistill_audio_seconds",
            "Audio received, in seconds",
            "model",
            "route",
        )
        self.latency = metric(
            "histogram",
            "audiodistill_request_latency_seconds",
            "HTTP transcription time, request received to response ready",
            "model",
        )
        self.final_latency = metric(
            "histogram",
            "audiodistill_final_latency_seconds",
            "Streams: time from a segment's closing audio arriving to its final event",
            "model",
        )
        self.active_streams = metric(
            "gauge", "audiodistill_active_streams", "WebSocket streams open now"
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
