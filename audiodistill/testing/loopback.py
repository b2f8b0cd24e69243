"""Talking to a server on loopback in tests: a free port, WAV bytes, a raw WebSocket
exchange, and a raw HTTP request that sends only what a hostile client would."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time

import numpy as np

from audiodistill.data.audio import SAMPLE_RATE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wav_bytes(audio: np.ndarray, rate: int = SAMPLE_RATE, format: str = "WAV") -> bytes:
    """16-bit PCM in a WAV (or FLAC) container."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=format, subtype="PCM_16")
    return buffer.getvalue()


def ws_url(url: str, path: str = "/v1/stream") -> str:
    return url.replace("http", "ws", 1) + path


async def exchange(url: str, messages, headers: dict, read_timeout: float = 20.0):
    """Send `messages` (str or bytes) on a stream, then read until the server closes;
    returns (close code, reason, events)."""
    import websockets

    events = []
    async with websockets.connect(ws_url(url), additional_headers=headers) as ws:
        try:
            for message in messages:
                await ws.send(message)
            async with asyncio.timeout(read_timeout):
                async for message in ws:
                    events.append(json.loads(message))
        except websockets.ConnectionClosed:
            pass
        await ws.wait_closed()
        return ws.close_code, ws.close_reason, events


def raw_post(url: str, path: str, headers: dict, body: bytes, timeout: float = 10.0):
    """POST `headers` and `body` as given (a Content-Length that lies included), without
    waiting to send more; returns (status, response bytes, seconds to the status line)."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        started = time.perf_counter()
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        reply = _read_until(sock, lambda r: b"\r\n\r\n" in r, b"")
        took = time.perf_counter() - started
        head, _, body = reply.partition(b"\r\n\r\n")
        length = [int(v) for k, v in _headers(head) if k == "content-length"]
        if length:
            body = _read_until(sock, lambda r: len(r) >= length[0], body)
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body, took


def _read_until(sock: socket.socket, done, reply: bytes) -> bytes:
    while not done(reply):
        data = sock.recv(65536)
        if not data:
            break
        reply += data
    return reply


def _headers(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
