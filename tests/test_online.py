"""Live-stream recognition without a server: VAD, sessions, both engines, batched steps."""

import asyncio

import numpy as np
import pytest

from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.online.streams import (
    CtcEngine,
    LocalAgreementEngine,
    OnlineOptions,
    OnlineSession,
    agreed_prefix,
    clip_segments,
)
from audiodistill.online.vad import EnergyVad, VadOptions
from audiodistill.students.streaming import chunk_queue, load_student, step_streams
from audiodistill.testing.dummies import save_untrained_streaming_student


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)


def _tone(seconds: float, hz: float = 300.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _pieces(audio: np.ndarray, seed: int = 0):
    """The clip cut at random points, as a network would deliver it."""
    rng = np.random.default_rng(seed)
    start = 0
    while start < len(audio):
        size = int(rng.integers(100, 6000))
        yield audio[start : start + size]
        start += size


async def _run(session: OnlineSession, audio: np.ndarray) -> list:
    events = []
    for piece in _pieces(audio):
        events += await session.accept(piece)
    return events + await session.finish()


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return load_student(save_untrained_streaming_student(tmp_path_factory.mktemp("s") / "m"))


def _ctc_session(student, options: OnlineOptions | None = None) -> OnlineSession:
    chunk = 32  # feature frames (320 ms)

    async def step(features, state):
        return step_streams(student.model, [features], [state], chunk)[0]

    config = student.model.config
    queue = chunk_queue(config, chunk)
    engine = CtcEngine(step, student.decoder, queue, config.feature_pad_samples)
    return OnlineSession(engine, options or OnlineOptions())


def test_vad_labels_tone_as_speech_and_silence_not():
    vad = EnergyVad()
    flags = vad.accept(np.concatenate([_silence(0.3), _tone(0.3), _silence(0.3)]))
    assert flags == [False] * 10 + [True] * 10 + [False] * 10


def test_vad_ignores_steady_noise():
    noise = np.random.default_rng(0).normal(0, 0.003, 3 * SAMPLE_RATE).astype(np.float32)
    assert not any(EnergyVad().accept(noise))


def test_clip_segments_split_only_at_long_pauses():
    options = OnlineOptions(vad=VadOptions(min_silence_ms=600))
    audio = np.concatenate(
        [_silence(0.3), _tone(0.6), _silence(0.3), _tone(0.6), _silence(1.0), _tone(0.6)]
    )
    segments = clip_segments(audio, options)
    spans = np.array([(s.speech_start, s.speech_end) for s in segments]) / SAMPLE_RATE
    # the 0.3 s pause does not split; edges are exact to one 30 ms frame
    np.testing.assert_allclose(spans, [(0.3, 1.8), (2.8, 3.4)], atol=0.03)
    # together the segments cover the clip up to the last speech: no audio is skipped
    assert segments[0].start == 0 and segments[1].start == segments[0].end


def test_clip_segments_are_bounded_and_skip_silence():
    options = OnlineOptions(max_segment_s=5.0)
    audio = np.concatenate([_silence(30.0), _tone(12.0), _silence(30.0)])
    segments = clip_segments(audio, options)
    lengths = [(s.end - s.start) / SAMPLE_RATE for s in segments]
    assert len(segments) == 3 and max(lengths) <= 5.0 + 0.1
    # 30 s of leading silence is dropped two seconds at a time, never sent to a model
    assert segments[0].start >= 28 * SAMPLE_RATE
    assert clip_segments(_silence(600.0), options) == []


def test_clip_segments_equal_a_live_sessions_finals(speech):
    """What a whole file is cut into equals what a stream of it closes, so the HTTP text
    (each segment transcribed) equals the stream's finals."""
    _, clips = speech
    gap = _silence(1.0)
    audio = np.concatenate([gap, clips[0], gap, clips[1], _silence(0.2), clips[2], gap])

    async def transcribe(piece):  # a stand-in model: the text says which audio it got
        return f"{len(piece)} {float(np.abs(piece).sum()):.3f}"

    options = OnlineOptions(max_segment_s=4.0)
    session = OnlineSession(LocalAgreementEngine(transcribe, 1.0), options)
    finals = [e for e in asyncio.run(_run(session, audio)) if e.type == "final"]
    segments = clip_segments(audio, options)
    offline = [asyncio.run(transcribe(audio[s.start : s.end])) for s in segments]
    assert [f.text for f in finals] == offline and len(finals) >= 3
    times = [(s.speech_start / SAMPLE_RATE, s.speech_end / SAMPLE_RATE) for s in segments]
    np.testing.assert_allclose([(f.start, f.end) for f in finals], times, atol=1e-3)


def test_agreed_prefix():
    assert agreed_prefix("a b c".split(), "a b d".split()) == ["a", "b"]
    assert agreed_prefix([], ["a"]) == []


def test_batched_steps_equal_one_stream_at_a_time(student):
    rng = np.random.default_rng(0)
    chunks = [rng.normal(size=(32, 80)).astype(np.float32) for _ in range(3)]
    alone, state = [], None
    for chunk in chunks[:2]:
        logprobs, state = step_streams(student.model, [chunk], [state], 32)[0]
        alone.append(logprobs)
    # stream A's second chunk batched with a new stream B's first chunk and a short chunk
    first_a = step_streams(student.model, [chunks[0]], [None], 32)[0]
    batch = step_streams(
        student.model, [chunks[1], chunks[2], chunks[2][:12]], [first_a[1], None, None], 32
    )
    np.testing.assert_allclose(batch[0][0], alone[1], atol=1e-4)
    for key in batch[0][1]:
        np.testing.assert_allclose(batch[0][1][key], state[key], atol=1e-5)
    fresh = step_streams(student.model, [chunks[2]], [None], 32)[0][0]
    np.testing.assert_allclose(batch[1][0], fresh, atol=1e-4)
    assert batch[2][0].shape == (3, student.model.config.vocab_size)  # 12 frames / 4


def test_ctc_final_equals_the_offline_transcript(student, speech):
    _, clips = speech
    audio = np.concatenate([_silence(0.2), clips[0]])
    events = asyncio.run(_run(_ctc_session(student), audio))
    finals = [e for e in events if e.type == "final"]
    assert len(finals) == 1
    assert finals[0].text == student.transcribe([audio])[0]
    assert 0.0 <= finals[0].start < finals[0].end <= len(audio) / SAMPLE_RATE
    partials = [e for e in events if e.type == "partial"]
    assert partials and all(p.end <= len(audio) / SAMPLE_RATE for p in partials)


def test_pauses_close_segments_and_silence_gives_no_text(student, speech):
    _, clips = speech
    audio = np.concatenate([clips[0], _silence(1.5), clips[1], _silence(3.0)])
    events = asyncio.run(_run(_ctc_session(student), audio))
    finals = [e for e in events if e.type == "final"]
    assert len(finals) == 2
    assert finals[0].end <= finals[1].start
    assert finals[1].start >= len(clips[0]) / SAMPLE_RATE
    assert asyncio.run(_run(_ctc_session(student), _silence(5.0))) == []


def test_long_speech_is_cut_at_max_segment(student, speech):
    options = OnlineOptions(max_segment_s=2.0)
    audio = np.concatenate(speech[1][:3])  # ~6 s, no pause long enough to close a segment
    events = asyncio.run(_run(_ctc_session(student, options), audio))
    finals = [e for e in events if e.type == "final"]
    assert len(finals) >= 2
    assert all(f.end - f.start <= 2.5 for f in finals)


def test_local_agreement_commits_only_what_two_hypotheses_agree_on():
    hypotheses = iter(["the cat", "the cat sat", "the cat sat on", "a dog"])

    async def transcribe(audio):
        return next(hypotheses)

    engine = LocalAgreementEngine(transcribe, decode_every_s=0.5)
    piece = _tone(0.5)
    texts = [asyncio.run(engine.accept(piece, speech=True)) for _ in range(3)]
    assert texts == ["the cat", "the cat sat", "the cat sat on"]
    assert engine._committed == ["the", "cat", "sat"]
    assert asyncio.run(engine.end_segment(flush=True)) == "a dog"  # one decode of it all


def test_speech_events_announce_every_segment_even_without_text():
    """With speech_events, a segment is announced when it counts as speech and closes with a
    final even when its text is empty (the Realtime API ends every turn it announced)."""

    async def transcribe(audio):
        return ""  # a model that hears no words

    audio = np.concatenate([_silence(0.5), _tone(1.0), _silence(1.0), _tone(1.0)])
    session = OnlineSession(LocalAgreementEngine(transcribe), speech_events=True)
    events = asyncio.run(_run(session, audio))
    assert [(e.type, e.text) for e in events] == [("speech", ""), ("final", "")] * 2
    assert events[0].start == pytest.approx(0.5, abs=0.05)
    assert events[2].start == pytest.approx(2.5, abs=0.05)
    assert asyncio.run(_run(OnlineSession(LocalAgreementEngine(transcribe)), audio)) == []


def test_local_agreement_final_equals_the_offline_teacher(speech):
    from audiodistill.teachers import TeacherOptions, build_teacher

    teacher = build_teacher(TeacherOptions(backend="ct2", threads=2))
    calls = []

    async def transcribe(audio):
        calls.append(len(audio))
        return teacher.transcribe([audio])[0].text

    _, clips = speech
    session = OnlineSession(LocalAgreementEngine(transcribe, 1.0))
    events = asyncio.run(_run(session, clips[1]))
    finals = [e for e in events if e.type == "final"]
    assert [f.text for f in finals] == [teacher.transcribe([clips[1]])[0].text.strip()]
    assert len(calls) >= 2  # partial decodes happened before the final one


def test_pauses_inside_one_large_piece_still_close_segments(student, speech):
    _, clips = speech
    gap = _silence(1.0)
    audio = np.concatenate([clips[0], gap, clips[1], gap, clips[2]])

    async def run(piece_seconds: float):
        session = _ctc_session(student)
        step = int(piece_seconds * SAMPLE_RATE)
        events = []
        for i in range(0, len(audio), step):
            events += await session.accept(audio[i : i + step])
        return [e for e in events + await session.finish() if e.type == "final"]

    small, large = asyncio.run(run(0.1)), asyncio.run(run(20.0))
    assert len(small) == 3
    assert [(f.start, f.end) for f in large] == [(f.start, f.end) for f in small]
    # a final starts where its speech starts, not where the pause before it began
    assert small[1].start >= len(clips[0]) / SAMPLE_RATE + 0.5
