"""Word timestamps: CTC frame alignment, cross-attention DTW, the snap to speech, the
known-boundary clips and every model kind's times on them, and the HTTP formats."""

import numpy as np
import pytest
from starlette.datastructures import FormData, UploadFile

from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.decoding.ctc_alignment import ctc_words, forced_path
from audiodistill.decoding.whisper_alignment import alignment_heads, dtw, timed_words, word_groups
from audiodistill.decoding.words import Word, snap_to_speech, words_text
from audiodistill.evaluation.word_timing import errors
from serve import formats, uploads
from serve.formats import ApiError

SYMBOLS = ("", " ", *"abcdefghijklmnopqrstuvwxyz", "'")
TEACHER_TARGET_S, STUDENT_TARGET_S = 0.080, 0.120  # issue 19's mean absolute errors


def _posteriorgram(frames: str) -> np.ndarray:
    """[T, V] log-probs with 90% on each frame's character ("_" is blank) and the rest
    spread evenly."""
    index = {s: i for i, s in enumerate(SYMBOLS)}
    probs = np.full((len(frames), len(SYMBOLS)), 0.1 / (len(SYMBOLS) - 1))
    for t, c in enumerate(frames):
        probs[t, 0 if c == "_" else index[c]] = 0.9
    return np.log(probs)


def test_ctc_words_start_and_end_at_their_characters_frames():
    logprobs = _posteriorgram("__hh_i___ _yy_o__")
    words = ctc_words(logprobs, "hi yo", SYMBOLS, 0, frame_seconds=0.04, offset=1.0)
    assert words == [Word("hi", 1.08, 1.24), Word("yo", 1.44, 1.60)]
    # a repeated character needs a blank between its two frames, and gets it
    assert forced_path(_posteriorgram("_l_l_"), [13, 13], 0).tolist() == [-1, 0, -1, 1, -1]


def test_ctc_alignment_follows_a_text_the_greedy_path_did_not_take():
    """A beam search with an LM may choose characters that lost their frame to blank: the
    alignment still places them, on the frames where they are likeliest."""
    logprobs = _posteriorgram("_a___b_")
    logprobs[3, SYMBOLS.index("c")] = np.log(0.3)  # "c" second to blank at frame 3
    words = ctc_words(logprobs, "acb", SYMBOLS, 0, frame_seconds=0.01)
    assert words == [Word("acb", 0.01, 0.06)]
    assert forced_path(logprobs, [2, 4, 3], 0).tolist()[3] == 1


def test_dtw_path_is_monotonic_and_cheapest():
    cost = np.ones((3, 6))
    cost[0, :2] = cost[1, 2:4] = cost[2, 4:] = 0.0  # each token owns two frames
    tokens, frames = dtw(cost)
    assert tokens.tolist() == [0, 0, 1, 1, 2, 2] and frames.tolist() == [0, 1, 2, 3, 4, 5]


def test_cross_attention_times_words_where_the_heads_look():
    texts = {1: " one", 2: " two", 3: "."}
    decode = lambda ids: "".join(texts[i] for i in ids)  # noqa: E731
    assert word_groups([1, 2, 3], decode) == [[0], [1, 2]]
    weights = np.zeros((2, 4, 60))  # two heads, 3 tokens + end-of-text, 1.2 s of audio
    for row, (a, b) in enumerate([(5, 20), (25, 40), (40, 42), (45, 60)]):
        weights[:, row, a:b] = 1.0
    words = timed_words([1, 2, 3], decode, weights + 1e-3, positions=60)
    assert [w.text for w in words] == ["one", "two."]
    # Whisper's rule: a word ends where the next begins, the first starts at the audio's start
    assert words[0].start == 0.0 and words[0].end == words[1].start
    assert words[1].start == pytest.approx(0.5, abs=0.06) and words[1].end == pytest.approx(
        0.9, abs=0.06
    )


def test_alignment_heads_of_kept_layers_or_the_upper_half():
    assert alignment_heads([[1, 0], [3, 2]], layers=2, heads_per_layer=4) == [(1, 0)]
    assert alignment_heads([[3, 2]], 2, 4) == [(1, h) for h in range(4)]
    assert alignment_heads(None, 4, 2) == [(2, 0), (2, 1), (3, 0), (3, 1)]


