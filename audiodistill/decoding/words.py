"""Word timestamps: the one type every model kind gives its word times in, and the step
every kind's times go through last.

Whisper-type models time words from their decoder's cross-attention
(`audiodistill.decoding.whisper_alignment`), CTC students from their frame alignment
(`audiodistill.decoding.ctc_alignment`); both hand back `Word`s, so the server, the evaluation and
any caller read them the same way. Neither alignment knows where speech stops: Whisper's
puts every pause inside a word (a word ends where the next begins, the first word starts
at 0), a CTC model's spans only the spikes of its characters. `snap_to_speech` moves the
edges onto the speech the energy VAD hears (docs/protocol.md has what each step is worth,
benchmarks/results/word_timing). Numpy only: the edge runtime uses this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audiodistill.online.vad import EnergyVad, VadOptions

SNAP_VAD = VadOptions(frame_ms=10)  # the stream VAD's thresholds, at a word's resolution
PAUSE_FRAMES = 10  # 100 ms without speech is a pause no word spans (shorter: a consonant)


@dataclass(frozen=True)
class Word:
    """One word of a transcript and where it is spoken."""

    text: str  # as the model wrote it, punctuation attached ("minutes.")
    start: float  # seconds from the start of the audio transcribed
    end: float  # seconds from the start of the audio transcribed; end >= start

    def shifted(self, seconds: float) -> Word:
        """The same word in audio that starts `seconds` earlier (a segment inside a file)."""
        return Word(self.text, self.start + seconds, self.end + seconds)

    def to_dict(self) -> dict:
        """OpenAI's shape (verbose_json `words`): word, start, end in seconds, to the ms."""
        return {"word": self.text, "start": round(self.start, 3), "end": round(self.end, 3)}


def shifted(words: Sequence[Word], seconds: float) -> list[Word]:
    """Every word moved `seconds` later."""
    return [w.shifted(seconds) for w in words]


def words_text(words: Sequence[Word]) -> str:
    """The transcript the words spell: their texts joined by single spaces."""
    return " ".join(w.text for w in words)


def speech_runs(audio: np.ndarray) -> list[tuple[int, int]]:
    """[first, end) 10 ms frames of each stretch of speech in 16 kHz `audio`; stretches
    closer than a pause are one."""
    runs: list[list[int]] = []
    for frame in np.flatnonzero(EnergyVad(SNAP_VAD).accept(audio)).tolist():
        if runs and frame - runs[-1][1] < PAUSE_FRAMES:
            runs[-1][1] = frame + 1
        else:
            runs.append([frame, frame + 1])
    return [(a, b) for a, b in runs]


def snap_to_speech(words: Sequence[Word], audio: np.ndarray) -> list[Word]:
    """`words` (times from the start of 16 kHz `audio`) with their edges on its speech:

    - a word over a pause keeps the stretch of speech it covers most of, so its edges
      leave the pauses;
    - an edge inside a stretch moves out to the stretch's edge, unless a neighbouring word
      is in the way (joined words keep the boundary the model put between them).

    A word with no speech under it keeps its times.
    """
    frame = SNAP_VAD.frame_ms / 1000
    runs, out = speech_runs(audio), []
    for i, word in enumerate(words):
        start = round(word.start / frame)
        end = max(round(word.end / frame), start + 1)
        covered = [(max(a, start), min(b, end)) for a, b in runs if a < end and b > start]
        if not covered:
            out.append(word)
            continue
        first, last = max(covered, key=lambda c: c[1] - c[0])
        before = round(out[-1].end / frame) if out else 0
        after = round(words[i + 1].start / frame) if i + 1 < len(words) else np.inf
        if first == start:  # the start is in speech: go back to where that speech begins
            onset = next(a for a, b in runs if a <= first < b)
            first = onset if onset >= before else first
        if last == end:  # the end is in speech: go on to where it stops
            offset = next(b for a, b in runs if a < last <= b)
            last = offset if offset <= after else last
        out.append(Word(word.text, round(first * frame, 3), round(last * frame, 3)))
    return out
