"""OpenAI's Realtime API, transcription sessions: `WS /v1/realtime?intent=transcription`.

The client sends JSON events (`session.update`, `input_audio_buffer.append` / `.commit` /
`.clear`); the server answers with the events the spec names for a transcription session
(docs/protocol.md, "Realtime"). Underneath it is the same machinery as `/v1/stream`: an
`OnlineSession` (VAD segments, and a streaming student or LocalAgreement over a Whisper-type
model) fed 16 kHz audio. What this module adds is the event shapes, the input formats, and
turns: with `server_vad` each segment the VAD closes is one committed item; without turn
detection the client's commit ends the item, which may hold several segments.

Deltas are streamed while the speaker talks, not only after the commit: a delta carries
text that two consecutive partials agree on, so a model's revision of its newest words is
never sent, and the text of `completed` extends what the deltas sent (unless the final
transcription revises words two partials had agreed on; then `completed` is right and the
deltas stop short).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.decoding.words import Word
from audiodistill.online.served_model import ModelInfo
from audiodistill.online.streams import Engine, Event, OnlineOptions, OnlineSession
from serve.formats import ApiError
from serve.metrics import GatewayMetrics
from serve.options import LimitOptions
from serve.protocol import (
    CLOSE_BUSY,
    CLOSE_INTERNAL,
    CLOSE_INVALID,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    MAX_REASON_BYTES,
    PcmDecoder,
)

logger = logging.getLogger("ray.serve")
PCM_RATE = 24_000  # audio/pcm: the only rate the spec allows
G711_RATE = 8_000  # audio/pcmu and audio/pcma are telephone audio
MIN_COMMIT_SAMPLES = SAMPLE_RATE // 10  # a commit needs 100 ms of audio, as OpenAI's does


def _ulaw_table() -> np.ndarray:
    """G.711 u-law byte -> sample in [-1, 1]: bits are stored inverted; 3 exponent bits,
    4 mantissa bits, and a bias of 0x84 taken off again."""
    code = ~np.arange(256) & 0xFF
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return (np.where(code & 0x80, -magnitude, magnitude) / 32768).astype(np.float32)


def _alaw_table() -> np.ndarray:
    """G.711 A-law byte -> sample in [-1, 1]: even bits are stored inverted (xor 0x55); a
    set sign bit means positive; exponent 0 is the linear segment."""
    code = np.arange(256) ^ 0x55
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    linear = (mantissa << 4) + 8
    magnitude = np.where(exponent == 0, linear, (linear + 0x100) << np.maximum(exponent - 1, 0))
    return (np.where(code & 0x80, magnitude, -magnitude) / 32768).astype(np.float32)


G711_TABLES = {"audio/pcmu": _ulaw_table(), "audio/pcma": _alaw_table()}


class AudioDecoder:
    """Appended audio in a session's format -> 16 kHz float32, resampled as one stream by
    the same decoder as `/v1/stream` (G.711 bytes are expanded to float samples first)."""

    def __init__(self, format: str):
        self._table = G711_TABLES.get(format)
        if self._table is None:
            self._pcm = PcmDecoder("pcm_s16le", PCM_RATE)
        else:
            self._pcm = PcmDecoder("f32le", G711_RATE)

    def decode(self, data: bytes) -> np.ndarray:
        if self._table is not None:
            data = self._table[np.frombuffer(data, np.uint8)].tobytes()
        return self._pcm.decode(data)

    def flush(self) -> np.ndarray:
        return self._pcm.flush()


# ---- client events --------------------------------------------------------------------


class _Strict(BaseModel):
    # an unknown field is an error, never silently ignored
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class FormatIn(_Strict):
    type: Literal["audio/pcm", "audio/pcmu", "audio/pcma"] = "audio/pcm"
    rate: Literal[24000] | None = None

    @model_validator(mode="after")
    def _rate_is_for_pcm(self) -> FormatIn:
        if self.rate is not None and self.type != "audio/pcm":
            raise ValueError("rate is for audio/pcm only (G.711 is always 8 kHz)")
        return self


class TranscriptionIn(_Strict):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None


class TurnDetectionIn(_Strict):
    type: Literal["server_vad"]
    silence_duration_ms: int | None = Field(None, ge=30, le=10_000)
    # accepted for compatibility and not used (docs/protocol.md says why)
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None


class NoiseReductionIn(_Strict):
    type: Literal["near_field", "far_field"] | None = None
    strength: float | None = None


class AudioInputIn(_Strict):
    format: FormatIn | None = None
    transcription: TranscriptionIn | None = None
    turn_detection: TurnDetectionIn | None = None
    noise_reduction: NoiseReductionIn | None = None


class AudioIn(_Strict):
    input: AudioInputIn | None = None


# what `include` may ask for: OpenAI's logprobs (accepted, not given), and word times, this
# server's extension (OpenAI's Realtime API has none): `words` on completed events
LOGPROBS = "item.input_audio_transcription.logprobs"
WORDS = "item.input_audio_transcription.words"


class SessionIn(_Strict):
    type: Literal["transcription"]
    audio: AudioIn | None = None
    include: list[Literal[LOGPROBS, WORDS]] | None = None


class SessionUpdate(_Strict):
    type: Literal["session.update"]
    session: SessionIn
    event_id: str | None = None


class Append(_Strict):
    type: Literal["input_audio_buffer.append"]
    audio: str  # base64
    event_id: str | None = None


class Commit(_Strict):
    type: Literal["input_audio_buffer.commit"]
    event_id: str | None = None


class Clear(_Strict):
    type: Literal["input_audio_buffer.clear"]
    event_id: str | None = None


CLIENT_EVENTS = {
    "session.update": SessionUpdate,
    "input_audio_buffer.append": Append,
    "input_audio_buffer.commit": Commit,
    "input_audio_buffer.clear": Clear,
}


class EventError(Exception):
    """A bad client event: an `error` event answers it and the session goes on."""

    def __init__(self, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


class Closing(Exception):
    """What ends the connection: an `error` event (unless the client cannot take one),
    then a close with `close_code`."""

    def __init__(
        self, close_code: int, code: str, message: str, kind: str = "invalid_request_error"
    ):
        super().__init__(message)
        self.close_code, self.code, self.message, self.kind = close_code, code, message, kind


def parse_json(text: str) -> dict:
    """A client event's JSON object, or an EventError."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise EventError("invalid_json", f"event is not JSON: {err.msg}") from err
    if not isinstance(raw, dict):
        raise EventError("invalid_json", "an event must be a JSON object")
    return raw