def test_shrunk_student_keeps_the_teachers_heads_in_its_own_layer_numbers():
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    from audiodistill.decoding.whisper_greedy import model_alignment_heads
    from audiodistill.students.whisper_distil import shrink_decoder

    config = WhisperConfig(
        vocab_size=100, d_model=16, encoder_layers=1, decoder_layers=4, encoder_ffn_dim=32,
        decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
        max_target_positions=16, decoder_start_token_id=1, eos_token_id=2, pad_token_id=2,
        bos_token_id=2,
    )  # fmt: skip
    teacher = WhisperForConditionalGeneration(config)
    teacher.generation_config = GenerationConfig(alignment_heads=[[1, 0], [2, 1], [3, 0]])
    student = shrink_decoder(teacher, keep=2)  # teacher layers 0 and 3
    assert student.generation_config.alignment_heads == [[1, 0]]
    assert model_alignment_heads(student) == [(1, 0)]
    lost = shrink_decoder(teacher, keep=1)  # layer 3 only: its head 0 is kept
    assert model_alignment_heads(lost) == [(0, 0)]
    teacher.generation_config.alignment_heads = [[1, 0]]  # none in the kept layers
    assert model_alignment_heads(shrink_decoder(teacher, keep=2)) == [(1, 0), (1, 1)]


def _bursts(spans: list[tuple[float, float]], seconds: float = 2.0) -> np.ndarray:
    """Loud noise ("speech") at `spans` over a faint floor."""
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(int(seconds * SAMPLE_RATE)) * 1e-3
    for a, b in spans:
        audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] *= 100
    return audio.astype(np.float32)


def test_snap_moves_edges_out_of_pauses_and_onto_speech():
    audio = _bursts([(0.5, 0.9), (1.2, 1.6)])
    # Whisper-like: the first word from 0, the pause inside a word, ends at the next start
    words = snap_to_speech([Word("a", 0.0, 1.25), Word("b", 1.25, 2.0)], audio)
    assert words == [Word("a", 0.5, 0.9), Word("b", 1.2, 1.6)]
    # CTC-like: narrow spikes grow to their speech, but not into a neighbour
    joined = snap_to_speech([Word("c", 0.55, 0.6), Word("d", 0.7, 0.75)], audio)
    assert joined == [Word("c", 0.5, 0.6), Word("d", 0.7, 0.9)]
    assert snap_to_speech([Word("e", 1.7, 1.9)], audio) == [Word("e", 1.7, 1.9)]  # no speech


def test_errors_score_matched_words_and_joined_boundaries_apart():
    read = [Word("set", 0.0, 0.5), Word("a", 0.5, 0.7), Word("timer", 1.0, 1.5)]
    written = [Word("Set", 0.1, 0.6), Word("a", 0.6, 0.8), Word("tamer.", 1.0, 1.5)]
    scored = errors([read], [written])
    assert scored.start_mae_s == pytest.approx(0.1) and scored.end_mae_s == pytest.approx(0.1)
    assert scored.joined_mae_s == pytest.approx(0.1)  # set|a only: a pause before "timer"


@pytest.fixture(scope="module")
def clips():
    from audiodistill.data.synth.word_clips import SENTENCES, word_clips

    return word_clips(SENTENCES[:3])


def test_known_boundary_clips_hold_each_word_where_it_was_placed(clips):
    from audiodistill.data.synth.word_clips import GAPS_S, LEAD_S

    words = clips[0].words
    assert words_text(words) == "please call the office before noon"
    assert words[0].start == LEAD_S
    gaps = [b.start - a.end for a, b in zip(words, words[1:], strict=False)]
    assert gaps == pytest.approx(list(GAPS_S[: len(gaps)]), abs=1e-3)
    assert clips[0].audio.dtype == np.float32 and len(clips[0].audio) > words[-1].end * 16000


@pytest.mark.parametrize(
    "spec, target",
    [
        ("teacher:ct2", TEACHER_TARGET_S),
        ("models/whisper-tiny-en-distil", STUDENT_TARGET_S),
        ("models/whisper-tiny-en-streaming", STUDENT_TARGET_S),
    ],
)
def test_word_times_on_known_boundaries_are_within_the_targets(clips, spec, target):
    from audiodistill.online.served_model import ServedModel

    model = ServedModel(spec)
    timed = model.transcribe_words([c.audio for c in clips])
    scored = errors([c.words for c in clips], timed)
    assert scored.start_mae_s <= target and scored.end_mae_s <= target
    assert [words_text(w) for w in timed] == model.transcribe([c.audio for c in clips])


def test_transformers_teacher_times_words_as_the_ct2_one(clips):
    """Both Whisper backends run the same alignment (CTranslate2's, and ours in numpy)."""
    from audiodistill.online.served_model import ServedModel

    audio = [clips[0].audio]
    ct2 = ServedModel("teacher:ct2").transcribe_words(audio, snap=False)[0]
    hf = ServedModel("teacher:hf").transcribe_words(audio, snap=False)[0]
    assert [w.text for w in hf] == [w.text for w in ct2]
    gaps = [[a.start - b.start, a.end - b.end] for a, b in zip(hf, ct2, strict=True)]
    assert np.abs(gaps).max() <= 0.06


