"""The server under long files and hostile clients (issue 18), on loopback with small
limits: long audio transcribed whole and the same over HTTP as over a stream, silence for
free, limits enforced before the body is read, the stream cap and idle time as stated,
errors without internals, every refusal counted by the replica that answered."""

import asyncio
import contextlib
import json
import threading
import time

import jiwer
import numpy as np
import pytest
import requests

from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.testing.loopback import exchange, free_port, raw_post, wav_bytes, ws_url

pytestmark = pytest.mark.integration
KEY = "limits-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_STREAMS = 3
IDLE_S = 2.0
WINDOW_S = 4.0
MAX_UPLOAD_MB = 4.0
MAX_AUDIO_S = 300.0
MAX_SEGMENT_S = 12.0  # small, so a minute of speech makes several segments
PATH = "/v1/audio/transcriptions"


@pytest.fixture(scope="module")
def server():
    import ray
    from ray import serve as ray_serve

    from audiodistill.online.streams import OnlineOptions
    from serve.app import start
    from serve.options import LimitOptions, ServeOptions

    limits = LimitOptions(
        max_upload_mb=MAX_UPLOAD_MB,
        max_audio_seconds=MAX_AUDIO_S,
        max_streams=MAX_STREAMS,
        idle_timeout_s=IDLE_S,
        send_timeout_s=3.0,
        window_s=WINDOW_S,
    )
    # Ray's own metrics export, where the gateway's metrics are recorded for cluster sums
    metrics_port = free_port()
    ray.init(_metrics_export_port=metrics_port, log_to_driver=False)
    options = ServeOptions(
        models=("teacher:ct2",),
        port=free_port(),
        api_key=KEY,
        limits=limits,
        online=OnlineOptions(max_segment_s=MAX_SEGMENT_S),
        blocking=False,
    )
    url = start(options)
    yield url, metrics_port
    ray_serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def url(server):
    return server[0]


@pytest.fixture(scope="module")
def long_file(speech):
    """About 70 s of read speech: the fixture sentences with short pauses (that do not end a
    segment) and long ones (that do), so segments hold several sentences and some run into
    max_segment_s; and the texts of each sentence transcribed alone."""
    _, clips = speech
    short, long = np.zeros(SAMPLE_RATE // 5, np.float32), np.zeros(SAMPLE_RATE, np.float32)
    parts = [part for i, clip in enumerate(clips * 4) for part in (clip, (short, long)[i % 3 == 2])]
    return np.concatenate(parts), clips * 4


@pytest.fixture(scope="module")
def healthy(url, long_file):
    """A live stream at real-time pace (30 s of speech) running beside the hostile tests
    that ask for it; `test_the_healthy_stream_beside_them_was_served_whole` checks it."""
    from audiodistill.online.client import stream_audio

    audio = long_file[0][: 30 * SAMPLE_RATE]
    result: dict = {}

    def run() -> None:
        result["stream"] = asyncio.run(stream_audio(url, audio, "teacher-ct2", True, 100, KEY))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(1.0)  # under way before the first hostile request
    return thread, audio, result


def _post(url, data: bytes, name="a.wav", headers=AUTH, **fields):
    files = {"file": (name, data)}
    return requests.post(url + PATH, files=files, data=fields, headers=headers, timeout=120)


def test_a_long_file_gives_the_same_text_over_http_and_a_stream(url, long_file):
    from audiodistill.online.client import stream_audio

    audio, clips = long_file
    upload = wav_bytes(audio)
    text = _post(url, upload).json()["text"]
    verbose = _post(url, upload, response_format="verbose_json").json()
    streamed = asyncio.run(stream_audio(url, audio, "teacher-ct2", False, 100, KEY))
    assert streamed.close_code == 1000
    assert text == streamed.text() == verbose["text"]
    spans = [s["end"] - s["start"] for s in verbose["segments"]]
    assert len(spans) >= 5 and max(spans) <= MAX_SEGMENT_S + 0.1
    # no sentence is lost: against each sentence transcribed on its own, in order
    alone = [_post(url, wav_bytes(c)).json()["text"] for c in clips[:6]]
    reference = " ".join(alone[i % 6] for i in range(len(clips)))
    normalise = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation()])
    assert jiwer.wer(normalise(reference), normalise(text)) < 0.15


