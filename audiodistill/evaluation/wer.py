"""WER/CER with one English normalization, used by pseudo-labelling, training, serving and eval.

Whisper-style normalization (lower case, punctuation and fillers removed, spelled-out numbers
and British spellings mapped to one form) so "Forty-two dollars." and "$42" count as equal:
otherwise WER measures formatting, not recognition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def _normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


# "p.m." and "U.S." would become "p m" and "u s", which never match "pm" / "US"
_DOTTED_ABBREVIATION = re.compile(r"\b(?:[A-Za-z]\.){2,}")


def normalize_text(text: str) -> str:
    """The project's one English normalization (Whisper's EnglishTextNormalizer)."""
    text = _DOTTED_ABBREVIATION.sub(lambda m: m.group(0).replace(".", "") + " ", text)
    return " ".join(_normalizer()(text).split())


@dataclass(frozen=True)
class ErrorCounts:
    """Word-level alignment counts; WER = (S + D + I) / N, N = reference words."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        if self.reference_words == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.reference_words

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


def word_errors(reference: str, hypothesis: str) -> ErrorCounts:
    """Align normalized words of one utterance."""
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return ErrorCounts(0, 0, len(hyp.split()), 0)
    if not hyp:
        return ErrorCounts(0, len(ref.split()), 0, len(ref.split()))
    out = jiwer.process_words(ref, hyp)
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, len(ref.split()))


def wer(reference: str, hypothesis: str) -> float:
    """Normalized word error rate of one utterance (0.0 for two empty strings)."""
    return word_errors(reference, hypothesis).wer


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorCounts:
    """Corpus-level counts: errors summed over utterances, divided by total reference words."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    total = ErrorCounts(0, 0, 0, 0)
    for ref, hyp in zip(references, hypotheses, strict=True):
        total = total + word_errors(ref, hyp)
    return total


def paired_wer_difference(
    references: Sequence[str],
    baseline: Sequence[str],
    hypotheses: Sequence[str],
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(delta, low, high): corpus WER of `hypotheses` minus that of `baseline` on the same
    `references`, and a paired bootstrap interval for it (Bisani and Ney, 2004).

    Each resample draws utterances with replacement and scores both systems on the same
    draw, so what the two get equally wrong cancels. On a few hundred utterances a gap of a
    point or two can come from a handful of sentences: the interval shows how much.
    """
    if not len(references) == len(baseline) == len(hypotheses) > 0:
        raise ValueError("paired_wer_difference needs equally many (> 0) references and outputs")
    pairs = [
        (word_errors(r, a), word_errors(r, b))
        for r, a, b in zip(references, baseline, hypotheses, strict=True)
    ]
    words = np.array([a.reference_words for a, _ in pairs], dtype=np.float64)
    extra = np.array([b.errors - a.errors for a, b in pairs], dtype=np.float64)
    delta = extra.sum() / max(words.sum(), 1.0)
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for i in range(resamples):
        pick = rng.integers(0, len(pairs), len(pairs))
        draws[i] = extra[pick].sum() / max(words[pick].sum(), 1.0)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(delta), float(low), float(high)


def cer(reference: str, hypothesis: str) -> float:
    """Normalized character error rate of one utterance."""
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.cer(ref, hyp)) if hyp else 1.0