def _form(**fields) -> FormData:
    upload = UploadFile(file=None, size=10, filename="a.wav")
    items = [("file", upload), *((k, v) for k, vs in fields.items() for v in vs)]
    return FormData(items)


def test_timestamp_granularities_switch_words_on():
    assert uploads.parse_request(_form(), 100).words is False
    both = _form(**{"timestamp_granularities[]": ["word", "segment"]})
    assert uploads.parse_request(both, 100).words is True
    assert not uploads.parse_request(_form(timestamp_granularities=["segment"]), 100).words
    with pytest.raises(ApiError, match="one of word, segment"):
        uploads.parse_request(_form(**{"timestamp_granularities[]": ["letter"]}), 100)


def test_words_in_verbose_json_and_one_cue_per_word():
    words = [Word("Set", 0.3, 0.5), Word("timer.", 0.5, 1.0)]
    segments = [formats.TimedText(0.3, 1.0, "Set timer.", words)]
    body = formats.verbose_json(segments, 2.0, "en", words=True)
    assert body["words"] == [
        {"word": "Set", "start": 0.3, "end": 0.5},
        {"word": "timer.", "start": 0.5, "end": 1.0},
    ]
    assert "words" not in formats.verbose_json(segments, 2.0, "en")
    cues = formats.srt(formats.word_cues(segments))
    assert cues == (
        "1\n00:00:00,300 --> 00:00:00,500\nSet\n\n2\n00:00:00,500 --> 00:00:01,000\ntimer.\n"
    )


def _two_segments(clips) -> tuple[np.ndarray, float]:
    """The first two clips with a second of silence between: two segments of a stream."""
    pause = np.zeros(SAMPLE_RATE, np.float32)
    audio = np.concatenate([clips[0].audio, pause, clips[1].audio])
    return audio, (len(clips[0].audio) + len(pause)) / SAMPLE_RATE


async def _finals(session, audio: np.ndarray) -> list:
    events = []
    for i in range(0, len(audio), 1600):
        events += await session.accept(audio[i : i + 1600])
    return [e for e in events + await session.finish() if e.type == "final"]


def _close(words: list[Word], expected: list[Word], tolerance: float = 0.05) -> bool:
    """The same words at the same times, give or take `tolerance` seconds."""
    if [w.text for w in words] != [w.text for w in expected]:
        return False
    moved = [[w.start - e.start, w.end - e.end] for w, e in zip(words, expected, strict=True)]
    return bool(np.abs(moved).max() <= tolerance)


def test_ctc_stream_finals_time_words_in_stream_seconds(clips):
    """A streaming student's finals, two segments of one stream (its state carried across),
    time their words as the whole stream decoded offline does."""
    import asyncio

    from audiodistill.online.served_model import ServedModel
    from audiodistill.online.streams import CtcEngine, OnlineSession

    model = ServedModel("models/whisper-tiny-en-streaming")

    async def step(features, state):
        return model.step([features], [state])[0]

    engine = CtcEngine(step, model.decoder, model.chunk_queue(), model.pad_samples, words=True)
    audio, _ = _two_segments(clips)
    finals = asyncio.run(_finals(OnlineSession(engine), audio))
    assert len(finals) == 2
    assert _close([w for f in finals for w in f.words], model.transcribe_words([audio])[0])


def test_whisper_stream_finals_time_words_in_stream_seconds(clips):
    """LocalAgreement's finals: each segment's words where the clip alone puts them, moved
    to where the clip sits in the stream."""
    import asyncio

    from audiodistill.decoding.words import shifted
    from audiodistill.online.served_model import ServedModel
    from audiodistill.online.streams import LocalAgreementEngine, OnlineSession

    model = ServedModel("teacher:ct2")

    async def transcribe(audio):
        return model.transcribe([audio])[0]

    async def transcribe_words(audio):
        return model.transcribe_words([audio])[0]

    engine = LocalAgreementEngine(transcribe, 5.0, transcribe_words)
    audio, second = _two_segments(clips)
    finals = asyncio.run(_finals(OnlineSession(engine), audio))
    assert len(finals) == 2
    for final, clip, offset in zip(finals, clips, (0.0, second), strict=False):
        assert final.text == words_text(final.words)
        assert _close(final.words, shifted(model.transcribe_words([clip.audio])[0], offset))
