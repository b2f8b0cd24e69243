"""A teacher without weights: cheap, deterministic, Ray-safe. The pseudo-label job's tests,
its dry runs and its scale benchmark (`teacher.backend: fake`) label with it."""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence

import numpy as np

from audiodistill.teachers.base import Transcript

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class FakeTeacher:
    """Transcribes audio to a string derived from its length: cheap, deterministic, Ray-safe.

    `seconds_per_item` makes it slow enough for tests that kill a worker mid-run.
    """

    name = "fake-teacher"
    revision = "0"

    def __init__(self, seconds_per_item: float = 0.0, top_k: int = 4):
        self.seconds_per_item = seconds_per_item
        self.top_k = top_k

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[Transcript]:
        out = []
        for audio in audios:
            time.sleep(self.seconds_per_item)
            words = [DIGIT_WORDS[int(d)] for d in str(len(audio))]
            text = " ".join(words)
            token_ids = [DIGIT_WORDS.index(w) for w in words]
            steps = len(token_ids) + 1  # one row per token plus end-of-text
            topk_ids = [list(range(self.top_k)) for _ in range(steps)]
            topk_logprobs = [[float(-np.log(self.top_k))] * self.top_k for _ in range(steps)]
            ratio = len(text.encode()) / len(zlib.compress(text.encode()))
            out.append(Transcript(text, token_ids, -0.1, 0.01, ratio, topk_ids, topk_logprobs))
        return out
