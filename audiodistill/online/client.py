"""`audiodistill transcribe`: a client for a running server, and the streaming client the
load benchmark and tests share.

The stream client sends 16 kHz int16 frames (paced at real time with `realtime`), and
receives events at the same time; every event comes back with its arrival time and with how
much audio had been sent by then, which is what latency figures are computed from. It keeps
the server's flow-control window: audio is sent only while less than `window_s` of it is past
the last `ack` (docs/protocol.md), so a file sent flat out goes as fast as the model runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from audiodistill.data.audio import SAMPLE_RATE

DEFAULT_URL = "ws://127.0.0.1:8000"  # the server `audiodistill serve` starts by default
LOCAL_FORMATS = ("text", "json", "srt", "vtt")  # what an in-process run writes


@dataclass(frozen=True)
class TranscribeOptions:
    # audio files (any format load_audio reads); "-" reads raw PCM (s16le, mono) from stdin,
    # in-process only
    files: tuple[str, ...] = ()
    # an export directory (`audiodistill export`, e.g. models/whisper-tiny-en-streaming) runs
    # in-process, no server, unless `url` is given; anything else is a served model id
    # (None: the server's default model)
    model: str | None = None
    # server address ws://HOST:PORT (streaming) or http://HOST:PORT (either works for both);
    # giving it always means the server (None: ws://127.0.0.1:8000)
    url: str | None = None
    # send audio at real-time pace, as a microphone would (server streaming)
    realtime: bool = False
    # audio per WebSocket frame (server streaming)
    chunk_ms: int = 100
    # use the batch HTTP API (POST /v1/audio/transcriptions) instead of streaming
    http: bool = False
    # output: text, json, srt or vtt (in-process and HTTP; HTTP also takes verbose_json)
    response_format: Literal["text", "json", "verbose_json", "srt", "vtt"] = "text"
    # Bearer key (None: the AUDIODISTILL_API_KEY environment variable, if set)
    api_key: str | None = None
    # sample rate of the raw PCM read from stdin ("-"); resampled to 16 kHz
    sample_rate: int = SAMPLE_RATE
    # in-process: CPU threads for ONNX Runtime
    threads: int = 1
    # in-process: run the export's int8 graphs (an int8-only export runs them anyway)
    int8: bool = False

    def __post_init__(self) -> None:
        if not self.files:
            raise ValueError("give an audio file (or - for raw PCM on stdin)")
        if not 1_000 <= self.sample_rate <= 384_000 or self.threads < 1 or self.chunk_ms < 1:
            raise ValueError("sample_rate must be 1000-384000 Hz, threads and chunk_ms >= 1")
        if self.in_process and self.response_format not in LOCAL_FORMATS:
            raise ValueError(f"an in-process run writes {', '.join(LOCAL_FORMATS)}")
        if not self.in_process and "-" in self.files:
            raise ValueError("- (PCM on stdin) runs in-process only: --model EXPORT_DIR")

    @property
    def in_process(self) -> bool:
        """Run `model` here: it is a directory and no server `url` was given."""
        return self.url is None and self.model is not None and Path(self.model).is_dir()


@dataclass
class Received:
    """One server event with when it arrived and how far the client had sent by then."""

    event: dict
    at: float  # time.perf_counter() on arrival
    sent_seconds: float  # audio sent before it arrived


@dataclass
class StreamResult:
    events: list[Received]
    end_sent_at: float  # when the end message went out
    close_code: int | None
    close_reason: str
    piece_sent_at: list[tuple[float, float]]  # (audio seconds sent so far, time sent)

    def finals(self) -> list[dict]:
        return [r.event for r in self.events if r.event["type"] == "final"]

    def text(self) -> str:
        return " ".join(e["text"] for e in self.finals())


def _base(url: str, scheme: str) -> str:
    for prefix in ("ws://", "wss://", "http://", "https://"):
        if url.startswith(prefix):
            secure = prefix in ("wss://", "https://")
            return f"{scheme}{'s' if secure else ''}://{url[len(prefix) :].rstrip('/')}"
    raise ValueError(f"url must start with ws://, wss://, http:// or https://, got {url!r}")


def _headers(api_key: str | None) -> dict:
    key = api_key or os.environ.get("AUDIODISTILL_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


async def stream_audio(
    url: str,
    audio: np.ndarray,
    model: str | None = None,
    realtime: bool = True,
    chunk_ms: int = 100,
    api_key: str | None = None,
    on_event: Callable[[dict], None] | None = None,
) -> StreamResult:
    """Stream 16 kHz float32 `audio` to `/v1/stream` and collect every event until done."""
    import websockets

    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    step = SAMPLE_RATE * chunk_ms // 1000
    sent = {"seconds": 0.0, "end": 0.0}
    pieces: list[tuple[float, float]] = []
    events: list[Received] = []
    ws_url = _base(url, "ws") + "/v1/stream"
    async with websockets.connect(ws_url, additional_headers=_headers(api_key)) as ws:
        await ws.send(json.dumps({"type": "config", "model": model, "sample_rate": SAMPLE_RATE}))
        credit = _Credit()

        async def send() -> None:
            await credit.ready.wait()
            start = time.perf_counter()
            for i in range(0, len(pcm), step):
                if realtime:  # pace against the clock, not by sleeping per piece
                    await asyncio.sleep(max(0.0, start + i / SAMPLE_RATE - time.perf_counter()))
                await credit.wait(sent["seconds"])
                await ws.send(pcm[i : i + step].tobytes())
                sent["seconds"] = min(len(pcm), i + step) / SAMPLE_RATE
                pieces.append((sent["seconds"], time.perf_counter()))
            await ws.send(json.dumps({"type": "end"}))
            sent["end"] = time.perf_counter()

        sender = asyncio.create_task(send())
        try:
            async for message in ws:
                received = Received(json.loads(message), time.perf_counter(), sent["seconds"])
                events.append(received)
                credit.update(received.event)
                if on_event:
                    on_event(received.event)
                if received.event["type"] in ("done", "error"):
                    break
        except websockets.ConnectionClosed:
            pass
        finally:
            sender.cancel()
        await ws.wait_closed()
        return StreamResult(events, sent["end"], ws.close_code, ws.close_reason or "", pieces)


class _Credit:
    """The client side of the flow-control window: `ready` gives its size, `ack`s move it."""

    def __init__(self):
        self.ready = asyncio.Event()
        self.window_s = float("inf")  # a server without flow control gives no window
        self.acked_s = 0.0
        self._moved = asyncio.Event()

    def update(self, event: dict) -> None:
        if event["type"] == "ready":
            self.window_s = event.get("window_s") or float("inf")
            self.ready.set()
        elif event["type"] == "ack":
            self.acked_s = event["audio_seconds"]
            self._moved.set()
        elif event["type"] in ("done", "error"):
            self.ready.set()  # nothing more will come: let the sender run into the close

    async def wait(self, sent_s: float) -> None:
        """Until a frame may go: less than a window of audio sent past the last ack."""
        while sent_s - self.acked_s >= self.window_s:
            self._moved.clear()
            await self._moved.wait()


def transcribe_http(options: TranscribeOptions, data: bytes, name: str) -> str:
    """POST the file to /v1/audio/transcriptions; the response body as text."""
    import requests

    fields = {"response_format": options.response_format}
    if options.model:
        fields["model"] = options.model
    response = requests.post(
        _base(options.url or DEFAULT_URL, "http") + "/v1/audio/transcriptions",
        files={"file": (name, data)},
        data=fields,
        headers=_headers(options.api_key),
        timeout=600,
    )
    if response.status_code != 200:
        raise SystemExit(f"server said {response.status_code}: {response.text}")
    return response.text


def _print_event(event: dict) -> None:
    if event["type"] == "partial":
        print(f"\r  ... {event['text'][-100:]}", end="", file=sys.stderr, flush=True)
    elif event["type"] == "final":
        print(f"\r[{event['start']:7.2f} - {event['end']:7.2f}] {event['text']}", flush=True)
    elif event["type"] == "error":
        print(f"\nerror {event.get('code')}: {event.get('message')}", file=sys.stderr)


def run(options: TranscribeOptions) -> None:
    """The `transcribe` command against a server: each file in turn."""
    from audiodistill.data.audio import load_audio

    for file in options.files:
        if options.http:
            print(transcribe_http(options, Path(file).read_bytes(), Path(file).name))
            continue
        result = asyncio.run(
            stream_audio(
                options.url or DEFAULT_URL,
                load_audio(file),
                options.model,
                options.realtime,
                options.chunk_ms,
                options.api_key,
                _print_event,
            )
        )
        if result.close_code not in (1000, None):
            raise SystemExit(f"stream closed with {result.close_code}: {result.close_reason}")