def test_sse_deltas_add_up_to_the_text(url, long_file):
    audio, _ = long_file
    upload = wav_bytes(audio[: 30 * SAMPLE_RATE])
    reply = _post(url, upload, stream="true")
    events = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "transcript.text.done" and len(events) >= 3
    assert "".join(e["delta"] for e in events[:-1]) == events[-1]["text"]
    assert events[-1]["text"] == _post(url, upload).json()["text"]


def test_silence_costs_nothing_and_too_long_audio_is_refused_before_decoding(url):
    silence = np.zeros(int(MAX_AUDIO_S - 10) * SAMPLE_RATE, np.float32)
    started = time.perf_counter()
    reply = _post(url, wav_bytes(silence, format="FLAC"), name="quiet.flac")
    assert reply.status_code == 200 and reply.json()["text"] == ""
    assert time.perf_counter() - started < 10  # no model call: VAD only
    hour = wav_bytes(np.zeros(3600 * SAMPLE_RATE, np.int16), format="FLAC")
    assert len(hour) < MAX_UPLOAD_MB * 1e6  # small in bytes, long in seconds
    refused = _post(url, hour, name="hour.flac")
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "audio_too_long"


def _multipart(fields: list[tuple[str, str | None, bytes]]) -> tuple[dict, bytes]:
    """A multipart body of (name, filename or None, data) parts, and its headers."""
    boundary = "b0undary"
    body = b""
    for name, filename, data in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return {**headers, "Content-Length": str(len(body))}, body


def test_uploads_are_refused_before_the_body_is_read(healthy, url):
    gib = {"Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(1 << 30)}
    status, body, took = raw_post(url, PATH, gib, b"--x\r\n")
    assert status == 401 and took < 2.0  # nothing of the gigabyte was waited for
    status, body, took = raw_post(url, PATH, {**gib, **AUTH}, b"--x\r\n")
    assert status == 413 and b"file_too_large" in body and took < 2.0
    # no Content-Length at all: counted as it arrives, refused at the limit
    chunked = {**AUTH, "Content-Type": gib["Content-Type"], "Transfer-Encoding": "chunked"}
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    chunk = b"x" * 65536
    chunks = [part, *[chunk] * int(MAX_UPLOAD_MB * 20)]
    stream = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks)
    status, body, _ = raw_post(url, PATH, chunked, stream + b"0\r\n\r\n")
    assert status == 413


def test_malformed_requests_get_a_clear_400_after_the_key(healthy, url, speech):
    clip = wav_bytes(speech[1][0])
    headers, body = _multipart([("model", None, b"teacher-ct2")])
    assert raw_post(url, PATH, headers, body)[0] == 401  # the key first, then the form
    status, reply, _ = raw_post(url, PATH, {**headers, **AUTH}, body)
    assert status == 400 and b"file: field required" in reply
    twice = _multipart([("file", "a.wav", clip), ("file", "b.wav", clip)])
    status, reply, _ = raw_post(url, PATH, {**twice[0], **AUTH}, twice[1])
    assert status == 400 and b"one per request, got 2" in reply
    junk = _post(url, np.random.default_rng(0).bytes(5000))
    message = junk.json()["error"]["message"]
    assert junk.status_code == 400 and "object at 0x" not in message and "<upload>" in message
    plain = requests.post(url + PATH, data=b"hello", headers=AUTH, timeout=10)
    assert plain.status_code == 400 and "multipart/form-data" in plain.json()["error"]["message"]


async def _hold_streams(url: str, n: int):
    """Open `n` streams at once and keep the admitted ones open; returns, per stream, the
    first event and the close (code, reason) of the refused ones."""
    import websockets

    sockets = [await websockets.connect(ws_url(url), additional_headers=AUTH) for _ in range(n)]
    for ws in sockets:
        with contextlib.suppress(websockets.ConnectionClosed):  # a refused one may be closed
            await ws.send(json.dumps({"type": "config"}))
    first = [json.loads(await ws.recv()) for ws in sockets]  # what came before any close
    closes = []
    for ws, event in zip(sockets, first, strict=True):
        if event["type"] == "error":
            await ws.wait_closed()
            closes.append((ws.close_code, ws.close_reason))
    for ws in sockets:
        await ws.close()
    return first, closes


