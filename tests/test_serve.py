"""The Ray Serve app on loopback: HTTP API (with the official openai SDK), WebSocket
streams, limits, and bad input while a healthy stream runs beside it."""

import asyncio
import io
import json
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf

from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.edge.recognizer import load_onnx_model
from audiodistill.testing.loopback import exchange, free_port, wav_bytes, ws_url

pytestmark = pytest.mark.integration
KEY = "test-key"
WINDOW_S = 4.0  # flow-control window: small, so a short test stream runs into it
AUTH = {"Authorization": f"Bearer {KEY}"}
# the released whisper-causal student: streamed natively, its encoder state in the gateway
CAUSAL = Path(__file__).resolve().parent.parent / "models" / "whisper-tiny-en-causal"
# teacher:hf-fill, the teacher with the window fill: a fast teacher that gives no word times
MODELS = ["tiny-stream", "teacher-ct2", "tiny-whisper-onnx", CAUSAL.name, "teacher-hf-fill"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import ray
    from ray import serve as ray_serve

    from audiodistill.export.exporter import export_onnx
    from audiodistill.testing.dummies import save_untrained_streaming_student
    from serve.app import start
    from serve.options import DeploymentOptions, LimitOptions, ServeOptions

    root = tmp_path_factory.mktemp("serve")
    student = save_untrained_streaming_student(root / "tiny-stream")
    # a released student is an ONNX export: the causal Whisper architecture, run on the edge
    # runtime inside the gateway
    whisper = save_untrained_streaming_student(root / "whisper-student", architecture="whisper")
    export_onnx(whisper, root / "tiny-whisper-onnx", int8=True)
    limits = LimitOptions(
        max_upload_mb=1.0, idle_timeout_s=5.0, send_timeout_s=3.0, window_s=WINDOW_S
    )
    options = ServeOptions(
        models=(
            student,
            "teacher:ct2",
            str(root / "tiny-whisper-onnx"),
            str(CAUSAL),
            "teacher:hf-fill",
        ),  # fmt: skip
        deployment=DeploymentOptions(num_cpus=0.25),  # five models and the gateway on 2 CPUs
        port=free_port(),
        api_key=KEY,
        limits=limits,
        blocking=False,
    )
    url = start(options)
    yield url, student, root / "tiny-whisper-onnx"
    ray_serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def offline(server, speech):
    """Offline transcripts of the test clip by both served models, computed in-process."""
    from audiodistill.edge.causal import OnnxCausalWhisper
    from audiodistill.evaluation.measurement import load_eval_model
    from audiodistill.students.streaming import load_student
    from audiodistill.teachers import TeacherOptions, build_teacher

    _, clips = speech
    clip = clips[1]
    teacher = build_teacher(TeacherOptions(backend="ct2", threads=1))
    return clip, {
        "teacher-ct2": teacher.transcribe([clip])[0].text.strip(),
        "tiny-stream": load_student(server[1]).transcribe([clip])[0],
        "tiny-whisper-onnx": load_onnx_model(server[2], int8=True).transcribe([clip])[0],
        CAUSAL.name: OnnxCausalWhisper(CAUSAL, int8=True).transcribe([clip])[0],
        "teacher-hf-fill": load_eval_model("teacher:hf-fill").transcribe([clip])[0].strip(),
    }


async def _exchange(url, messages, headers=AUTH, read_timeout=20.0):
    return await exchange(url, messages, headers, read_timeout)


def _config(**fields) -> str:
    return json.dumps({"type": "config", **fields})


def test_health_models_and_auth(server):
    url = server[0]
    assert requests.get(f"{url}/healthz", timeout=10).json()["status"] == "ok"
    denied = requests.get(f"{url}/v1/models", timeout=10)
    assert denied.status_code == 401 and "API key" in denied.json()["error"]["message"]
    models = requests.get(f"{url}/v1/models", headers=AUTH, timeout=10).json()
    assert [m["id"] for m in models["data"]] == MODELS
    streaming = {m["id"]: m["streaming"] for m in models["data"]}
    assert streaming == {"tiny-stream": True, "teacher-ct2": False, "tiny-whisper-onnx": True,
                         CAUSAL.name: True, "teacher-hf-fill": False}  # fmt: skip
    timed = {m["id"] for m in models["data"] if m["word_times"]}
    assert timed == set(MODELS) - {"teacher-hf-fill"}


def test_openai_sdk_works_unchanged(server, offline):
    import openai

    url = server[0]
    clip, expected = offline
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY)
    assert [m.id for m in client.models.list()] == MODELS
    upload = ("clip.wav", wav_bytes(clip))
    result = client.audio.transcriptions.create(model="teacher-ct2", file=upload)
    assert result.text == expected["teacher-ct2"]
    released = client.audio.transcriptions.create(model="tiny-whisper-onnx", file=upload)
    sent, _ = sf.read(io.BytesIO(upload[1]), dtype="float32")  # as 16-bit PCM, like the server
    assert released.text == load_onnx_model(server[2], int8=True).transcribe([sent])[0]
    text = client.audio.transcriptions.create(
        model="teacher-ct2", file=upload, response_format="text"
    )
    assert text.strip() == expected["teacher-ct2"]
    verbose = client.audio.transcriptions.create(
        model="teacher-ct2", file=upload, response_format="verbose_json"
    )
    assert verbose.segments and verbose.duration == pytest.approx(len(clip) / SAMPLE_RATE, 0.01)
    srt = client.audio.transcriptions.create(
        model="teacher-ct2", file=upload, response_format="srt"
    )
    assert srt.startswith("1\n00:00:0") and "-->" in srt
    stream = client.audio.transcriptions.create(model="teacher-ct2", file=upload, stream=True)
    events = list(stream)
    assert [e.type for e in events][-1] == "transcript.text.done"
    assert events[-1].text == "".join(e.delta for e in events[:-1])
    with pytest.raises(openai.BadRequestError, match="could not read the audio"):
        client.audio.transcriptions.create(model="teacher-ct2", file=("x.wav", b"not audio" * 9))
    with pytest.raises(openai.NotFoundError, match="not served"):
        client.audio.transcriptions.create(model="whisper-9", file=upload)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong").models.list()


