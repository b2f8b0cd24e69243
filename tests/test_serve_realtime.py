"""OpenAI's Realtime transcription API on loopback, driven by the official `openai` SDK's
realtime client, unchanged: turns cut by the server's VAD or committed by the client,
deltas that add up to the completed text, the spec's input formats, errors that keep the
session open, and the key and stream cap as on the rest of the API."""

import asyncio
import base64
import io
import re

import numpy as np
import pytest
import requests
import soundfile as sf

from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.testing.loopback import free_port

pytestmark = pytest.mark.integration
KEY = "realtime-key"
MAX_STREAMS = 3
TRANSCRIBED = "conversation.item.input_audio_transcription."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import ray
    from ray import serve as ray_serve

    from audiodistill.testing.dummies import save_untrained_streaming_student
    from serve.app import start
    from serve.options import LimitOptions, ServeOptions

    student = save_untrained_streaming_student(tmp_path_factory.mktemp("rt") / "tiny-stream")
    options = ServeOptions(
        models=("teacher:ct2", student),
        port=free_port(),
        api_key=KEY,
        limits=LimitOptions(max_streams=MAX_STREAMS, idle_timeout_s=10.0, send_timeout_s=3.0),
        blocking=False,
    )
    url = start(options)
    yield url, student
    ray_serve.shutdown()
    ray.shutdown()


def _heard(clip: np.ndarray) -> tuple[np.ndarray, bytes]:
    """The clip as a client sends it (16-bit PCM at 24 kHz), and as the server hears it
    (resampled back to 16 kHz)."""
    import soxr

    pcm = np.round(soxr.resample(clip, SAMPLE_RATE, 24_000) * 32767).astype("<i2")
    return soxr.resample(pcm / 32768, 24_000, SAMPLE_RATE).astype(np.float32), pcm.tobytes()


@pytest.fixture(scope="module")
def offline(server, speech):
    """Each clip as sent at 24 kHz, and its offline transcripts by both served models
    (computed in-process, from the audio the server hears)."""
    from audiodistill.students.streaming import load_student
    from audiodistill.teachers import TeacherOptions, build_teacher

    teacher = build_teacher(TeacherOptions(backend="ct2", threads=1))
    student = load_student(server[1])
    heard = [_heard(clip) for clip in speech[1][:2]]
    return [
        (
            pcm,
            {
                "teacher-ct2": teacher.transcribe([audio])[0].text.strip(),
                "tiny-stream": student.transcribe([audio])[0].strip(),
            },
        )
        for audio, pcm in heard
    ]


def _client(url: str, key: str = KEY):
    import openai

    port = url.rsplit(":", 1)[1]
    return openai.AsyncOpenAI(
        base_url=f"{url}/v1", api_key=key, websocket_base_url=f"ws://127.0.0.1:{port}/v1"
    )


def _connect(url: str, key: str = KEY, **kwargs):
    return _client(url, key).realtime.connect(extra_query={"intent": "transcription"}, **kwargs)


def _session(model: str, server_vad: bool = True, format: dict | None = None) -> dict:
    turn = {"type": "server_vad"} if server_vad else None
    audio_input = {
        "format": format or {"type": "audio/pcm", "rate": 24000},
        "transcription": {"model": model, "language": "en"},
        "turn_detection": turn,
        "noise_reduction": {"type": "near_field"},
    }
    return {"type": "transcription", "audio": {"input": audio_input}}


async def _append(conn, data: bytes, chunk_bytes: int = 4800) -> None:
    """Audio in 100 ms events (24 kHz 16-bit), as a microphone client sends it."""
    for i in range(0, len(data), chunk_bytes):
        await conn.input_audio_buffer.append(
            audio=base64.b64encode(data[i : i + chunk_bytes]).decode()
        )


async def _events_until(conn, done, timeout: float = 60.0) -> list:
    """Server events up to and including the first for which done(events) is true."""
    events = []
    async with asyncio.timeout(timeout):
        while not events or not done(events):
            events.append(await conn.recv())
    return events


def _completed(n: int):
    return lambda events: sum(e.type == TRANSCRIBED + "completed" for e in events) == n


def _deltas(events, item_id: str) -> str:
    return "".join(
        e.delta for e in events if e.type == TRANSCRIBED + "delta" and e.item_id == item_id
    )


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