def parse_event(raw: dict) -> BaseModel:
    """The client event in a JSON object, or an EventError."""
    kind = raw.get("type")
    if kind not in CLIENT_EVENTS:
        known = ", ".join(CLIENT_EVENTS)
        raise EventError(
            "invalid_value",
            f"event type {kind!r} is not supported by a transcription session ({known})",
            "type",
        )
    try:
        return CLIENT_EVENTS[kind].model_validate(raw)
    except ValidationError as err:
        raise _invalid(err) from err


def _invalid(err: ValidationError) -> EventError:
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"])
    codes = {"extra_forbidden": "unknown_parameter", "missing": "missing_required_parameter"}
    return EventError(codes.get(first["type"], "invalid_value"), f"{path}: {first['msg']}", path)


# ---- the session's settings -----------------------------------------------------------


@dataclass(frozen=True)
class SessionConfig:
    """A transcription session's settings, as session.update leaves them."""

    # input audio: "audio/pcm" (24 kHz 16-bit mono), "audio/pcmu" / "audio/pcma" (8 kHz G.711)
    format: str = "audio/pcm"
    # a served model id; None: the first served model
    model: str | None = None
    # None, "" or the model's language, as on the HTTP API
    language: str | None = None
    # guides Whisper-type models as the HTTP API's prompt does; CTC students ignore it
    prompt: str | None = None
    # True: the VAD cuts turns at pauses (server_vad); False: the client commits each turn
    server_vad: bool = True
    # the pause that ends a turn, ms; None: the server's online.vad.min_silence_ms
    silence_ms: int | None = None
    # the client's noise_reduction setting, reported back; no noise reduction is applied
    noise_reduction: dict | None = None
    # `include` as the client set it; WORDS in it puts timed words on completed events
    include: tuple[str, ...] = ()


