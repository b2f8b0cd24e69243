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


def cer(reference: str, hypothesis: str) -> float:
    """Normalized character error rate of one utterance."""
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.cer(ref, hyp)) if hyp else 1.0