def test_word_timestamps_through_the_sdk(server, offline):
    """timestamp_granularities=["word", "segment"], as the SDK sends it: verbose_json gets
    OpenAI's `words`, and srt one cue per word."""
    import openai

    url = server[0]
    clip, expected = offline
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY)
    upload = ("clip.wav", wav_bytes(clip))
    asked = {"timestamp_granularities": ["word", "segment"]}
    verbose = client.audio.transcriptions.create(
        model="teacher-ct2", file=upload, response_format="verbose_json", **asked
    )
    assert " ".join(w.word for w in verbose.words) == verbose.text == expected["teacher-ct2"]
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts)
    assert all(w.start < w.end <= verbose.duration for w in verbose.words)
    assert verbose.words[0].start >= verbose.segments[0].start
    srt = client.audio.transcriptions.create(
        model="tiny-whisper-onnx", file=upload, response_format="srt", **asked
    )
    cues = [block.split("\n")[2] for block in srt.strip().split("\n\n")]
    plain = client.audio.transcriptions.create(model="tiny-whisper-onnx", file=upload)
    assert " ".join(cues) == plain.text


@pytest.mark.parametrize("model", ["teacher-ct2", "tiny-whisper-onnx", CAUSAL.name])
def test_stream_finals_carry_words_when_asked(server, offline, model):
    """A Whisper-type model (its words lane), a CTC student (frames in the gateway), and
    whisper-causal (its decoder's cross-attention, in the gateway)."""
    url = server[0]
    clip, _ = offline
    pcm = (clip * 32767).astype("<i2").tobytes()
    pieces = [pcm[i : i + 6400] for i in range(0, len(pcm), 6400)]
    messages = [_config(model=model, words=True), *pieces, '{"type": "end"}']
    code, _, events = asyncio.run(_exchange(url, messages))
    finals = [e for e in events if e["type"] == "final"]
    assert code == 1000 and finals and all("words" not in e for e in events if e["type"] != "final")
    for final in finals:
        assert " ".join(w["word"] for w in final["words"]) == final["text"]
        assert all(final["start"] - 0.5 <= w["start"] <= w["end"] <= final["end"] + 0.5
                   for w in final["words"])  # fmt: skip