def apply_update(config: SessionConfig, session: SessionIn) -> SessionConfig:
    """`config` with the fields the update names (only those: the spec's partial update;
    `turn_detection` and `noise_reduction` are replaced whole, null turns them off)."""
    if "include" in session.model_fields_set:
        config = replace(config, include=tuple(session.include or ()))
    given = session.audio.input if session.audio and session.audio.input else None
    if given is None:
        return config
    changes: dict[str, Any] = {}
    fields = given.model_fields_set
    if "format" in fields:
        changes["format"] = given.format.type if given.format else "audio/pcm"
    if "transcription" in fields:
        if given.transcription is None:
            raise EventError(
                "invalid_value",
                "a transcription session cannot turn transcription off",
                "session.audio.input.transcription",
            )
        named = given.transcription.model_fields_set
        changes |= {k: getattr(given.transcription, k) for k in named}
    if "turn_detection" in fields:
        turn = given.turn_detection
        changes["server_vad"] = turn is not None
        changes["silence_ms"] = turn.silence_duration_ms if turn else None
    if "noise_reduction" in fields:
        noise = given.noise_reduction
        changes["noise_reduction"] = noise.model_dump(exclude_none=True) if noise else None
    return replace(config, **changes)


@dataclass(frozen=True)
class Backend:
    """What a session needs from the gateway."""

    # a served model by id (None: the default) -> (handle, info); ApiError if not served
    model: Callable[[str | None], Awaitable[tuple[Any, ModelInfo]]]
    # (handle, info, prompt) -> a fresh engine for one OnlineSession
    engine: Callable[..., Engine]
    # endpointing and LocalAgreement, as for /v1/stream
    online: OnlineOptions
    limits: LimitOptions
    metrics: GatewayMetrics


# ---- server events --------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def server_event(kind: str, **fields) -> dict:
    return {"type": kind, "event_id": new_id("event"), **fields}


def error_event(kind: str, code: str, message: str, param=None, event_id=None) -> dict:
    """The spec's `error` event; `event_id` inside names the client event that caused it."""
    error = {"type": kind, "code": code, "message": message, "param": param}
    return server_event("error", error={**error, "event_id": event_id})


class Item:
    """The user item the input buffer will become: its text so far, and how much of it
    went out as deltas."""

    def __init__(self):
        self.id = new_id("item")
        self.finals: list[str] = []  # texts of its closed segments
        self.last = ""  # the open segment's newest partial
        self.stable = ""  # what the open segment's last two partials agree on
        self.sent = ""  # the deltas sent so far, joined
        self.words: list[dict] = []  # its finals' timed words (when the session asks)

    @property
    def text(self) -> str:
        return " ".join(t for t in self.finals if t)

    def partial(self, text: str) -> None:
        text = text.strip()
        self.stable = os.path.commonprefix([self.last, text]).rstrip()
        self.last = text

    def final(self, text: str) -> None:
        self.finals.append(text.strip())
        self.last = self.stable = ""

    def delta(self) -> str:
        """The text not sent yet, when it extends what was sent (a revision sends nothing
        until the text extends the sent text again)."""
        known = " ".join(t for t in (*self.finals, self.stable) if t)
        if len(known) <= len(self.sent) or not known.startswith(self.sent):
            return ""
        new, self.sent = known[len(self.sent) :], known
        return new


# ---- one connection -------------------------------------------------------------------