def test_the_stream_cap_refuses_with_an_error_event_then_a_close(healthy, url):
    open_now = requests.get(url + "/healthz", timeout=10).json()["active_streams"]
    assert open_now == 1  # the healthy stream
    first, closes = asyncio.run(_hold_streams(url, MAX_STREAMS + 1))
    assert [e["type"] for e in first].count("ready") == MAX_STREAMS - open_now
    assert [e["type"] for e in first].count("error") == 2  # the event always comes first
    assert closes == [(1013, f"server is at its limit of {MAX_STREAMS} streams")] * 2


def test_idle_counts_from_the_last_frame(healthy, url, speech):
    async def idle_after_audio():
        import websockets

        async with websockets.connect(ws_url(url), additional_headers=AUTH) as ws:
            await ws.send(json.dumps({"type": "config"}))
            await ws.send((speech[1][0][:SAMPLE_RATE] * 32767).astype("<i2").tobytes())
            sent = time.perf_counter()
            with contextlib.suppress(websockets.ConnectionClosed):
                async for _ in ws:
                    pass
            return time.perf_counter() - sent, ws.close_code, ws.close_reason

    took, code, reason = asyncio.run(idle_after_audio())
    assert code == 1008 and reason == f"idle for {IDLE_S:g} s"
    assert IDLE_S - 0.1 < took < 1.5 * IDLE_S + 1.0


def test_a_stream_without_audio_ends_normally(healthy, url):
    config, end = json.dumps({"type": "config"}), json.dumps({"type": "end"})
    code, _, events = asyncio.run(exchange(url, [config, end], AUTH))
    assert code == 1000 and events[-1] == {"type": "done", "audio_seconds": 0.0}


def test_a_client_past_its_window_is_closed_at_once(healthy, url, speech):
    """The close comes when the frame past the window arrives, not once the model has
    worked through the window of audio queued before it."""
    audio = np.tile(np.concatenate(speech[1]), 3)[: 30 * SAMPLE_RATE]
    pcm = (audio * 32767).astype("<i2").tobytes()
    frames = [pcm[i : i + 16000] for i in range(0, len(pcm), 16000)]
    config = json.dumps({"type": "config"})
    code, reason, events = asyncio.run(exchange(url, [config, *frames], AUTH))
    assert code == 1008 and "flow-control window" in reason
    acked = [e["audio_seconds"] for e in events if e["type"] == "ack"]
    assert max(acked, default=0.0) < WINDOW_S  # the queued window was not decoded first
    assert events[-1]["type"] == "error"


def test_every_refusal_is_counted_by_the_replica_that_answered(url):
    def errors(text: str, reason: str, replica: str) -> float:
        labels = f'reason="{reason}",replica="{replica}",route="transcriptions"'
        key = f"audiodistill_errors_total{{{labels}}}"
        found = [line.split()[-1] for line in text.splitlines() if line.startswith(key)]
        return float(found[0]) if found else 0.0

    health = requests.get(url + "/healthz", timeout=10).json()
    replica = health["replica"]
    assert health["rss_mb"] > 50  # the gateway's own memory, for a benchmark to watch
    before = requests.get(url + "/metrics", timeout=10).text
    assert (
        raw_post(url, PATH, {"Content-Type": "text/plain", "Content-Length": "0"}, b"")[0] == 401
    )
    assert _post(url, b"", name="empty.wav").status_code == 400
    after = requests.get(url + "/metrics", timeout=10).text
    for reason in ("invalid_api_key", "invalid_file"):
        assert errors(after, reason, replica) == errors(before, reason, replica) + 1


def _series(text: str, name: str, **labels: str) -> float:
    """The sum of the Prometheus series `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_same_counts_reach_rays_metrics_export(server, url):
    """Ray's export is what sums right across gateway replicas; it lags by a few seconds."""
    replica = requests.get(url + "/healthz", timeout=10).json()["replica"]
    local = requests.get(url + "/metrics", timeout=10).text
    want = _series(local, "audiodistill_requests_total", route="transcriptions")
    assert want > 0
    exported = 0.0
    for _ in range(30):
        text = requests.get(f"http://127.0.0.1:{server[1]}/metrics", timeout=10).text
        name = "ray_audiodistill_requests_total"
        exported = _series(text, name, route="transcriptions", replica=replica)
        if exported == want:
            break
        time.sleep(1.0)
    assert exported == want


def test_the_healthy_stream_beside_them_was_served_whole(healthy, url):
    thread, audio, result = healthy
    thread.join(timeout=120)
    stream = result["stream"]
    assert stream.close_code == 1000
    assert stream.text() == _post(url, wav_bytes(audio)).json()["text"]