def test_prompt_guides_whisper_models_and_is_ignored_by_ctc(server):
    """OpenAI's `prompt` reaches the Whisper decoder as previous text, in every format."""
    import openai

    from audiodistill.testing.speech import speak

    url = server[0]
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY)
    upload = ("named.wav", wav_bytes(speak(("I think the wooden engine belongs to Debra.",))[0]))
    plain = client.audio.transcriptions.create(model="teacher-ct2", file=upload)
    assert "Deborah" in plain.text  # tiny.en's spelling without a prompt
    guided = client.audio.transcriptions.create(model="teacher-ct2", file=upload, prompt="Debra")
    assert "Debra." in guided.text
    srt = client.audio.transcriptions.create(
        model="teacher-ct2", file=upload, prompt="Debra", response_format="srt"
    )
    assert "Debra." in srt
    models = {m["id"]: m for m in requests.get(f"{url}/v1/models", headers=AUTH).json()["data"]}
    assert models["teacher-ct2"]["takes_prompt"] and not models["tiny-stream"]["takes_prompt"]
    ctc = client.audio.transcriptions.create(model="tiny-stream", file=upload, prompt="Debra")
    assert ctc.text == client.audio.transcriptions.create(model="tiny-stream", file=upload).text


@pytest.mark.parametrize("model", MODELS)
def test_stream_finals_equal_the_offline_transcript(server, offline, model):
    from audiodistill.online.client import stream_audio

    url = server[0]
    clip, expected = offline
    result = asyncio.run(stream_audio(url, clip, model, realtime=False, api_key=KEY))
    assert result.close_code == 1000
    types = [r.event["type"] for r in result.events]
    assert types[0] == "ready" and types[-1] == "done" and "partial" in types
    assert result.text() == expected[model]


def test_causal_streams_run_side_by_side_without_mixing(server, speech):
    """Two whisper-causal streams at once, each with its own encoder state in the gateway,
    give what each clip gives alone; a model with no word times (the filled teacher)
    refuses to be asked for them, on a stream and on an upload."""
    from audiodistill.edge.causal import OnnxCausalWhisper
    from audiodistill.online.client import stream_audio

    url, clips = server[0], speech[1][:2]
    alone = OnnxCausalWhisper(CAUSAL, int8=True).transcribe(clips)

    async def both():
        return await asyncio.gather(
            *(stream_audio(url, clip, CAUSAL.name, True, 100, KEY) for clip in clips)
        )

    results = asyncio.run(both())
    assert [r.close_code for r in results] == [1000, 1000]
    assert [r.text() for r in results] == alone
    messages = [_config(model="teacher-hf-fill", words=True), '{"type": "end"}']
    code, reason, _ = asyncio.run(_exchange(url, messages))
    assert code == 1007 and "word times" in reason
    refused = requests.post(
        f"{url}/v1/audio/transcriptions",
        files={"file": ("a.wav", wav_bytes(clips[0]))},
        data={
            "model": "teacher-hf-fill",
            "response_format": "verbose_json",
            "timestamp_granularities[]": "word",
        },  # fmt: skip
        headers=AUTH,
        timeout=60,
    )
    assert refused.status_code == 400 and "word times" in refused.json()["error"]["message"]


