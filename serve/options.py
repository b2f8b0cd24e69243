"""Options of `audiodistill serve` (configs/serve/*.yaml). Light: the CLI imports this."""

from __future__ import annotations

from dataclasses import dataclass, field

from audiodistill.online.streams import OnlineOptions


@dataclass(frozen=True)
class DeploymentOptions:
    """How each model's Serve deployment runs; the same for every model served."""

    # replicas when autoscaling is off
    replicas: int = 1
    # CPUs Ray reserves per replica; a scheduling hint, not a limit (threads is the limit).
    # 0.5 lets two models and the gateway share a 2-core machine; on a cluster, match threads
    num_cpus: float = 0.5
    # GPUs per replica (0: CPU inference)
    num_gpus: float = 0.0
    # torch / CTranslate2 threads per replica
    threads: int = 1
    # let Serve add and remove replicas between min_replicas and max_replicas
    autoscale: bool = False
    min_replicas: int = 1
    max_replicas: int = 4
    # autoscaling aims at this many requests in flight per replica
    target_ongoing_requests: float = 8.0
    # requests (whole clips, or one chunk of each of many streams) run as one batch, up to
    max_batch_size: int = 32
    # a batch waits at most this long for more requests; a chunk is 160-640 ms of audio, so
    # a few ms of waiting costs little latency and lets concurrent streams share a forward
    batch_wait_ms: float = 5.0
    # streaming students: chunk size for serving (None: the model's own default)
    chunk_ms: int | None = None

    def __post_init__(self) -> None:
        if self.replicas < 1 or self.min_replicas < 0 or self.max_replicas < self.min_replicas:
            raise ValueError("need replicas >= 1 and 0 <= min_replicas <= max_replicas")
        if self.max_batch_size < 1 or self.batch_wait_ms < 0 or self.threads < 1:
            raise ValueError("need max_batch_size >= 1, batch_wait_ms >= 0, threads >= 1")


@dataclass(frozen=True)
class LimitOptions:
    """What one client may ask of the server."""

    # largest upload to /v1/audio/transcriptions (OpenAI's own limit is 25 MB); checked
    # against Content-Length before the body is read, and counted as it arrives
    max_upload_mb: float = 25.0
    # longest audio an upload may hold, refused with 413 from the file's header before it
    # is decoded (small compressed files can hold hours: 1 h of silence is 180 KB of FLAC)
    max_audio_seconds: float = 7200.0
    # segments of one upload with a model at a time: a long file then waits its turn
    # between other requests' batches instead of filling them (its segments are <= 25 s)
    segments_in_flight: int = 2
    # HTTP requests in progress per gateway replica, beside its streams; Serve queues more
    max_http_requests: int = 100
    # longest audio one stream may send
    max_stream_seconds: float = 3600.0
    # largest single binary frame on a stream (1 MiB is 32 s of 16 kHz int16)
    max_frame_bytes: int = 1 << 20
    # flow-control window: audio a stream may send past the server's last `ack`. Serve's
    # proxy reads a WebSocket eagerly, so TCP cannot slow a fast sender; this bounds what one
    # stream queues in the gateway (20 s is 1.3 MB as float32) while a client that waits for
    # acks is served as fast as the model runs
    window_s: float = 20.0
    # a stream with no message for this long is closed
    idle_timeout_s: float = 30.0
    # an event the client does not read within this long closes its stream
    send_timeout_s: float = 10.0
    # concurrent streams per gateway replica; more are refused with an error event and close
    # code 1013 (the replica admits max_streams + max_http_requests connections in all)
    max_streams: int = 200

    def __post_init__(self):
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"limits.{name} must be positive, got {value}")


@dataclass(frozen=True)
class ServeOptions:
    # models to serve: exported student dirs, CTranslate2 / transformers Whisper dirs, or
    # "teacher:ct2" / "teacher:hf" (the bundled tiny.en); the first is the default model
    models: tuple[str, ...] = ("teacher:ct2",)
    # address the HTTP / WebSocket proxy listens on
    host: str = "127.0.0.1"
    port: int = 8000
    # Serve application name and route prefix
    name: str = "audiodistill"
    # API key clients must send as "Authorization: Bearer KEY" (None: open; the
    # AUDIODISTILL_API_KEY environment variable sets it too)
    api_key: str | None = None
    deployment: DeploymentOptions = field(default_factory=DeploymentOptions)
    # CPUs Ray reserves for each gateway replica (HTTP, WebSocket sessions, VAD, features,
    # and the streaming students' chunk steps, which run in the gateway)
    gateway_cpus: float = 0.5
    # gateway replicas; each keeps its own streams and metrics (add them to serve more streams)
    gateway_replicas: int = 1
    limits: LimitOptions = field(default_factory=LimitOptions)
    # endpointing and the LocalAgreement policy for live streams
    online: OnlineOptions = field(default_factory=OnlineOptions)
    # keep serving until interrupted (False: deploy, print the address and return)
    blocking: bool = True
