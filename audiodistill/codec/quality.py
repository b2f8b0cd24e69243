"""How good a neural audio codec is: quality against the original, agreement, speed, size.

Every quality metric compares a reconstruction with the original 16 kHz audio (the project's
one rate; codecs at 24 kHz are resampled back before scoring), trimmed to the shorter of the
two: a codec pads to whole frames, so its output can be a few ms longer.

- bitrate: bits per second of the codes, n_q * log2(codebook_size) * frame_rate
- mel distance: mean L1 between log-mel spectrograms (80 bands, 64 ms windows, 16 ms hop),
  lower is better; the reconstruction loss a codec is usually trained with
- SI-SDR: scale-invariant signal-to-distortion ratio in dB (Le Roux et al., 2019), higher is
  better; waveform-exact, so phase errors count
- STOI: short-time objective intelligibility, 0..1 (Taal et al., 2011) via `pystoi`
- code agreement: the share of (codebook, frame) positions where two code tensors agree
- RTF: encode + decode seconds per audio second on one CPU thread
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from audiodistill.data.audio import SAMPLE_RATE

MEL_BANDS = 80
MEL_FFT = 1024  # 64 ms at 16 kHz
MEL_HOP = 256  # 16 ms
LOG_FLOOR = 1e-5  # log-mel floor: silence compares as silence, not as -inf
# oneDNN keeps the kernels it built (one per layer and input shape) in a cache of 1024 by
# default. Timing 3 codecs of ~40 convolutions on 40 clip lengths needs ~4800: with the
# default every pass rebuilt them, and that fixed per-layer cost, not arithmetic, set a
# small student's pace (docs/lab_notebook.md). Read once, at the first convolution of the
# process, so it must be in the environment before any model runs.
ONEDNN_CACHE = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16384")


def bitrate(n_q: int, codebook_size: int, frame_rate: float) -> float:
    """Bits per second of `n_q` codebooks of `codebook_size` entries at `frame_rate` Hz."""
    return n_q * math.log2(codebook_size) * frame_rate


def _aligned(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(reference), len(estimate))
    if n == 0:
        raise ValueError("codec metrics need non-empty audio")
    return np.asarray(reference[:n], np.float64), np.asarray(estimate[:n], np.float64)


def _log_mel(audio: np.ndarray) -> torch.Tensor:
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(
        SAMPLE_RATE, n_fft=MEL_FFT, hop_length=MEL_HOP, n_mels=MEL_BANDS
    )
    return mel(torch.from_numpy(audio.astype(np.float32))).clamp(min=LOG_FLOOR).log()


def mel_distance(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Mean absolute difference of the log-mel spectrograms of two 16 kHz signals."""
    reference, estimate = _aligned(reference, estimate)
    return float((_log_mel(reference) - _log_mel(estimate)).abs().mean())


def si_sdr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-12) -> float:
    """Scale-invariant SDR in dB: the estimate's part along the reference vs the rest."""
    reference, estimate = _aligned(reference, estimate)
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    scale = np.dot(estimate, reference) / (np.dot(reference, reference) + eps)
    target = scale * reference
    noise = estimate - target
    return float(10 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


def stoi(reference: np.ndarray, estimate: np.ndarray) -> float:
    """STOI (0..1) of a 16 kHz estimate against its reference."""
    from pystoi import stoi as pystoi_stoi

    reference, estimate = _aligned(reference, estimate)
    return float(pystoi_stoi(reference, estimate, SAMPLE_RATE, extended=False))


def code_agreement(codes: np.ndarray, reference_codes: np.ndarray) -> float:
    """Share of positions where two [n_q, T] code tensors agree (over the common frames)."""
    if codes.shape[0] != reference_codes.shape[0]:
        raise ValueError(f"codebooks differ: {codes.shape[0]} vs {reference_codes.shape[0]}")
    frames = min(codes.shape[1], reference_codes.shape[1])
    if frames == 0:
        raise ValueError("code agreement needs at least one frame")
    return float((codes[:, :frames] == reference_codes[:, :frames]).mean())


def parameters(model: torch.nn.Module) -> int:
    """All parameters of a model (buffers such as codebooks are not counted)."""
    return sum(p.numel() for p in model.parameters())


def roundtrip_rtfs(
    roundtrips: Sequence[Callable[[np.ndarray], np.ndarray]],
    audios: Sequence[np.ndarray],
    repeats: int = 3,
) -> list[float]:
    """Encode + decode seconds per audio second of each codec, on one thread (the caller's
    thread count is restored afterwards), in steady state. The codecs take turns, `repeats`
    passes over all clips each, and each keeps its fastest pass: on a shared machine other
    work only ever adds time, and taking turns exposes every codec to the same slow spells,
    so their ratio holds better than timings taken one after the other. Every clip runs
    once untimed first: torch builds a oneDNN kernel per layer and input shape on first
    use, a fixed cost per layer that is not the model's speed (see `ONEDNN_CACHE`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    best = [math.inf] * len(roundtrips)
    try:
        for roundtrip in roundtrips:
            for audio in audios:
                roundtrip(audio)
        for _ in range(repeats):
            for i, roundtrip in enumerate(roundtrips):
                start = time.perf_counter()
                for audio in audios:
                    roundtrip(audio)
                best[i] = min(best[i], time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    audio_seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    return [seconds / audio_seconds for seconds in best]


def quality(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """mel distance, SI-SDR and STOI of one reconstruction against its original."""
    return {
        "mel_distance": mel_distance(reference, estimate),
        "si_sdr": si_sdr(reference, estimate),
        "stoi": stoi(reference, estimate),
    }


def score(codec, audios: Sequence[np.ndarray], teacher=None) -> dict[str, float]:
    """Every metric of one codec over 16 kHz clips, means over clips.

    `codec` (and `teacher`) need `encode(audio) -> [n_q, T] codes`, `decode(codes) -> audio`,
    `roundtrip(audio)`, `bitrate()` and `model` (a torch module). With a teacher, also the
    agreement of the codec's codes with the teacher's, and the mel distance of the codec's
    codes decoded by the teacher's decoder (the drop-in check). Speed is timed apart, for
    all codecs together (`roundtrip_rtfs`).
    """
    sums: dict[str, float] = {}
    for audio in audios:
        codes = codec.encode(audio)
        parts = quality(audio, codec.decode(codes))
        if teacher is not None:
            parts["code_agreement"] = code_agreement(codes, teacher.encode(audio))
            parts["teacher_decoded_mel_distance"] = mel_distance(audio, teacher.decode(codes))
        for key, value in parts.items():
            sums[key] = sums.get(key, 0.0) + value
    out = {key: value / len(audios) for key, value in sums.items()}
    return out | {
        "bitrate": codec.bitrate(),
        "parameters": float(parameters(codec.model)),
    }
