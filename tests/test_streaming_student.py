import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from audiodistill.decoding.ctc_decoder import BeamDecoder, GreedyDecoder, fit_char_lm
from audiodistill.students import streaming
from audiodistill.students.log_mel import log_mel
from audiodistill.students.streaming import (
    StreamingConfig,
    StreamingEncoder,
    StreamingRecognizer,
    collate,
    count_parameters,
    ctc_loss,
    feature_matching_loss,
    frames_per_chunk,
    load_student,
    sample_chunk_frames,
    save_student,
    streaming_s,
    streaming_xs,
    transcribe,
)
from audiodistill.students.tokenizer import CharTokenizer

TINY = StreamingConfig(
    d_model=32, n_layers=2, n_heads=2, ff_dim=64, conv_kernel=5, left_chunks=2, dropout=0.0
)


def _model(config: StreamingConfig = TINY, seed: int = 0) -> StreamingEncoder:
    torch.manual_seed(seed)
    model = StreamingEncoder(config).eval()
    # a random head is nearly constant; a large one makes argmax follow the hidden state,
    # so decoded texts are long and any mismatch between paths shows
    nn.init.normal_(model.head.weight, std=3.0)
    return model


def _audio(seconds: float, seed: int) -> np.ndarray:
    """Random 60 ms tones and silences over light noise: features that change every chunk."""
    rng = np.random.default_rng(seed)
    n, piece = int(seconds * 16_000), 960
    t = np.arange(piece) / 16_000
    tones = [
        rng.uniform(0, 0.5) * np.sin(2 * np.pi * rng.uniform(100, 4000) * t)
        for _ in range(n // piece + 1)
    ]
    audio = np.concatenate(tones)[:n] + 0.01 * rng.standard_normal(n)
    return audio.astype(np.float32)


def _stepwise(model, features: torch.Tensor, chunk: int) -> torch.Tensor:
    state, out = model.init_state(features.shape[0], chunk), []
    for start in range(0, features.shape[1], chunk):
        logits, state = model.step(features[:, start : start + chunk], state)
        out.append(logits)
    return torch.cat(out, dim=1)


def test_builders_sizes():
    xs, s = count_parameters(StreamingEncoder(streaming_xs())), count_parameters(
        StreamingEncoder(streaming_s())
    )
    assert 1_000_000 <= xs <= 2_000_000
    assert s <= 10_000_000


@pytest.mark.parametrize("chunk_ms", [160, 320, 640])
def test_chunk_steps_equal_the_whole_utterance(chunk_ms):
    model = _model()
    # 2.37 s: the last chunk is partial and the tail under one encoder frame is dropped
    features = log_mel(torch.from_numpy(_audio(2.37, seed=1)))[None]
    chunk = frames_per_chunk(TINY, chunk_ms)
    with torch.no_grad():
        whole, lengths, _ = model(features, torch.tensor([features.shape[1]]), chunk)
        streamed = _stepwise(model, features, chunk)
    assert streamed.shape == whole.shape and lengths.item() == whole.shape[1]
    torch.testing.assert_close(streamed, whole, atol=1e-4, rtol=0)


def test_no_look_ahead_beyond_the_current_chunk():
    model = _model()
    features = log_mel(torch.from_numpy(_audio(2.0, seed=2)))[None]
    chunk = frames_per_chunk(TINY, 320)  # 32 feature frames = 8 encoder frames
    changed = features.clone()
    changed[:, 3 * chunk :] += torch.randn_like(changed[:, 3 * chunk :])
    lengths = torch.tensor([features.shape[1]])
    with torch.no_grad():
        a, _, _ = model(features, lengths, chunk)
        b, _, _ = model(changed, lengths, chunk)
    frames = 3 * chunk // TINY.subsampling
    torch.testing.assert_close(a[:, :frames], b[:, :frames], atol=1e-6, rtol=0)
    assert not torch.allclose(a[:, frames:], b[:, frames:])


def test_left_context_is_limited_to_left_chunks():
    # one layer, pointwise "conv": a frame's only view of the past is attention
    config = StreamingConfig(
        d_model=32, n_layers=1, n_heads=2, ff_dim=64, conv_kernel=1, left_chunks=2, dropout=0.0
    )
    model = _model(config)
    features = log_mel(torch.from_numpy(_audio(2.0, seed=3)))[None]
    chunk = frames_per_chunk(config, 160)  # 16 feature frames = 4 encoder frames
    changed = features.clone()
    changed[:, :chunk] += 1.0  # chunk 0 only
    lengths = torch.tensor([features.shape[1]])
    with torch.no_grad():
        a, _, _ = model(features, lengths, chunk)
        b, _, _ = model(changed, lengths, chunk)
    seen_by_chunk_0 = (config.left_chunks + 1) * 4  # chunks 0..2 see chunk 0
    assert not torch.allclose(a[:, :seen_by_chunk_0], b[:, :seen_by_chunk_0])
    torch.testing.assert_close(a[:, seen_by_chunk_0:], b[:, seen_by_chunk_0:], atol=1e-6, rtol=0)


def test_padding_does_not_leak_into_real_frames():
    model = _model()
    audios = [_audio(s, seed=i) for i, s in enumerate((1.3, 2.9, 0.6))]
    batch = collate([{"audio": a, "text": "x"} for a in audios], CharTokenizer())
    chunk = frames_per_chunk(TINY, 160)
    with torch.no_grad():
        logits, lengths, hidden = model(batch["features"], batch["feature_lengths"], chunk)
        assert torch.isfinite(logits).all() and torch.isfinite(hidden).all()
        for i, audio in enumerate(audios):
            alone = log_mel(torch.from_numpy(audio))[None]
            expected, n, _ = model(alone, torch.tensor([alone.shape[1]]), chunk)
            assert lengths[i] == n[0]
            torch.testing.assert_close(logits[i, : n[0]], expected[0], atol=1e-4, rtol=0)
            assert hidden[i, n[0] :].abs().sum() == 0


@pytest.mark.parametrize("decoding", ["greedy", "beam", "beam+lm"])
def test_recognizer_matches_transcribe_for_any_piece_sizes(decoding):
    model, tok = _model(), CharTokenizer()
    lm = fit_char_lm(["the cat sat", "a dog ran off", "we saw them"], 5)
    decoder = {
        "greedy": GreedyDecoder(tok.symbols),
        "beam": BeamDecoder(tok.symbols),
        "beam+lm": BeamDecoder(tok.symbols, lm=lm),
    }[decoding]
    audios = [_audio(3.1, seed=4), _audio(1.7, seed=5)]
    rng = np.random.default_rng(0)
    for chunk_ms in (160, 640):
        expected = transcribe(model, tok, audios, chunk_ms=chunk_ms, decoder=decoder)
        recognizer = StreamingRecognizer(model, tok, chunk_ms=chunk_ms, decoder=decoder)
        for audio, text in zip(audios, expected, strict=True):
            assert len(text) > 5  # a real comparison, not two empty strings
            start, partial = 0, ""
            while start < len(audio):
                size = int(rng.integers(1, 4_000))
                partial = recognizer.accept(audio[start : start + size])
                start += size
            if decoding == "greedy":  # a beam may revise earlier characters; greedy never does
                assert text.startswith(partial)
            assert recognizer.finalize() == text


def test_recognizer_reset_starts_a_new_stream():
    model, tok = _model(), CharTokenizer()
    audio = _audio(1.5, seed=6)
    recognizer = StreamingRecognizer(model, tok)
    recognizer.accept(_audio(1.0, seed=7))
    recognizer.reset()
    recognizer.accept(audio)
    assert recognizer.finalize() == transcribe(model, tok, [audio])[0]
    assert recognizer.finalize() == ""  # finalize also resets


def test_transcribe_keeps_training_mode_and_handles_empty_audio():
    model, tok = _model(), CharTokenizer()
    model.train()
    texts = transcribe(model, tok, [np.zeros(100, np.float32), _audio(1.0, seed=8)])
    assert texts[0] == "" and model.training


def test_long_audio_takes_the_streaming_path_with_the_same_text(monkeypatch):
    model, tok = _model(), CharTokenizer()
    audios = [_audio(2.5, seed=11), _audio(0.8, seed=12)]
    expected = transcribe(model, tok, audios)
    monkeypatch.setattr(streaming, "MAX_WHOLE_SECONDS", 1)  # the first clip is now "long"
    monkeypatch.setattr(streaming, "STREAM_PIECE_SECONDS", 1)
    assert transcribe(model, tok, audios) == expected


def test_save_load_round_trip(tmp_path):
    model, tok = _model(), CharTokenizer()
    save_student(model, tok, tmp_path / "student")
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert config["student"] == "streaming" and config["config"]["d_model"] == TINY.d_model
    student = load_student(tmp_path / "student")
    assert student.model.config == TINY
    audios = [_audio(1.2, seed=9)]
    assert student.transcribe(audios) == transcribe(model, tok, audios)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(student.model.state_dict()[name], value, rtol=0, atol=0)
    recognizer = student.recognizer(chunk_ms=160)
    recognizer.accept(audios[0])
    assert recognizer.finalize() == transcribe(model, tok, audios, chunk_ms=160)[0]


def test_ctc_training_reduces_loss_and_impossible_targets_are_zeroed():
    torch.manual_seed(0)
    model, tok = StreamingEncoder(TINY), CharTokenizer()
    rows = [{"audio": _audio(1.0, seed=10), "text": "hello"}]
    batch = collate(rows, tok)
    assert batch["targets"].tolist() == [tok.encode("hello")]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = random.Random(0)
    losses = []
    for _ in range(30):
        chunk = sample_chunk_frames(TINY, rng)
        logits, lengths, _ = model(batch["features"], batch["feature_lengths"], chunk)
        loss = ctc_loss(logits, lengths, batch["targets"], batch["target_lengths"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    logits = torch.randn(1, 3, TINY.vocab_size)  # 3 frames cannot emit 10 labels
    targets = torch.ones(1, 10, dtype=torch.long)
    loss = ctc_loss(logits, torch.tensor([3]), targets, torch.tensor([10]))
    assert loss.item() == 0.0


def test_feature_matching_loss():
    student = torch.randn(2, 5, 8)
    teacher = student.repeat_interleave(2, dim=1)  # 20 ms frames, each student frame twice
    loss = feature_matching_loss(student, torch.tensor([5, 3]), teacher)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    noisy = teacher.clone()
    noisy[1, 6:] = torch.randn(4, 8)  # only frames past student length 3 of item 1
    loss = feature_matching_loss(student, torch.tensor([5, 3]), noisy)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    # cosine: scale does not matter, direction does (orthogonal frames cost 1 each)
    assert feature_matching_loss(3 * student, torch.tensor([5, 3]), teacher).item() < 1e-6
    flipped = feature_matching_loss(-student, torch.tensor([5, 3]), teacher)
    assert flipped.item() == pytest.approx(2.0, abs=1e-5)


def test_config_rejects_bad_chunks():
    with pytest.raises(ValueError, match="multiple of 40 ms"):
        StreamingConfig(chunk_ms=300)
    with pytest.raises(ValueError, match="n_heads"):
        StreamingConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="multiple"):
        frames_per_chunk(TINY, 100)


def test_spec_augment_masks_bands_and_spans_inside_each_clip_only():
    import random as stdlib_random

    from audiodistill.students.streaming import SpecAugmentOptions, spec_augment

    features = torch.randn(2, 300, 80)
    features[1, 200:] = 0.0  # padding of the shorter clip
    lengths = torch.tensor([300, 200])
    options = SpecAugmentOptions(freq_masks=2, freq_width=10, time_masks_per_s=1.0, time_width=20)
    out = spec_augment(features, lengths, options, stdlib_random.Random(0))
    assert torch.equal(out[1, 200:], features[1, 200:])  # padding untouched
    changed = out != features
    assert changed[0].any() and changed[1, :200].any()
    bands = changed[0].all(dim=0).sum()  # whole bands masked over the clip
    assert 0 < bands <= 2 * 10
    assert changed[0].all(dim=1).sum() <= 3 * 20  # 3 s of audio: 3 time masks at most
    for b, n in enumerate(lengths.tolist()):  # masked to the clip's own mean
        masked = out[b, :n][changed[b, :n]]
        torch.testing.assert_close(masked, torch.full_like(masked, features[b, :n].mean()))
    assert torch.equal(spec_augment(features, lengths, SpecAugmentOptions(), None), features)
