"""The wire protocol of `/v1/stream` (docs/protocol.md): messages, PCM decoding, close codes.

Client -> server: one JSON `config` message, then binary audio frames of any size, then
`{"type": "end"}`. Server -> client: `ready`, then `partial` / `final` / `ack` events, then
`done` (or `error` and a close with a reason).
"""

from __future__ import annotations

import json
import time
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audiodistill.data.audio import SAMPLE_RATE

# WebSocket close codes (RFC 6455, section 7.4.1) the server uses, with a reason string
CLOSE_NORMAL = 1000  # the stream ended and every event was sent
CLOSE_UNSUPPORTED = 1003  # audio before the config, or text where audio was expected
CLOSE_INVALID = 1007  # the config (or another JSON message) is malformed or out of range
CLOSE_POLICY = 1008  # unauthorized, a limit was exceeded, idle, or the client stopped reading
CLOSE_TOO_BIG = 1009  # one frame over max_frame_bytes
CLOSE_INTERNAL = 1011  # the server failed; the stream cannot go on
CLOSE_BUSY = 1013  # max_streams reached: try again later
MAX_REASON_BYTES = 123  # a close frame's reason must fit in 125 bytes with the code

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8_000, 192_000  # telephone band to studio rates
SAMPLE_TYPES = {"pcm_s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}


class ProtocolError(Exception):
    """A client mistake that ends the stream with `code` and `reason`."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


class StreamConfig(BaseModel):
    """The first message of a stream."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    type: Literal["config"]
    model: str | None = None  # a served model id; None: the first one served
    sample_rate: int = Field(SAMPLE_RATE, ge=MIN_SAMPLE_RATE, le=MAX_SAMPLE_RATE)
    encoding: Literal["pcm_s16le", "f32le"] = "pcm_s16le"  # little-endian mono samples
    language: str = "en"
    words: bool = False  # finals carry their words with times (docs/protocol.md)


def parse_config(message: dict) -> StreamConfig:
    """The config from the first received WebSocket message, or a ProtocolError."""
    if message.get("text") is None:
        raise ProtocolError(CLOSE_UNSUPPORTED, "first message must be the JSON config, not audio")
    try:
        return StreamConfig.model_validate(json.loads(message["text"]))
    except json.JSONDecodeError as err:
        raise ProtocolError(CLOSE_INVALID, f"config is not JSON: {err.msg}") from err
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "config"
        raise ProtocolError(CLOSE_INVALID, f"config.{field}: {first['msg']}") from err


def parse_control(text: str) -> str:
    """The type of a JSON control message after the config; only "end" is defined."""
    try:
        kind = json.loads(text).get("type")
    except (json.JSONDecodeError, AttributeError) as err:
        raise ProtocolError(CLOSE_INVALID, "text messages must be JSON objects") from err
    if kind != "end":
        raise ProtocolError(CLOSE_INVALID, f"unknown message type {kind!r} (expected 'end')")
    return kind


class PcmDecoder:
    """Binary frames of any size -> 16 kHz float32 samples, resampled as a continuous stream.

    A frame may split a sample; the odd bytes wait for the next frame.
    """

    def __init__(self, encoding: str, sample_rate: int):
        import soxr

        self._dtype = SAMPLE_TYPES[encoding]
        self._scale = 1 / 32768 if encoding == "pcm_s16le" else 1.0
        self._leftover = b""
        self._resampler = (
            soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32")
            if sample_rate != SAMPLE_RATE
            else None
        )

    def decode(self, data: bytes) -> np.ndarray:
        data = self._leftover + data
        usable = len(data) - len(data) % self._dtype.itemsize
        self._leftover = data[usable:]
        samples = np.frombuffer(data[:usable], dtype=self._dtype).astype(np.float32) * self._scale
        if not np.all(np.isfinite(samples)):
            raise ProtocolError(CLOSE_INVALID, "audio holds NaN or infinite samples")
        if self._resampler is None:
            return samples
        return self._resampler.resample_chunk(samples)

    def flush(self) -> np.ndarray:
        """Samples the resampler still holds at the end of the stream."""
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        return self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


class FlowWindow:
    """Credit-based flow control for one stream, counted in 16 kHz samples.

    Ray Serve's proxy reads a WebSocket as fast as the client writes, so TCP cannot slow a
    fast sender down. Instead the client may send a frame only while what it has sent runs
    less than `window` past the server's last `ack`; the server acks as it processes. A
    client that keeps the rule is served as fast as the model runs, with at most one window
    (plus one frame) queued; one that breaks it is caught on the frame that breaks it.
    """

    def __init__(self, window: int):
        self.window = window  # samples a client may send past the last ack
        self.received = 0  # samples taken off the socket
        self.processed = 0  # samples the model has consumed
        self.acked = 0  # `processed` when the last ack went out
        self.progress_at = time.monotonic()  # when the model last consumed some

    def idle_since(self, since: float) -> float | None:
        """When a client silent since `since` (time.monotonic) became idle: then, or later
        if the model consumed audio since (its acks may have been on the way); None while
        audio is still queued (the client may be waiting for credit)."""
        if self.received > self.processed:
            return None
        return max(since, self.progress_at)

    def receive(self, samples: int) -> None:
        """Count a frame in; ProtocolError if the client sent it without credit."""
        # 10 ms of slack: the client counts at its own rate, the server after resampling
        if self.received - self.processed >= self.window + SAMPLE_RATE // 100:
            raise ProtocolError(
                CLOSE_POLICY,
                f"sent over {self.window / SAMPLE_RATE:g} s of audio past the last ack "
                "(flow-control window): wait for ack events",
            )
        self.received += samples

    def process(self, samples: int) -> bool:
        """Count processed samples; True when an ack is due (a quarter window since the last,
        so a blocked client always gets one once the queue drains)."""
        self.processed += samples
        self.progress_at = time.monotonic()
        if self.processed - self.acked >= self.window // 4:
            self.acked = self.processed
            return True
        return False


def event(kind: str, **fields) -> dict:
    return {"type": kind, **fields}
