"""Clips whose word boundaries are known: single words read by the bundled TTS voice, each
trimmed to its own speech and joined with known gaps (none, short, long), over a faint
noise floor so silence is not digital zero. What word times are scored against
(`audiodistill.evaluation.word_timing`).

A word's reference start and end are where its piece's speech begins and ends: the first
and last 5 ms frame within 40 dB of the piece's loudest frame. Deterministic (the voice
seeds its noise from the text), no files, no network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.decoding.words import Word

# ordinary words only: a model may write spoken numbers as digits, which no longer match
SENTENCES = (
    "please call the office before noon",
    "the meeting moved to thursday afternoon",
    "where did you leave the blue umbrella",
    "turn off the lights in the kitchen",
    "she bought fresh bread at the market",
    "send the report to the whole team",
    "my brother fixed the broken window",
    "we walked along the river after dinner",
)
# seconds between consecutive words, taken in turn: joined words (no pause at all) test a
# boundary inside running audio, the longer gaps test where speech stops and starts
GAPS_S = (0.0, 0.15, 0.3, 0.05, 0.5, 0.1)
LEAD_S = 0.4  # silence before the first word and after the last
EXTENT_FRAME = 80  # 5 ms frames for a piece's speech extent
EXTENT_BELOW_PEAK_DB = 40.0  # quieter than the piece's loudest frame by more: not speech
NOISE_DBFS = -60.0  # RMS of the white noise floor under the whole clip


@dataclass(frozen=True)
class WordClip:
    """A clip and its words with their known times."""

    audio: np.ndarray  # 16 kHz mono float32
    words: tuple[Word, ...]  # the words read, in order, with where their speech is


def speech_extent(piece: np.ndarray) -> tuple[int, int]:
    """(first, end) sample of a single word's speech: its first and last 5 ms frames within
    EXTENT_BELOW_PEAK_DB of its loudest."""
    n = len(piece) // EXTENT_FRAME
    frames = piece[: n * EXTENT_FRAME].astype(np.float64).reshape(n, EXTENT_FRAME)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(db > db.max() - EXTENT_BELOW_PEAK_DB)
    return int(loud[0]) * EXTENT_FRAME, (int(loud[-1]) + 1) * EXTENT_FRAME


def word_clip(words: list[str], pieces: list[np.ndarray], seed: int = 0) -> WordClip:
    """One clip of `words`, read alone as `pieces`, joined with the gaps of GAPS_S."""
    lead = np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32)
    parts, timed, at = [lead], [], len(lead)
    for i, (word, piece) in enumerate(zip(words, pieces, strict=True)):
        first, end = speech_extent(piece)
        speech = piece[first:end]
        timed.append(Word(word, at / SAMPLE_RATE, (at + len(speech)) / SAMPLE_RATE))
        gap = int(GAPS_S[i % len(GAPS_S)] * SAMPLE_RATE) if i < len(words) - 1 else 0
        parts += [speech, np.zeros(gap, np.float32)]
        at += len(speech) + gap
    audio = np.concatenate([*parts, lead])
    noise = np.random.default_rng(seed).standard_normal(len(audio)) * 10 ** (NOISE_DBFS / 20)
    return WordClip((audio + noise).astype(np.float32), tuple(timed))


def word_clips(sentences: tuple[str, ...] = SENTENCES) -> list[WordClip]:
    """One known-boundary clip per sentence, each word read alone by the bundled voice."""
    from audiodistill.data.synth.voices import speak

    clips = []
    for i, sentence in enumerate(sentences):
        words = sentence.split()
        clips.append(word_clip(words, speak(words), seed=i))
    return clips
