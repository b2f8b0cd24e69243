"""Frame-local log-mel features for streaming students, in torch.

The front end itself (constants, DFT and mel matrices, the numpy `log_mel_np`, the piecewise
streaming bookkeeping) lives in `audiodistill.edge.features`, which an edge runtime imports
without torch. This module runs the same matrices in torch for training and transcription,
and re-exports the front end's names so students import features from one place.
"""

from __future__ import annotations

import torch

from audiodistill.data.audio import HOP_LENGTH, N_FFT
from audiodistill.edge import features as edge
from audiodistill.edge.features import (
    FRAMES_PER_SECOND,
    LOG_MEL_MEAN,
    LOG_MEL_STD,
    MEL_FLOOR,
    N_BINS,
    N_MELS,
    ChunkQueue,
    Step,
    dft_matrices,
    log_mel_np,
    mel_filterbank,
    num_frames,
)

__all__ = [
    "FRAMES_PER_SECOND",
    "HOP_LENGTH",
    "LOG_MEL_MEAN",
    "LOG_MEL_STD",
    "MEL_FLOOR",
    "N_BINS",
    "N_FFT",
    "N_MELS",
    "Step",
    "ChunkQueue",
    "FeatureStreamer",
    "dft_matrices",
    "log_mel",
    "log_mel_np",
    "mel_filterbank",
    "num_frames",
]

_TORCH_CACHE: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def _torch_window_and_mel(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if device not in _TORCH_CACHE:
        _TORCH_CACHE[device] = (
            torch.from_numpy(edge.HANN_WINDOW).to(device),
            torch.from_numpy(edge.MEL).to(device),
        )
    return _TORCH_CACHE[device]


def log_mel(audio: torch.Tensor) -> torch.Tensor:
    """[..., S] float audio at 16 kHz -> [..., F, N_MELS] normalized log-mel, F = num_frames(S).

    Samples after the last whole window are not used (no padding, no centering). Computed
    in float64 so torch, numpy and any BLAS agree to ~1e-6. The DFT is an FFT here (a
    server featurizes every live stream, and the 400 x 201 DFT matrices cost it as much as
    the model); the numpy twin keeps the matrices, which export as plain MatMuls.
    """
    if audio.shape[-1] < N_FFT:
        return audio.new_zeros(*audio.shape[:-1], 0, N_MELS)
    window, mel = _torch_window_and_mel(audio.device)
    frames = audio.double().unfold(-1, N_FFT, HOP_LENGTH)  # [..., F, N_FFT]
    power = torch.fft.rfft(frames * window, dim=-1).abs().square()  # [..., F, N_BINS]
    out = (torch.log10(power @ mel + MEL_FLOOR) - LOG_MEL_MEAN) / LOG_MEL_STD
    return out.to(audio.dtype)


class FeatureStreamer(edge.FeatureStreamer):
    """The edge streamer with torch frames: PCM pieces of any size in, exactly the frames
    `log_mel` gives the whole signal out, as float32 tensors [n, N_MELS]."""

    def __init__(self, pad_samples: int = 0) -> None:
        super().__init__(lambda audio: log_mel(torch.from_numpy(audio)), pad_samples)