class RealtimeSession:
    """One connection: client events in order, each answered before the next is read."""

    def __init__(self, ws: WebSocket, backend: Backend, config: SessionConfig, model):
        self.ws = ws
        self.backend = backend
        self.limits = backend.limits
        self.id = new_id("sess")
        self.config = config
        self.handle, self.info = model
        self._received = 0  # 16 kHz samples appended in all (the stream limit)
        self._unrecorded = 0  # of them, not yet in the audio-seconds metric
        self._previous: str | None = None  # the last committed item
        self._reset_buffer()

    def _reset_buffer(self, offset: int = 0) -> None:
        """An empty input buffer: a new decoder and OnlineSession, no open item. `offset`:
        16 kHz samples of the connection before it (event times count from the start)."""
        self._offset = offset
        self._buffered = 0  # samples since the last commit or clear
        self._item: Item | None = None
        self._decoder = AudioDecoder(self.config.format)
        options = self.backend.online
        if self.config.silence_ms is not None:
            vad = replace(options.vad, min_silence_ms=self.config.silence_ms)
            options = replace(options, vad=vad)
        words = WORDS in self.config.include
        engine = self.backend.engine(self.handle, self.info, self.config.prompt, words)
        self._online = OnlineSession(engine, options, speech_events=True)

    def _next_buffer(self) -> None:
        self._reset_buffer(self._offset + self._online.samples)

    def describe(self) -> dict:
        """The session object of session.created / session.updated: what is in effect."""
        c = self.config
        silence = c.silence_ms or self.backend.online.vad.min_silence_ms
        turn = {"type": "server_vad", "silence_duration_ms": silence} if c.server_vad else None
        audio_format = {"type": c.format, **({"rate": PCM_RATE} if c.format == "audio/pcm" else {})}
        transcription = {"model": self.info.id, "language": self.info.language, "prompt": c.prompt}
        audio_input = {
            "format": audio_format,
            "transcription": transcription,
            "turn_detection": turn,
            "noise_reduction": c.noise_reduction,
        }
        return {
            "type": "transcription",
            "id": self.id,
            "object": "realtime.transcription_session",
            "audio": {"input": audio_input},
            "include": list(c.include) or None,
        }

    async def run(self) -> None:
        """Serve until the client closes (WebSocketDisconnect) or a Closing error."""
        await self._send(server_event("session.created", session=self.describe()))
        while True:
            message = await self._receive()
            arrived = time.perf_counter()
            raw: dict = {}
            try:
                raw = parse_json(self._text(message))
                await self._handle(parse_event(raw), arrived)
            except EventError as err:
                # the spec echoes the client's event_id in the error
                event_id = raw.get("event_id") if isinstance(raw.get("event_id"), str) else None
                kind = "invalid_request_error"
                await self._send(error_event(kind, err.code, err.message, err.param, event_id))

    async def _receive(self) -> dict:
        idle = self.limits.idle_timeout_s
        try:
            message = await asyncio.wait_for(self.ws.receive(), idle)
        except asyncio.TimeoutError as err:
            raise Closing(CLOSE_POLICY, "idle_timeout", f"idle for {idle:g} s") from err
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1005))
        return message

    def _text(self, message: dict) -> str:
        text = message.get("text")
        if text is None:
            raise EventError("invalid_json", "binary messages are not events: send JSON text")
        if len(text) > self.limits.max_frame_bytes:
            raise EventError(
                "message_too_large", f"event over {self.limits.max_frame_bytes} bytes: split it"
            )
        return text

    async def _send(self, payload: dict) -> None:
        try:
            await asyncio.wait_for(self.ws.send_json(payload), self.limits.send_timeout_s)
        except asyncio.TimeoutError as err:
            raise Closing(CLOSE_POLICY, "", "client is not reading events") from err

    async def _handle(self, event: BaseModel, arrived: float) -> None:
        if isinstance(event, Append):
            await self._append(event.audio, arrived)
        elif isinstance(event, Commit):
            await self._commit_buffer(arrived)
        elif isinstance(event, Clear):
            self._next_buffer()
            await self._send(server_event("input_audio_buffer.cleared"))
        else:
            await self._update(event.session)

    async def _update(self, update: SessionIn) -> None:
        config = apply_update(self.config, update)
        if config == self.config:
            await self._send(server_event("session.updated", session=self.describe()))
            return
        if self._buffered:
            raise EventError(
                "buffer_not_empty",
                "the input audio buffer holds audio: commit or clear it before changing the "
                "session",
            )
        model = await _resolve(self.backend, config, "session.audio.input.transcription.")
        self.record_audio()  # under the model that heard it
        self.config, (self.handle, self.info) = config, model
        self._next_buffer()
        await self._send(server_event("session.updated", session=self.describe()))

    async def _append(self, audio: str, arrived: float) -> None:
        try:
            data = base64.b64decode(audio, validate=True)
        except binascii.Error as err:
            raise EventError("invalid_value", "audio is not valid base64", "audio") from err
        pcm = self._decoder.decode(data)
        self._received += len(pcm)
        if self._received > self.limits.max_stream_seconds * SAMPLE_RATE:
            limit = self.limits.max_stream_seconds
            raise Closing(CLOSE_POLICY, "session_too_long", f"session audio over {limit:g} s")
        self._buffered += len(pcm)
        self._unrecorded += len(pcm)
        events = await self._guarded(self._online.accept(pcm))
        for event in events or []:
            await self._on(event, arrived, self.config.server_vad)

    async def _commit_buffer(self, arrived: float) -> None:
        """The client's commit: the buffer's audio is decoded to its end and becomes one
        item (without a speech_stopped event, as in the spec)."""
        if self._buffered < MIN_COMMIT_SAMPLES:
            ms = 1000 * self._buffered / SAMPLE_RATE
            raise EventError(
                "input_audio_buffer_commit_empty",
                f"the input audio buffer holds {ms:.0f} ms of audio; a commit needs 100 ms",
            )
        events = await self._guarded(self._drain())
        if events is None:  # the model failed: the item is gone, the buffer empty
            return
        for event in events:
            await self._on(event, arrived, auto_commit=False)
        await self._commit(arrived)
        self._next_buffer()

    async def _drain(self) -> list[Event]:
        """The events of the buffer's last samples (the resampler's tail) and its end."""
        tail = self._decoder.flush()
        self._buffered += len(tail)
        self._unrecorded += len(tail)
        return await self._online.accept(tail) + await self._online.finish()

    async def _guarded(self, work: Awaitable[list[Event]]) -> list[Event] | None:
        """The events of a model call, or None if the model failed: then the open item
        fails (its audio is dropped) and the session goes on with an empty buffer."""
        try:
            return await work
        except Exception:
            logger.exception("realtime transcription failed")
            item = self._item or Item()
            error = {
                "type": "server_error",
                "code": "transcription_failed",
                "message": "the model failed on this audio",
                "param": None,
            }
            failed = "conversation.item.input_audio_transcription.failed"
            await self._send(server_event(failed, item_id=item.id, content_index=0, error=error))
            self._next_buffer()
            return None

    async def _on(self, event: Event, arrived: float, auto_commit: bool) -> None:
        """One OnlineSession event. With server VAD (`auto_commit`) a closed segment is a
        committed turn; else its text joins the open item, which the client commits."""
        if event.type == "speech":
            if auto_commit:
                started = "input_audio_buffer.speech_started"
                at, item_id = self._ms(event.start), self._open_item().id
                await self._send(server_event(started, audio_start_ms=at, item_id=item_id))
            return
        item = self._open_item()
        if event.type == "partial":
            item.partial(event.text)
        else:
            item.final(event.text)
            item.words += [self._timed(w) for w in event.words or ()]
        if event.type == "final" and auto_commit:
            stopped = "input_audio_buffer.speech_stopped"
            at = self._ms(event.end)
            await self._send(server_event(stopped, audio_end_ms=at, item_id=item.id))
            await self._commit(arrived)
        else:
            await self._send_delta(item)

    def _open_item(self) -> Item:
        if self._item is None:
            self._item = Item()
        return self._item

    async def _send_delta(self, item: Item) -> None:
        delta = item.delta()
        if delta:
            kind = "conversation.item.input_audio_transcription.delta"
            await self._send(server_event(kind, item_id=item.id, content_index=0, delta=delta))

    async def _commit(self, arrived: float) -> None:
        """The open item (an empty one if no speech was heard) is committed and completed."""
        item = self._open_item()
        committed = "input_audio_buffer.committed"
        await self._send(server_event(committed, item_id=item.id, previous_item_id=self._previous))
        await self._send_delta(item)
        usage = {"type": "duration", "seconds": round(self._buffered / SAMPLE_RATE, 3)}
        completed = server_event(
            "conversation.item.input_audio_transcription.completed",
            item_id=item.id,
            content_index=0,
            transcript=item.text,
            usage=usage,
            **({"words": item.words} if WORDS in self.config.include else {}),
        )
        await self._send(completed)
        self.backend.metrics.final_latency.record(time.perf_counter() - arrived, self.info.id)
        self._previous, self._item, self._buffered = item.id, None, 0

    def _timed(self, word: Word) -> dict:
        """A final's word, its times in seconds from the connection's first audio."""
        return word.shifted(self._offset / SAMPLE_RATE).to_dict()

    def _ms(self, seconds: float) -> int:
        """Milliseconds from the connection's first audio, for a time of the OnlineSession."""
        return round(1000 * self._offset / SAMPLE_RATE + 1000 * seconds)

    def record_audio(self) -> None:
        if self._unrecorded:  # Ray's counters refuse a zero increment
            seconds = self._unrecorded / SAMPLE_RATE
            self.backend.metrics.audio_seconds.record(seconds, self.info.id, "realtime")
            self._unrecorded = 0


