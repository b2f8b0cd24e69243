"""The teacher's Whisper encoder made causal in chunks: equal to the teacher with full
context, streamed equal to whole, positions that never pass Whisper's window."""

import numpy as np
import pytest
import torch
from torch import nn

from audiodistill.students import causal_whisper
from audiodistill.students.causal_whisper import (
    FEATURE_PAD_SAMPLES,
    MAX_POSITIONS,
    CausalWhisperConfig,
    CausalWhisperEncoder,
    from_teacher,
    sinusoids,
)
from audiodistill.students.log_mel import log_mel
from audiodistill.students.streaming import (
    StreamingRecognizer,
    frames_per_chunk,
    transcribe,
)
from audiodistill.students.tokenizer import CharTokenizer

TINY = CausalWhisperConfig(d_model=32, n_layers=2, n_heads=2, ff_dim=64, left_chunks=2)


def _model(config: CausalWhisperConfig = TINY, seed: int = 0) -> CausalWhisperEncoder:
    torch.manual_seed(seed)
    model = CausalWhisperEncoder(config).eval()
    nn.init.normal_(model.head.weight, std=3.0)  # argmax follows the states: mismatches show
    return model


def _audio(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n, piece = int(seconds * 16_000), 960
    t = np.arange(piece) / 16_000
    tones = [
        rng.uniform(0, 0.5) * np.sin(2 * np.pi * rng.uniform(100, 4000) * t)
        for _ in range(n // piece + 1)
    ]
    return (np.concatenate(tones)[:n] + 0.01 * rng.standard_normal(n)).astype(np.float32)


def _features(audio: np.ndarray) -> torch.Tensor:
    """[1, F, n_mels] the student's features of one clip (with its leading zeros)."""
    padded = np.concatenate([np.zeros(FEATURE_PAD_SAMPLES, np.float32), audio])
    return log_mel(torch.from_numpy(padded))[None]


def _stepwise(model, features: torch.Tensor, chunk: int) -> torch.Tensor:
    """Logits of the stream, stepped as a runtime steps it (chunk + one lookahead frame)."""
    state, out, start = model.init_state(1, chunk), [], 0
    while start + chunk + 1 <= features.shape[1]:
        logits, state = model.step(features[:, start : start + chunk + 1], state)
        out.append(logits)
        start += chunk
    rest = features[:, start : features.shape[1] // 2 * 2]
    logits, state = model.step(torch.cat([rest, torch.zeros(1, 1, rest.shape[2])], 1), state)
    return torch.cat([*out, logits], dim=1)


@pytest.fixture(scope="module")
def teacher_dir():
    from audiodistill.teachers.convert import ensure_bundled_hf

    return ensure_bundled_hf()


def test_sinusoids_are_whispers_position_table(teacher_dir):
    from transformers import WhisperForConditionalGeneration

    table = WhisperForConditionalGeneration.from_pretrained(teacher_dir).model.encoder
    stored = table.embed_positions.weight.detach()
    computed = sinusoids(torch.arange(MAX_POSITIONS), stored.shape[1])
    torch.testing.assert_close(computed, stored, atol=1e-3, rtol=0)  # stored in float16


def test_untrained_student_with_full_context_gives_the_teachers_encoder_states(
    teacher_dir, speech
):
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    teacher = WhisperForConditionalGeneration.from_pretrained(teacher_dir).eval()
    encoder = teacher.model.encoder
    # the teacher's table is float16-rounded sinusoids; exact ones isolate everything else
    encoder.embed_positions.weight.data = sinusoids(torch.arange(MAX_POSITIONS), 384)
    extractor = WhisperFeatureExtractor.from_pretrained(teacher_dir)
    _, clips = speech
    features = extractor(clips[:2], sampling_rate=16_000, return_tensors="pt").input_features
    student = from_teacher(teacher_dir).eval()
    assert student.config.teacher_layers == (0, 1, 2, 3)
    with torch.no_grad():
        expected = encoder(features).last_hidden_state  # [2, 1500, 384]
        # the student reads the project's log-mel, which is twice Whisper's
        states, lengths = student.encode(
            features.transpose(1, 2) * 2, torch.tensor([3000, 3000]), chunk_frames=None
        )
    assert lengths.tolist() == [1500, 1500]
    torch.testing.assert_close(states, expected, atol=2e-4, rtol=1e-4)


def test_own_front_end_stays_close_to_the_teacher_on_speech(teacher_dir, speech):
    """On its own frame-local features and under a 320 ms chunk mask the untrained student
    is near the teacher's full-context states: the feature loss starts small."""
    from audiodistill.students.streaming_task import StreamingOptions, StreamingTask

    _, clips = speech
    task = StreamingTask(StreamingOptions(feature_matching=1.0, dropout=0.0))
    student = task.build().eval()
    rows = [{"audio": c, "text": "a"} for c in clips[:3]]
    batch = task.collate(rows)
    teacher = task._teacher_states(batch)
    with torch.no_grad():
        full, lengths = student.encode(batch["features"], batch["feature_lengths"], None)
        chunked, _ = student.encode(batch["features"], batch["feature_lengths"], 32)
    for states, floor in ((full, 0.999), (chunked, 0.8)):
        for row, n in enumerate(lengths.tolist()):
            similarity = nn.functional.cosine_similarity(states[row, :n], teacher[row, :n], -1)
            assert similarity.mean() > floor


def test_keeps_maximally_spaced_layers(teacher_dir):
    student = from_teacher(teacher_dir, layers=2)
    assert student.config.teacher_layers == (0, 3) and len(student.layers) == 2
    full = from_teacher(teacher_dir)
    torch.testing.assert_close(student.layers[1].fc1.weight, full.layers[3].fc1.weight)


@pytest.mark.parametrize("chunk_ms", [160, 320, 640])
@pytest.mark.parametrize("seconds", [2.37, 2.4])  # odd and even feature frame counts
def test_chunk_steps_equal_the_whole_utterance(chunk_ms, seconds):
    model = _model()
    features = _features(_audio(seconds, seed=1))
    chunk = frames_per_chunk(TINY, chunk_ms)
    with torch.no_grad():
        whole, lengths, _ = model(features, torch.tensor([features.shape[1]]), chunk)
        streamed = _stepwise(model, features, chunk)
    assert streamed.shape[1] == lengths.item() == features.shape[1] // 2
    torch.testing.assert_close(streamed, whole[:, : lengths.item()], atol=1e-4, rtol=0)


def test_sees_one_feature_frame_past_its_chunk_and_no_more():
    model = _model()
    features = _features(_audio(2.0, seed=2))
    chunk = frames_per_chunk(TINY, 320)  # 32 feature frames = 16 encoder frames
    lengths = torch.tensor([features.shape[1]])
    frames = 3 * chunk // 2  # encoder frames of the first three chunks
    for first_changed, unchanged in ((3 * chunk + 1, frames), (3 * chunk, frames - 16)):
        changed = features.clone()
        changed[:, first_changed:] += 1.0
        with torch.no_grad():
            a, _, _ = model(features, lengths, chunk)
            b, _, _ = model(changed, lengths, chunk)
        torch.testing.assert_close(a[:, :unchanged], b[:, :unchanged], atol=1e-6, rtol=0)
        after = slice(unchanged, unchanged + 16)
        assert not torch.allclose(a[:, after], b[:, after])


def test_a_long_stream_restarts_its_positions_before_whispers_window_ends():
    model = _model(CausalWhisperConfig(d_model=32, n_layers=1, n_heads=2, ff_dim=64, left_chunks=4))
    offsets = []
    step = model.step

    def recorded(features, state):
        logits, new = step(features, state)
        offsets.append(int(new.offset))
        return logits, new

    model.step = recorded
    audio = _audio(70.0, seed=4)
    recognizer = StreamingRecognizer(model, CharTokenizer(), chunk_ms=320)
    for start in range(0, len(audio), 16_000):
        recognizer.accept(audio[start : start + 16_000])
    streamed = recognizer.finalize()
    assert max(offsets) <= MAX_POSITIONS and offsets.count(4 * 16) >= 2  # primed restarts
    # the first 30 s never restart, so a clip that short streams to the whole-utterance text
    short = audio[: 25 * 16_000]
    assert transcribe(model, CharTokenizer(), [short], chunk_ms=320)[0] == (
        _stream(model, short)
    )
    # longer clips are streamed by transcribe itself, whose positions could not fit
    assert transcribe(model, CharTokenizer(), [audio], chunk_ms=320)[0] == streamed
    with pytest.raises(ValueError, match="1500 positions"):
        model.encode(_features(audio[: 31 * 16_000]), torch.tensor([3100]), 32)


def _stream(model, audio: np.ndarray) -> str:
    recognizer = StreamingRecognizer(model, CharTokenizer(), chunk_ms=320)
    for start in range(0, len(audio), 5_000):
        recognizer.accept(audio[start : start + 5_000])
    return recognizer.finalize()


def test_config_rejects_chunks_off_the_20_ms_grid():
    with pytest.raises(ValueError, match="multiple of 20 ms"):
        CausalWhisperConfig(chunk_ms=330)
    assert causal_whisper.LOOKAHEAD_FRAMES == 1 and TINY.frame_ms == 20


def test_trained_for_a_few_steps_it_streams_the_whole_utterance_text(speech):
    """From the teacher, 30 steps on two clips start to teach it their words; streamed chunk
    by chunk in pieces of any size it then gives exactly the whole-utterance text."""
    from audiodistill.students.streaming_task import StreamingOptions, StreamingTask
    from audiodistill.training.distill_options import TrainOptions
    from audiodistill.training.loop import make_optimizer, train_step

    sentences, clips = speech
    rows = [
        {"id": str(i), "audio": clips[i], "duration": len(clips[i]) / 16_000, "text": sentences[i]}
        for i in range(2)
    ]
    torch.manual_seed(0)
    task = StreamingTask(StreamingOptions(chunk_ms=(320,)))
    model = task.build()
    options = TrainOptions(lr=3e-3, warmup_steps=1, max_steps=30)
    optimizer, scheduler = make_optimizer(model, options, task.lr_scale)
    for _ in range(30):
        train_step(model, task, task.collate(rows), optimizer, scheduler, grad_clip=1.0)
    whole = task.transcribe(model, [r["audio"] for r in rows])
    assert all(len(text.split()) >= 3 for text in whole), whole  # words, not blanks
    recognizer = StreamingRecognizer(model.eval(), task.tokenizer, chunk_ms=320)
    for row, expected in zip(rows, whole, strict=True):
        for start in range(0, len(row["audio"]), 1_234):
            recognizer.accept(row["audio"][start : start + 1_234])
        assert recognizer.finalize() == expected