@pytest.mark.parametrize("model", ["teacher-ct2", "tiny-stream"])
def test_client_commit_gives_the_offline_transcript(server, offline, model):
    """Turn detection off: the client commits; the completed text is the model's offline
    transcript of the same audio, and its deltas add up to it."""
    pcm, expected = offline[1]

    async def run():
        async with _connect(server[0]) as conn:
            await conn.session.update(session=_session(model, server_vad=False))
            await _append(conn, pcm)
            await conn.input_audio_buffer.commit()
            return await _events_until(conn, _completed(1))

    events = asyncio.run(run())
    types = [e.type for e in events]
    assert types[:2] == ["session.created", "session.updated"]
    assert events[1].session.audio.input.transcription.model == model
    assert events[1].session.audio.input.turn_detection is None
    assert "input_audio_buffer.speech_started" not in types  # no VAD events without VAD
    committed, completed = events[types.index("input_audio_buffer.committed")], events[-1]
    assert committed.item_id == completed.item_id and committed.previous_item_id is None
    assert completed.transcript == expected[model]
    assert _deltas(events, completed.item_id) == completed.transcript
    assert completed.usage.seconds == pytest.approx(len(pcm) / 2 / 24_000, abs=0.01)
    if model == "tiny-stream":  # a streaming student's text arrives while audio does
        first_delta = types.index(TRANSCRIBED + "delta")
        assert first_delta < types.index("input_audio_buffer.committed")


def test_server_vad_cuts_turns_at_pauses(server, offline):
    """Two sentences with pauses: two turns, each announced, stopped, committed and
    transcribed as the teacher transcribes its sentence alone."""
    pause = np.zeros(24_000, "<i2").tobytes()  # 1 s at 24 kHz
    audio = pause[:9600] + offline[0][0] + pause + offline[1][0] + pause

    async def run():
        async with _connect(server[0], model="teacher-ct2") as conn:
            await _append(conn, audio)
            return await _events_until(conn, _completed(2))

    events = asyncio.run(run())
    assert events[0].type == "session.created"
    assert events[0].session.audio.input.turn_detection.type == "server_vad"  # the default
    turns = [e for e in events if e.type.startswith("input_audio_buffer.")]
    kinds = [e.type.split(".")[-1] for e in turns]
    assert kinds == ["speech_started", "speech_stopped", "committed"] * 2
    completed = [e for e in events if e.type == TRANSCRIBED + "completed"]
    assert [e.item_id for e in turns[:3]] == [completed[0].item_id] * 3
    assert turns[5].previous_item_id == completed[0].item_id
    # where the speech is: 0.2 s of silence, then the first sentence
    assert 150 <= turns[0].audio_start_ms < turns[1].audio_end_ms < turns[3].audio_start_ms
    for (_, expected), done in zip(offline, completed, strict=True):
        assert _words(done.transcript) == _words(expected["teacher-ct2"])
        assert _deltas(events, done.item_id) == done.transcript


def test_word_times_on_completed_events_when_included(server, offline):
    """`include: ["item.input_audio_transcription.words"]` (this server's extension): each
    completed turn carries its words, timed from the connection's first audio."""
    pause = np.zeros(24_000, "<i2").tobytes()  # 1 s at 24 kHz
    audio = offline[0][0] + pause + offline[1][0] + pause
    session = {**_session("teacher-ct2"), "include": ["item.input_audio_transcription.words"]}

    async def run():
        async with _connect(server[0]) as conn:
            await conn.session.update(session=session)
            await _append(conn, audio)
            return await _events_until(conn, _completed(2))

    events = asyncio.run(run())
    stopped = [e for e in events if e.type == "input_audio_buffer.speech_stopped"]
    completed = [e for e in events if e.type == TRANSCRIBED + "completed"]
    for done, stop in zip(completed, stopped, strict=True):
        words = done.model_extra["words"]
        assert " ".join(w["word"] for w in words) == done.transcript
        times = [t for w in words for t in (w["start"], w["end"])]
        assert times == sorted(times) and times[-1] <= stop.audio_end_ms / 1000 + 0.05
    assert completed[1].model_extra["words"][0]["start"] > len(offline[0][0]) / 2 / 24_000


@pytest.mark.parametrize("kind, subtype", [("audio/pcmu", "ULAW"), ("audio/pcma", "ALAW")])
def test_g711_telephone_audio(server, offline, speech, kind, subtype):
    """8 kHz G.711 (encoded by libsndfile) is decoded and transcribed."""
    import soxr

    narrow = soxr.resample(speech[1][1], SAMPLE_RATE, 8000)
    encoded = io.BytesIO()
    sf.write(encoded, narrow, 8000, format="RAW", subtype=subtype)

    async def run():
        async with _connect(server[0]) as conn:
            await conn.session.update(session=_session("teacher-ct2", False, format={"type": kind}))
            await _append(conn, encoded.getvalue(), chunk_bytes=800)
            await conn.input_audio_buffer.commit()
            return await _events_until(conn, _completed(1))

    events = asyncio.run(run())
    assert events[1].session.audio.input.format.type == kind
    assert _words(events[-1].transcript) == _words(offline[1][1]["teacher-ct2"])


