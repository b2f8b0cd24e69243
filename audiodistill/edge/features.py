"""Frame-local log-mel features in numpy: the front end every streaming runtime shares.

Every feature frame depends only on its own 25 ms of samples: no centering, no utterance-level
normalization. So the features of a prefix of the audio are a prefix of the features, and a
stream can be featurized piece by piece (`FeatureStreamer`). The transform is two matrix
products (a windowed real DFT, then a mel filterbank). `audiodistill.students.log_mel` runs
the same matrices in torch for training; this module is what an edge device runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from audiodistill.data.audio import HOP_LENGTH, N_FFT, SAMPLE_RATE

N_MELS = 80  # mel bands, as in Whisper's front end
N_BINS = N_FFT // 2 + 1  # 201 one-sided DFT bins, 40 Hz apart at 16 kHz with a 400-sample window
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100 feature frames per second (10 ms hop)
# Added to mel power before the log: 100 dB below a full-scale tone's band power (about
# 1e2), so digital silence gives a finite floor instead of -inf and the dynamic range is
# bounded, as Whisper's 80 dB clamp does but without looking at the whole utterance.
MEL_FLOOR = 1e-8
# Fixed affine map of log10 mel power to roughly zero mean, unit variance on speech at
# ordinary levels (measured on the synthetic corpus): a constant, so still frame-local.
LOG_MEL_MEAN = -4.0
LOG_MEL_STD = 2.0


def num_frames(n_samples: int) -> int:
    """Feature frames of `n_samples` samples: whole 400-sample windows at a 160-sample hop."""
    return 0 if n_samples < N_FFT else 1 + (n_samples - N_FFT) // HOP_LENGTH


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3.0)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-3) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz < 1000.0, linear, log_part)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3.0)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel < 15.0, linear, log_part)


def mel_filterbank() -> np.ndarray:
    """[N_BINS, N_MELS] float64: triangular filters from 0 Hz to Nyquist, area-normalized.

    Slaney scale and normalization (each filter divided by its bandwidth), the filterbank
    Whisper and librosa use by default.
    """
    bin_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_BINS)
    edges_hz = _mel_to_hz(np.linspace(0.0, _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    lower, center, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz[None, :] - lower) / (center - lower)  # [N_MELS, N_BINS]
    falling = (upper - bin_hz[None, :]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= 2.0 / (upper - lower)
    return weights.T


HANN_WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic, float64


def dft_matrices() -> tuple[np.ndarray, np.ndarray]:
    """Periodic-Hann-windowed real DFT as two [N_FFT, N_BINS] float64 matrices (cos, sin)."""
    n = np.arange(N_FFT)
    angle = 2.0 * np.pi * np.outer(n, np.arange(N_BINS)) / N_FFT  # [N_FFT, N_BINS]
    return HANN_WINDOW[:, None] * np.cos(angle), HANN_WINDOW[:, None] * np.sin(angle)


DFT_COS, DFT_SIN = dft_matrices()
MEL = mel_filterbank()


def log_mel_np(audio: np.ndarray) -> np.ndarray:
    """[..., S] float audio at 16 kHz -> [..., F, N_MELS] float32, F = num_frames(S).

    Samples after the last whole window are not used (no padding, no centering). Computed
    in float64 so numpy, torch and any BLAS agree to ~1e-6.
    """
    audio = np.asarray(audio, dtype=np.float64)
    n = num_frames(audio.shape[-1])
    if n == 0:
        return np.zeros((*audio.shape[:-1], 0, N_MELS), dtype=np.float32)
    starts = np.arange(n)[:, None] * HOP_LENGTH + np.arange(N_FFT)[None, :]  # [F, N_FFT]
    frames = audio[..., starts]  # [..., F, N_FFT]
    power = np.square(frames @ DFT_COS) + np.square(frames @ DFT_SIN)
    out = (np.log10(power @ MEL + MEL_FLOOR) - LOG_MEL_MEAN) / LOG_MEL_STD
    return out.astype(np.float32)


class FeatureStreamer:
    """Turns PCM pieces of any size into exactly the frames `featurize` gives the whole signal.

    Keeps the samples not yet covered by a whole window (at most N_FFT - 1 of them plus the
    newest piece) between calls. `featurize` maps float32 samples to [F, N_MELS] frames
    (F = num_frames); it is `log_mel_np` on the edge, the torch twin in training code.
    `pad_samples` zeros go before the stream's first sample, as the whole-utterance path
    puts them before the audio (a student whose frames centre on their hop reads 200).
    """

    def __init__(
        self, featurize: Callable[[np.ndarray], Any] = log_mel_np, pad_samples: int = 0
    ) -> None:
        self._featurize = featurize
        self._pad_samples = pad_samples
        self.reset()

    def accept(self, pcm: np.ndarray) -> Any:
        """Append 16 kHz float32 samples; return the newly complete frames [n, N_MELS]."""
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
        self._pending = np.concatenate([self._pending, pcm])
        n = num_frames(len(self._pending))
        used = (n - 1) * HOP_LENGTH + N_FFT if n else 0
        frames = self._featurize(self._pending[:used])
        self._pending = self._pending[n * HOP_LENGTH :]
        return frames

    def reset(self) -> None:
        self._pending = np.zeros(self._pad_samples, dtype=np.float32)


@dataclass
class Step:
    """One step of a streaming model, as a `ChunkQueue` plans it."""

    features: np.ndarray  # [chunk + lookahead, n_mels] the step's input (the last may be shorter)
    # None: run on the stream's state. Else start a fresh state and run these step inputs
    # (the stream's latest frames) through it first, their outputs unused: the encoder's
    # positions start again from 0 with its left context restored
    restart: list[np.ndarray] | None = None


class ChunkQueue:
    """Feature frames in, the inputs of a streaming model's steps out.

    A step takes `chunk` frames plus the `lookahead` frames after them, which it reads but
    does not consume: they open the next step's chunk. At the end of a stream `flush` gives
    what is left in whole encoder frames (a multiple of `subsampling`; the whole-utterance
    path drops the rest too) plus `lookahead` zero frames, the padding that path's
    convolutions see after an utterance's last frame.

    An encoder with absolute positions (`max_positions` > 0: Whisper's 1500) would run past
    them on a long stream. Before a step that would, the queue says to restart: a fresh state
    primed with the last `context` frames (the encoder's left context, which a frame sees
    anyway) puts the positions back at the start and the frames see what they saw before.
    """

    def __init__(
        self,
        chunk: int,
        lookahead: int,
        subsampling: int,
        n_mels: int = N_MELS,
        max_positions: int = 0,
        context: int = 0,
    ):
        if context % chunk or (max_positions and context // subsampling >= max_positions):
            raise ValueError(f"context {context} must be whole chunks inside max_positions")
        self.chunk, self.lookahead, self.subsampling = chunk, lookahead, subsampling
        self.max_positions, self.context = max_positions, context
        self._empty = np.zeros((0, n_mels), dtype=np.float32)
        self._reset()

    def _reset(self) -> None:
        self._pending = self._empty  # [n, n_mels] frames not yet run
        self._history = self._empty  # [<= context, n_mels] the last frames run
        self.position = 0  # encoder positions the stream's state has used

    def push(self, frames: np.ndarray) -> list[Step]:
        """Add feature frames [n, n_mels]; return the steps now complete, in order."""
        self._pending = np.concatenate([self._pending, np.asarray(frames, dtype=np.float32)])
        steps, width = [], self.chunk + self.lookahead
        while len(self._pending) >= width:
            steps.append(self._plan(self._pending[:width], self.chunk))
            self._pending = self._pending[self.chunk :]
        return steps

    def flush(self) -> Step | None:
        """The stream's last step (None when no whole encoder frame is left); empties the
        queue for the next stream."""
        usable = len(self._pending) // self.subsampling * self.subsampling
        rest = self._pending[:usable]
        zeros = np.zeros((self.lookahead, rest.shape[1]), np.float32)
        step = self._plan(np.concatenate([rest, zeros]), usable) if usable else None
        self._reset()
        return step

    def _plan(self, features: np.ndarray, consumed: int) -> Step:
        restart = None
        if self.max_positions and self.position + consumed // self.subsampling > (
            self.max_positions
        ):
            frames = np.concatenate([self._history, features[: self.lookahead]])
            width = self.chunk + self.lookahead
            restart = [frames[i : i + width] for i in range(0, len(self._history), self.chunk)]
            self.position = len(self._history) // self.subsampling
        self.position += consumed // self.subsampling
        if self.context:
            self._history = np.concatenate([self._history, features[:consumed]])[-self.context :]
        return Step(features, restart)
