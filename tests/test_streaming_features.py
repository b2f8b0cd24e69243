import numpy as np
import pytest
import torch

from audiodistill.students.log_mel import (
    HOP_LENGTH,
    LOG_MEL_MEAN,
    LOG_MEL_STD,
    MEL_FLOOR,
    N_FFT,
    N_MELS,
    FeatureStreamer,
    log_mel,
    log_mel_np,
    mel_filterbank,
    num_frames,
)


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(24_000) / 16_000
    sine = 0.9 * np.sin(2 * np.pi * 440 * t)
    # energy only below 300 Hz: high bands sit near the floor, where float32 would wobble
    low = np.convolve(rng.standard_normal(24_000), np.hanning(101) / 50, mode="same")
    return {
        "noise": 0.3 * rng.standard_normal(24_000),
        "sine": sine,
        "lowpass": low,
        "silence": np.zeros(24_000),
        "odd_length": 0.1 * rng.standard_normal(16_037),
    }


def test_filterbank_is_whispers_slaney_mel():
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=16_000, n_fft=N_FFT, n_mels=N_MELS)  # [80, 201]
    np.testing.assert_allclose(mel_filterbank().T, expected, atol=1e-7)


@pytest.mark.parametrize("samples", [0, 399, 400, 559, 560, 16_000])
def test_frames_are_whole_windows_without_centering(samples):
    expected = 0 if samples < N_FFT else 1 + (samples - N_FFT) // HOP_LENGTH
    assert num_frames(samples) == expected
    assert log_mel(torch.zeros(samples)).shape == (expected, N_MELS)
    assert log_mel_np(np.zeros(samples)).shape == (expected, N_MELS)


def test_log_mel_equals_stft_power_through_the_filterbank():
    audio = torch.from_numpy(_signals()["noise"]).float()
    spec = torch.stft(
        audio.double(),
        N_FFT,
        HOP_LENGTH,
        window=torch.hann_window(N_FFT, dtype=torch.float64),
        center=False,
        return_complex=True,
    )  # [201, F]
    mel = spec.abs().square().T @ torch.from_numpy(mel_filterbank())
    expected = (torch.log10(mel + MEL_FLOOR) - LOG_MEL_MEAN) / LOG_MEL_STD
    torch.testing.assert_close(log_mel(audio), expected.float(), atol=1e-5, rtol=0)


def test_features_of_a_prefix_are_a_prefix_of_the_features():
    audio = torch.from_numpy(_signals()["noise"]).float()
    whole = log_mel(audio)
    for samples in (400, 1_234, 8_000):
        part = log_mel(audio[:samples])
        torch.testing.assert_close(part, whole[: num_frames(samples)], atol=1e-6, rtol=0)


def test_batch_dimensions_are_kept():
    audio = torch.randn(2, 3, 4_000)
    out = log_mel(audio)
    assert out.shape == (2, 3, num_frames(4_000), N_MELS)
    torch.testing.assert_close(out[1, 2], log_mel(audio[1, 2]))


@pytest.mark.parametrize("name", sorted(_signals()))
def test_numpy_twin_matches_torch(name):
    audio = _signals()[name].astype(np.float32)
    expected = log_mel(torch.from_numpy(audio)).numpy()
    got = log_mel_np(audio)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_silence_sits_at_the_floor():
    out = log_mel(torch.zeros(1_000))
    expected = (np.log10(MEL_FLOOR) - LOG_MEL_MEAN) / LOG_MEL_STD
    torch.testing.assert_close(out, torch.full_like(out, expected))


def test_streamer_yields_exactly_the_whole_utterance_frames():
    audio = _signals()["odd_length"].astype(np.float32)
    rng = np.random.default_rng(1)
    streamer, pieces, start = FeatureStreamer(), [], 0
    while start < len(audio):
        size = int(rng.integers(1, 3_000))
        pieces.append(streamer.accept(audio[start : start + size]))
        start += size
    streamed = torch.cat(pieces)
    torch.testing.assert_close(streamed, log_mel(torch.from_numpy(audio)), atol=1e-6, rtol=0)
    streamer.reset()
    assert streamer.accept(audio[:300]).shape == (0, N_MELS)
