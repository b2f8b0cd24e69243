"""The interfaces teachers implement, and what they return per utterance.

Two kinds: ASR teachers (`Teacher`: audio -> `Transcript`) and codec teachers
(`CodecTeacher`: audio -> `CodecEncoding`). The pseudo-label job takes either and tells
them apart by the method they have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class Transcript:
    """A teacher's output for one utterance: the pseudo-label and what filters need."""

    text: str  # decoded text, special tokens removed, stripped
    token_ids: list[int]  # generated text tokens (no prompt, no end-of-text)
    avg_logprob: float  # mean log-probability of the generated tokens (end-of-text included)
    no_speech_prob: float  # probability of <|nospeech|> at the start-of-transcript position
    compression_ratio: float  # len(text bytes) / len(gzip(text bytes)); loops compress well
    # per generated token (same length as token_ids, plus one row for end-of-text):
    topk_ids: list[list[int]] = field(default_factory=list)  # k most likely token ids
    topk_logprobs: list[list[float]] = field(default_factory=list)  # their log-probs (T=1)


class Teacher(Protocol):
    """Transcribes batches of 16 kHz mono float32 audio. Backends differ, callers do not."""

    name: str  # model name as stored beside every pseudo-label (e.g. "whisper-tiny.en")
    revision: str  # content hash or version of the weights, for provenance

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[Transcript]:
        """One Transcript per input, in order."""
        ...


@dataclass
class CodecEncoding:
    """A codec teacher's output for one utterance (or why that utterance failed)."""

    codes: np.ndarray | None  # [n_q, T] int32: one codebook index per codebook and frame
    latents: np.ndarray | None  # [D, T] float32: continuous encoder output before quantization
    error: str | None = None  # why this utterance could not be encoded; None when it was


@runtime_checkable
class CodecTeacher(Protocol):
    """Encodes batches of 16 kHz mono float32 audio into codes and latents of a neural codec."""

    name: str  # model name as stored beside every label (directory name or hub id)
    revision: str  # content hash or version of the weights, for provenance
    frame_rate: float  # code frames per second of audio
    n_q: int  # codebooks per frame (residual quantizers kept)
    codebook_size: int  # entries per codebook
    bitrate: float  # bits per second: n_q * log2(codebook_size) * frame_rate

    def encode(self, audios: Sequence[np.ndarray]) -> list[CodecEncoding]:
        """One CodecEncoding per input, in order; a bad input fails alone."""
        ...
