"""How well a model times words: the mean absolute error of word starts and ends against
clips whose word times are known (`audiodistill.data.synth.word_clips`).

Each model transcribes every clip as the server would (`ServedModel.transcribe_words`);
its words are matched to the words read (same normalised text, in order, as a diff pairs
them) and only matched words are scored, so a misrecognised word costs coverage, not
timing. `audiodistill eval ... words=true` runs this for every model it scores.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.decoding.words import Word, snap_to_speech

JOINED_S = 0.01  # words closer than this are joined: no pause tells where one ends


@dataclass(frozen=True)
class Errors:
    """Word-boundary errors of one way of timing words, over the matched words."""

    start_mae_s: float  # mean |start - known start|, seconds
    end_mae_s: float  # mean |end - known end|, seconds
    # the same over the boundaries between joined words only (no pause between them),
    # where the energy VAD cannot help and the model's alignment alone decides
    joined_mae_s: float


@dataclass(frozen=True)
class WordTiming:
    """One model's word-boundary errors on the known-boundary clips."""

    words: int  # words read in all the clips
    matched: int  # of them, words the model wrote the same (so scored)
    served: Errors  # the times the server gives: the alignment's, snapped to speech
    alignment: Errors  # the alignment's own times (cross-attention DTW, or CTC frames)
    rtf: float  # seconds spent per second of audio, word times included

    def to_dict(self) -> dict:
        return asdict(self)


def normalized(text: str) -> str:
    """Lower case, letters, digits and apostrophes only: "Noon." and "noon" match."""
    return re.sub(r"[^a-z0-9']", "", text.lower())


def matched(reference: Sequence[Word], hypothesis: Sequence[Word]) -> list[tuple[Word, Word]]:
    """(read word, written word) pairs of the same text, in order, as a diff aligns them."""
    diff = difflib.SequenceMatcher(
        None,
        [normalized(w.text) for w in reference],
        [normalized(w.text) for w in hypothesis],
        autojunk=False,
    )
    return [
        (reference[block.a + k], hypothesis[block.b + k])
        for block in diff.get_matching_blocks()
        for k in range(block.size)
    ]


def errors(references: Sequence[Sequence[Word]], hypotheses: Sequence[Sequence[Word]]) -> Errors:
    """Boundary errors of each clip's written words against its read words."""
    starts, ends, joined = [], [], []
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        position = {id(w): i for i, w in enumerate(reference)}
        for read, written in matched(reference, hypothesis):
            i = position[id(read)]
            starts.append(abs(written.start - read.start))
            ends.append(abs(written.end - read.end))
            if i > 0 and read.start - reference[i - 1].end < JOINED_S:
                joined.append(starts[-1])
            if i + 1 < len(reference) and reference[i + 1].start - read.end < JOINED_S:
                joined.append(ends[-1])
    return Errors(_mean(starts), _mean(ends), _mean(joined))


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def measure_spec(spec: str, threads: int = 1) -> dict:
    """Load one model as the server does and score its word times on the known-boundary
    clips (`WordTiming.to_dict`); run in a process of its own by evaluation."""
    from audiodistill.data.synth.word_clips import word_clips
    from audiodistill.online.served_model import ServedModel

    clips = word_clips()
    model = ServedModel(spec, threads)
    model.transcribe_words([clips[0].audio])  # first-call costs are not timing
    aligned, served = [], []
    begin = time.perf_counter()
    for clip in clips:  # as the server does it, the snap kept apart to score both
        aligned.append(model.transcribe_words([clip.audio], snap=False)[0])
        served.append(snap_to_speech(aligned[-1], clip.audio))
    seconds = time.perf_counter() - begin
    references = [c.words for c in clips]
    return WordTiming(
        words=sum(len(r) for r in references),
        matched=sum(len(matched(r, h)) for r, h in zip(references, served, strict=True)),
        served=errors(references, served),
        alignment=errors(references, aligned),
        rtf=seconds / (sum(len(c.audio) for c in clips) / SAMPLE_RATE),
    ).to_dict()


def markdown_table(rows: Sequence[tuple[str, dict]]) -> str:
    """The word-timing table of an eval report: (model name, WordTiming dict) rows."""

    def ms(errors: dict) -> str:
        keys = ("start_mae_s", "end_mae_s", "joined_mae_s")
        return " / ".join(f"{errors[k] * 1000:.0f}" for k in keys)

    lines = [
        "Word timestamps: mean absolute error against single-word TTS clips joined with known "
        "gaps (audiodistill.evaluation.word_timing), words the model wrote right only",
        "",
        "| model | words scored | served start / end / joined (ms) "
        "| alignment alone start / end / joined (ms) | RTF |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, t in rows:
        lines.append(
            f"| {name} | {t['matched']} of {t['words']} | {ms(t['served'])} "
            f"| {ms(t['alignment'])} | {t['rtf']:.3f} |"
        )
    return "\n".join(lines) + "\n"