def test_fast_client_is_served_within_the_flow_control_window(server, speech):
    """A client sending 40 s of audio flat out is served, never more than a window ahead."""
    from audiodistill.online.client import stream_audio

    url = server[0]
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    audio = np.concatenate([part for clip in speech[1] for part in (clip, pause)] * 3)
    assert len(audio) / SAMPLE_RATE > 8 * WINDOW_S
    result = asyncio.run(stream_audio(url, audio, "tiny-stream", realtime=False, api_key=KEY))
    assert result.close_code == 1000
    events = [r.event for r in result.events]
    assert events[0]["window_s"] == WINDOW_S
    assert events[-1]["audio_seconds"] == pytest.approx(len(audio) / SAMPLE_RATE, abs=0.01)
    acks = [(r.at, r.event["audio_seconds"]) for r in result.events if r.event["type"] == "ack"]
    assert len(acks) >= 4 * len(audio) / SAMPLE_RATE / WINDOW_S - 2
    # every frame went out with less than a window of audio past the newest ack
    for seconds, at in result.piece_sent_at:
        acked = max((a for t, a in acks if t < at), default=0.0)
        chunk = 0.1  # stream_audio's default frame
        assert seconds - chunk - acked < WINDOW_S + 1e-6


def test_resampled_float_stream(server, offline):
    """8 kHz f32le audio is resampled to 16 kHz on the way in."""
    import soxr

    url = server[0]
    clip, expected = offline
    narrow = soxr.resample(clip, SAMPLE_RATE, 8000).astype("<f4")
    pieces = [narrow[i : i + 999].tobytes() for i in range(0, len(narrow), 999)]
    config = _config(model="teacher-ct2", sample_rate=8000, encoding="f32le")
    code, _, events = asyncio.run(_exchange(url, [config, *pieces, '{"type": "end"}']))
    assert code == 1000
    finals = " ".join(e["text"] for e in events if e["type"] == "final")
    assert finals.lower().rstrip(".") == expected["teacher-ct2"].lower().rstrip(".")


BAD_STREAMS = {  # name: (messages, headers, expected close code, words in the reason)
    "audio before config": ([b"\x00\x01" * 100], AUTH, 1003, "config"),
    "malformed config": (["{not json"], AUTH, 1007, "JSON"),
    "unsupported encoding": ([_config(encoding="mp3")], AUTH, 1007, "encoding"),
    "absurd sample rate": ([_config(sample_rate=1)], AUTH, 1007, "sample_rate"),
    "unknown field": ([_config(rate=16000)], AUTH, 1007, "rate"),
    "unknown model": ([_config(model="nope")], AUTH, 1007, "not served"),
    "no api key": ([_config()], {}, 1008, "API key"),
    "oversized frame": ([_config(), b"\x00" * (2 << 20)], AUTH, 1009, "frame"),
    "unknown control": ([_config(), '{"type": "pause"}'], AUTH, 1007, "pause"),
    "nan samples": (
        [_config(encoding="f32le"), np.full(99, np.nan, "<f4").tobytes()],
        AUTH,
        1007,
        "NaN",
    ),
}


async def _bad_streams(url) -> dict:
    results = await asyncio.gather(
        *(_exchange(url, messages, headers) for messages, headers, _, _ in BAD_STREAMS.values())
    )
    return dict(zip(BAD_STREAMS, results, strict=True))


async def _abrupt_disconnect(url, clip) -> None:
    import websockets

    ws = await websockets.connect(ws_url(url), additional_headers=AUTH)
    await ws.send(_config(model="teacher-ct2"))
    await ws.send((clip[: SAMPLE_RATE * 2] * 32767).astype("<i2").tobytes())
    ws.transport.abort()  # no close frame, no end message


async def _flooder(url, clip) -> tuple[int, str]:
    """Sends two minutes of audio as fast as it can, reading no event until it has sent it
    all (or the server has closed); then drains what is left to see the close."""
    import websockets

    async with websockets.connect(ws_url(url), additional_headers=AUTH, max_queue=1) as ws:
        await ws.send(_config(model="tiny-stream"))
        audio = (np.tile(clip, 40)[: 120 * SAMPLE_RATE] * 32767).astype("<i2").tobytes()
        try:
            for i in range(0, len(audio), 32000):
                await ws.send(audio[i : i + 32000])
            async with asyncio.timeout(30):
                async for _ in ws:
                    pass
        except websockets.ConnectionClosed:
            pass
        return ws.close_code, ws.close_reason


