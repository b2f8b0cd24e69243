"""The one interface every teacher implements, and what it returns per utterance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

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