def test_bad_events_get_error_events_and_the_session_goes_on(server, offline):
    pcm, expected = offline[1]

    async def run():
        async with _connect(server[0]) as conn:
            await conn.session.update(session=_session("tiny-stream", False))
            await _events_until(conn, lambda e: e[-1].type == "session.updated")
            errors = {}

            async def expect_error(name, send):
                await send()
                event = (await _events_until(conn, lambda e: e[-1].type == "error"))[-1]
                errors[name] = event.error

            await expect_error("response", lambda: conn.response.create(event_id="evt_1"))
            await expect_error("not json", lambda: conn.send_raw("{not json"))
            await expect_error(
                "base64", lambda: conn.input_audio_buffer.append(audio="%%%", event_id="evt_2")
            )
            await expect_error("empty", lambda: conn.input_audio_buffer.commit())
            await expect_error(
                "model", lambda: conn.session.update(session=_session("whisper-9", False))
            )
            await expect_error(
                "language",
                lambda: conn.session.update(
                    session={
                        "type": "transcription",
                        "audio": {"input": {"transcription": {"language": "de"}}},
                    }
                ),
            )
            semantic = {
                "type": "transcription",
                "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}},
            }
            await expect_error("semantic", lambda: conn.session.update(session=semantic))
            # audio in the buffer: no changes to the session until it is cleared
            await _append(conn, pcm[:9600])
            teacher = _session("teacher-ct2", False)
            await expect_error("buffered", lambda: conn.session.update(session=teacher))
            await conn.input_audio_buffer.clear()
            cleared = await _events_until(conn, lambda e: e[-1].type.endswith("cleared"))
            # the session still works, on the settings it had
            await _append(conn, pcm)
            await conn.input_audio_buffer.commit()
            done = (await _events_until(conn, _completed(1)))[-1]
            return errors, cleared, done

    errors, cleared, done = asyncio.run(run())
    assert {name: e.type for name, e in errors.items()} == dict.fromkeys(
        errors, "invalid_request_error"
    )
    assert (errors["response"].code, errors["response"].param) == ("invalid_value", "type")
    assert (
        errors["response"].event_id == "evt_1" and "response.create" in errors["response"].message
    )
    assert errors["not json"].code == "invalid_json"
    assert (errors["base64"].param, errors["base64"].event_id) == ("audio", "evt_2")
    assert errors["empty"].code == "input_audio_buffer_commit_empty"
    assert errors["model"].code == "model_not_found" and "whisper-9" in errors["model"].message
    assert errors["model"].param == "session.audio.input.transcription.model"
    assert errors["language"].code == "unsupported_language"
    assert errors["semantic"].param == "session.audio.input.turn_detection.type"
    assert errors["buffered"].code == "buffer_not_empty"
    assert [e.type for e in cleared] == ["input_audio_buffer.cleared"]  # no item for it
    assert done.transcript == expected["tiny-stream"]


def test_wrong_key_unknown_model_and_the_stream_cap_are_refused(server):
    import websockets

    url = server[0]

    async def refused(**kwargs):
        async with _connect(url, **kwargs) as conn:
            error = await conn.recv()
            with pytest.raises(websockets.ConnectionClosedError) as closed:
                await conn.recv()
            return error.error, closed.value.rcvd.code

    async def over_the_cap():
        while requests.get(f"{url}/healthz", timeout=10).json()["active_streams"]:
            await asyncio.sleep(0.1)  # earlier tests' sessions are closing
        conns = [await _connect(url).enter() for _ in range(MAX_STREAMS)]
        for conn in conns:  # each is open and counted
            assert (await conn.recv()).type == "session.created"
        try:
            return await refused()
        finally:
            for conn in conns:
                await conn.close()

    error, code = asyncio.run(refused(key="wrong"))
    assert (error.code, code) == ("invalid_api_key", 1008)
    error, code = asyncio.run(refused(model="whisper-9"))
    assert (error.code, code) == ("model_not_found", 1007) and "not served" in error.message
    error, code = asyncio.run(over_the_cap())
    assert (error.type, error.code, code) == ("server_error", "server_busy", 1013)
    metrics = requests.get(f"{url}/metrics", timeout=10).text
    assert re.search(r'requests_total\{[^}]*route="realtime",status="1013"[^}]*\} [1-9]', metrics)
    assert re.search(r'requests_total\{[^}]*route="realtime",status="ok"[^}]*\} [1-9]', metrics)


def test_g711_tables_match_libsndfile():
    from serve.realtime import G711_TABLES

    every_byte = bytes(range(256))
    for kind, subtype in (("audio/pcmu", "ULAW"), ("audio/pcma", "ALAW")):
        reference, _ = sf.read(
            io.BytesIO(every_byte),
            samplerate=8000,
            channels=1,
            format="RAW",
            subtype=subtype,
            dtype="int16",
        )
        assert np.array_equal(np.round(G711_TABLES[kind] * 32768), reference)
