"""Fair cost under a long upload (issue 18): does one big file stall everyone else?

    python benchmarks/serve_fairness.py                      # 1 h of speech, teacher:ct2
    python benchmarks/serve_fairness.py --long-minutes 10 --repeats 6   # a quick check

Starts the Serve application on a free loopback port serving --model (teacher:ct2, the
bundled Whisper tiny.en, by default), then measures, idle and again while a long upload is
being transcribed:

- clip: a 3 s sentence POSTed to /v1/audio/transcriptions, request sent to response read;
- stream: the same sentence streamed at real-time pace over /v1/stream, from the end
  message to the last final (serve_load.py's "end of audio -> final").

Each is measured --repeats times, one after another, and reported as p50 / p95; "loaded"
figures are taken while a --long-minutes file of speech (the test sentences with pauses,
as FLAC) is being served, starting once the upload has been with the server for
--settle seconds. The upload is then abandoned (its connection closed). An hour of silence
(FLAC) is also timed alone: it should cost a VAD pass, not a model call.

Refusals: --oversize uploads of 1.15x the upload limit with the key, and one of 1 GiB
without it, each sent flat out by a raw client that keeps writing until the server answers:
the time to the status line, and the gateway replica's resident memory (its /healthz)
before and after. Targets: the keyless GiB refused in under 100 ms;
gateway RSS after the oversize uploads within 50 MB of before.

Target (issue 18): loaded p95 within 2x idle p95, for the clip and for the stream. Client
and server share the machine, so compare the ratios, not the seconds. Writes JSON to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import socket
import threading
import time
from pathlib import Path

import numpy as np
import requests
from serve_load import final_latency  # the same end -> final figure as the load benchmark

from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.online.client import stream_audio
from audiodistill.online.served_model import model_id
from audiodistill.testing.loopback import free_port, wav_bytes
from audiodistill.testing.speech import speak

PATH = "/v1/audio/transcriptions"
KEY = "fairness-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="teacher:ct2", help="model spec to serve")
    p.add_argument("--long-minutes", type=float, default=60.0, help="speech in the long upload")
    p.add_argument("--repeats", type=int, default=10, help="measurements per figure")
    p.add_argument("--settle", type=float, default=5.0, help="s into the upload before measuring")
    p.add_argument("--threads", type=int, default=1, help="inference threads per replica")
    p.add_argument("--upload-mb", type=float, default=200.0, help="the server's upload limit")
    p.add_argument("--oversize", type=int, default=20, help="oversize uploads to refuse")
    p.add_argument("--out", default="benchmarks/results/serve_fairness.json")
    return p.parse_args(argv)


def long_speech(clips: list[np.ndarray], minutes: float) -> np.ndarray:
    """The sentences over and over with 0.3 s and 1 s pauses, `minutes` long (int16)."""
    gaps = [np.zeros(int(s * SAMPLE_RATE), np.float32) for s in (0.3, 0.3, 1.0)]
    unit = np.concatenate([p for i, c in enumerate(clips) for p in (c, gaps[i % 3])])
    reps = int(np.ceil(minutes * 60 * SAMPLE_RATE / len(unit)))
    return (np.tile(unit, reps)[: int(minutes * 60 * SAMPLE_RATE)] * 32767).astype(np.int16)


def post(url: str, data: bytes, name: str, model: str, timeout: float = 3600) -> float:
    started = time.perf_counter()
    files, fields = {"file": (name, data)}, {"model": model}
    reply = requests.post(url + PATH, files=files, data=fields, headers=AUTH, timeout=timeout)
    reply.raise_for_status()
    return time.perf_counter() - started


def measure(url: str, clip: np.ndarray, model: str, repeats: int) -> dict:
    """p50/p95 of the clip's HTTP latency and of the stream's end-to-final latency."""
    upload = wav_bytes(clip)
    http = [post(url, upload, "clip.wav", model) for _ in range(repeats)]
    stream = []
    for _ in range(repeats):
        result = asyncio.run(stream_audio(url, clip, model, realtime=True, api_key=KEY))
        stream.append(final_latency(result))
    return {"clip": _percentiles(http), "stream": _percentiles([s for s in stream if s])}


def _percentiles(values: list[float]) -> dict:
    return {
        "p50": round(float(np.percentile(values, 50)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "n": len(values),
    }


def hostile_upload(url: str, megabytes: float, headers: dict) -> tuple[int, float]:
    """Declare and send `megabytes` of body flat out until the server answers; returns the
    status and the seconds from the request's first byte to the status line."""
    host, port = url.removeprefix("http://").split(":")
    size = int(megabytes * 1e6)
    head = [
        f"POST {PATH} HTTP/1.1",
        f"Host: {host}",
        f"Content-Length: {size}",
        "Content-Type: multipart/form-data; boundary=x",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    block = b"x" * (1 << 20)
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.setblocking(False)
        started, sent, reply = time.perf_counter(), 0, b""
        pending = ("\r\n".join(head) + "\r\n\r\n").encode()
        while b"\r\n" not in reply:
            readable, writable, _ = select.select([sock], [sock] if sent < size else [], [], 60)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
            elif writable:
                pending = pending or block[: size - sent]
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    size = sent  # the server stopped reading: wait for its answer
                    continue
                sent, pending = sent + n, pending[n:]
        took = time.perf_counter() - started
    return (int(reply.split(b" ", 2)[1]) if reply else 0), took


def refusals(url: str, limit_mb: float, n: int) -> dict:
    """Oversize uploads with the key and a keyless GiB: refusal times and memory."""
    before = requests.get(url + "/healthz", timeout=10).json()["rss_mb"]
    oversize = [hostile_upload(url, 1.15 * limit_mb, AUTH) for _ in range(n)]
    keyless = hostile_upload(url, 1024.0, {})
    after = requests.get(url + "/healthz", timeout=10).json()["rss_mb"]
    return {
        "oversize_statuses": sorted({s for s, _ in oversize}),
        "oversize_seconds": _percentiles([t for _, t in oversize]),
        "keyless_gib_status": keyless[0],
        "keyless_gib_seconds": round(keyless[1], 4),
        "gateway_rss_mb_before": before,
        "gateway_rss_mb_after": after,
    }


def upload_in_background(url: str, data: bytes, model: str) -> threading.Thread:
    """POST `data` in a daemon thread; it is abandoned when the benchmark exits."""

    def run() -> None:
        try:
            post(url, data, "long.flac", model)
        except requests.RequestException:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import ray

    from serve.app import start
    from serve.options import DeploymentOptions, LimitOptions, ServeOptions

    limits = LimitOptions(max_upload_mb=args.upload_mb, max_audio_seconds=4 * 3600.0)
    options = ServeOptions(
        models=(args.model,),
        api_key=KEY,
        port=free_port(),
        limits=limits,
        deployment=DeploymentOptions(threads=args.threads),
        blocking=False,
    )
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    url = start(options)
    model = model_id(args.model)
    clips = speak()
    clip = clips[1]
    post(url, wav_bytes(clip), "warm.wav", model)  # load and warm the model
    silence = wav_bytes(np.zeros(3600 * SAMPLE_RATE, np.int16), format="FLAC")
    silent_s = post(url, silence, "silence.flac", model)
    refused = refusals(url, args.upload_mb, args.oversize)
    idle = measure(url, clip, model, args.repeats)
    speech = wav_bytes(long_speech(clips, args.long_minutes), format="FLAC")
    upload_in_background(url, speech, model)
    time.sleep(args.settle)
    loaded = measure(url, clip, model, args.repeats)
    result = {
        "model": model,
        "clip_seconds": round(len(clip) / SAMPLE_RATE, 2),
        "long_minutes": args.long_minutes,
        "long_upload_mb": round(len(speech) / 1e6, 1),
        "silence_hour_seconds": round(silent_s, 2),
        "idle": idle,
        "loaded": loaded,
        "ratio_p95": {k: round(loaded[k]["p95"] / idle[k]["p95"], 2) for k in idle},
        "refusals": refused,
    }
    print_table(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    ray.shutdown()
    return result


def print_table(r: dict) -> None:
    print(
        f"\nmodel {r['model']}; long upload: {r['long_minutes']:g} min of speech "
        f"({r['long_upload_mb']} MB FLAC); 1 h of silence served in "
        f"{r['silence_hour_seconds']} s"
    )
    print("| figure | idle p50 | idle p95 | loaded p50 | loaded p95 | loaded/idle p95 | target |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    names = {"clip": f"{r['clip_seconds']} s clip, HTTP", "stream": "live stream, end -> final"}
    for key, name in names.items():
        i, lo = r["idle"][key], r["loaded"][key]
        print(
            f"| {name} | {i['p50']} s | {i['p95']} s | {lo['p50']} s | {lo['p95']} s "
            f"| {r['ratio_p95'][key]}x | <= 2x |"
        )
    f = r["refusals"]
    print(
        f"\n{f['oversize_seconds']['n']} oversize uploads: {f['oversize_statuses']} in "
        f"{f['oversize_seconds']['p50']} s p50 / {f['oversize_seconds']['p95']} s p95; a keyless "
        f"GiB: {f['keyless_gib_status']} in {f['keyless_gib_seconds'] * 1000:.1f} ms "
        "(target < 100 ms)"
    )
    print(
        f"gateway RSS {f['gateway_rss_mb_before']} MB before, {f['gateway_rss_mb_after']} MB "
        "after (target: within 50 MB)"
    )


if __name__ == "__main__":
    main()