async def _resolve(backend: Backend, config: SessionConfig, param: str):
    """(handle, info) of the config's model, checked as the HTTP API checks it."""
    try:
        handle, info = await backend.model(config.model)
    except ApiError as err:
        raise EventError(err.code, err.message, param + "model") from err
    if config.language not in (None, "", info.language):
        message = f"model {info.id!r} transcribes {info.language!r} only"
        raise EventError("unsupported_language", message, param + "language")
    if WORDS in config.include and not info.word_times:
        message = f"model {info.id!r} gives no word times"
        raise EventError("invalid_value", message, "session.include")
    return handle, info


async def serve(ws: WebSocket, backend: Backend, authorized: bool, streams: int) -> str:
    """One accepted Realtime connection, start to end. Returns its outcome for the metrics:
    "ok" (the client closed normally), "disconnect", or the close code the server sent."""
    session = None
    try:
        if not authorized:
            raise Closing(CLOSE_POLICY, "invalid_api_key", "missing or wrong API key")
        if streams > backend.limits.max_streams:
            message = f"server is at its limit of {backend.limits.max_streams} streams"
            raise Closing(CLOSE_BUSY, "server_busy", message, "server_error")
        session = await _open(ws, backend)
        await session.run()
    except Closing as err:
        await _close(ws, err, backend.limits.send_timeout_s)
        return str(err.close_code)
    except WebSocketDisconnect as err:
        return "ok" if err.code == CLOSE_NORMAL else "disconnect"
    except Exception:  # a server bug ends this connection only
        logger.exception("realtime session failed")
        error = Closing(CLOSE_INTERNAL, "server_error", "internal error", "server_error")
        await _close(ws, error, backend.limits.send_timeout_s)
        return str(CLOSE_INTERNAL)
    finally:
        if session is not None:
            session.record_audio()
    return "ok"


async def _open(ws: WebSocket, backend: Backend) -> RealtimeSession:
    """A session for the connection's query: `intent` (transcription only) and `model`."""
    intent = ws.query_params.get("intent", "transcription")
    if intent != "transcription":
        message = f"intent {intent!r} is not served: only intent=transcription"
        raise Closing(CLOSE_INVALID, "invalid_value", message)
    config = SessionConfig(model=ws.query_params.get("model") or None)
    try:
        model = await _resolve(backend, config, "")
    except EventError as err:
        raise Closing(CLOSE_INVALID, err.code, err.message) from err
    return RealtimeSession(ws, backend, config, model)


async def _close(ws: WebSocket, err: Closing, timeout: float) -> None:
    if ws.client_state != WebSocketState.CONNECTED:
        return
    try:
        if err.code:  # a client that is not reading gets no event
            event = error_event(err.kind, err.code, err.message)
            await asyncio.wait_for(ws.send_json(event), timeout)
        reason = err.message.encode()[:MAX_REASON_BYTES].decode(errors="ignore")
        await ws.close(err.close_code, reason)
    except (WebSocketDisconnect, RuntimeError, asyncio.TimeoutError):
        pass  # the client is gone already