def _http_bad_inputs(url, clip) -> dict:
    wav = wav_bytes(clip)
    post = f"{url}/v1/audio/transcriptions"

    def send(data, **fields):
        return requests.post(
            post, files={"file": ("a.wav", data)}, data=fields, headers=AUTH, timeout=60
        )

    return {
        "non-audio": send(b"GIF89a" + bytes(range(256)) * 20),
        "truncated header": send(wav[:30]),
        "empty": send(b""),
        "oversize": send(b"\x00" * 1_500_000),
        "bad format": send(wav, response_format="mp4"),
        "bad language": send(wav, model="teacher-ct2", language="fr"),
        "truncated data": send(wav[: len(wav) // 2]),  # readable: transcribed, not refused
    }


def test_bad_input_fails_alone_while_a_healthy_stream_finishes(server, offline):
    from audiodistill.online.client import stream_audio

    url = server[0]
    clip, expected = offline

    async def scenario():
        healthy = asyncio.create_task(stream_audio(url, clip, "tiny-stream", True, 100, KEY))
        await asyncio.sleep(0.5)  # the healthy stream is under way
        bad = await _bad_streams(url)
        await _abrupt_disconnect(url, clip)
        flood = await _flooder(url, clip)
        http = await asyncio.to_thread(_http_bad_inputs, url, clip)
        return await healthy, bad, flood, http

    healthy, bad, flood, http = asyncio.run(scenario())
    assert flood[0] == 1008 and "flow-control window" in flood[1]
    assert healthy.close_code == 1000 and healthy.text() == expected["tiny-stream"]
    for name, (code, reason, _) in bad.items():
        _, _, want_code, words = BAD_STREAMS[name]
        assert code == want_code, (name, code, reason)
        assert words.lower() in reason.lower(), (name, reason)
    assert {name: r.status_code for name, r in http.items()} == {
        "non-audio": 400,
        "truncated header": 400,
        "empty": 400,
        "oversize": 413,
        "bad format": 400,
        "bad language": 400,
        "truncated data": 200,
    }
    assert http["oversize"].json()["error"]["code"] == "file_too_large"
    # the server is still healthy and serves the next stream correctly
    assert requests.get(f"{url}/healthz", timeout=10).json()["status"] == "ok"
    again = asyncio.run(stream_audio(url, clip, "tiny-stream", False, 100, KEY))
    assert again.text() == expected["tiny-stream"]
    metrics = requests.get(f"{url}/metrics", timeout=10).text
    assert 'audiodistill_errors_total{reason="1007",replica=' in metrics


def test_idle_stream_is_closed(server):
    code, reason, _ = asyncio.run(_exchange(server[0], [_config()], read_timeout=30))
    assert code == 1008 and "idle" in reason


def test_transcribe_command_streams_and_posts(server, offline, tmp_path, capsys):
    from audiodistill.cli import main

    url = server[0]
    clip, expected = offline
    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes(clip))
    common = ["model=teacher-ct2", f"api_key={KEY}"]
    assert main(["transcribe", str(path), "--url", url, "--http", *common]) == 0
    assert capsys.readouterr().out.strip() == expected["teacher-ct2"]
    ws_url = url.replace("http", "ws", 1)
    assert main(["transcribe", str(path), "--url", ws_url, "chunk_ms=200", *common]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("[") and line.endswith(expected["teacher-ct2"])


def test_a_plan_bigger_than_a_local_ray_is_refused_at_once():
    """Serve would wait forever for replicas that cannot be placed."""
    from serve.app import check_cpus
    from serve.options import DeploymentOptions, ServeOptions

    four = ServeOptions(models=("teacher:ct2", "a", "b", "c"))
    with pytest.raises(ValueError, match="reserve 2.5 CPUs, and this Ray has 2"):
        check_cpus(four, 2.0)
    check_cpus(ServeOptions(models=four.models, deployment=DeploymentOptions(num_cpus=0.25)), 2)
