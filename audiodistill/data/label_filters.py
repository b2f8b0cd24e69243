"""Which pseudo-labels are good enough to train on.

Where a reference transcript exists, the teacher's WER against it decides (distil-whisper
found a 10% threshold best). Where none exists, the teacher's own confidence does: Whisper's
usual signals for hallucination (low average log-prob, repetition loops that compress well,
high no-speech probability).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class FilterOptions:
    # drop rows whose teacher WER against the reference is above this (rows with a reference)
    max_wer: float = 0.10
    # drop rows whose mean token log-prob is below this (rows without a reference)
    min_avg_logprob: float = -1.0
    # drop rows whose text compresses better than this: loops and repetitions (no reference)
    max_compression_ratio: float = 2.4
    # drop rows the teacher thinks hold no speech (no reference)
    max_no_speech_prob: float = 0.6
    # drop rows whose pseudo-label is empty: nothing to learn
    drop_empty: bool = True


# order matters: a row is counted under the first filter that drops it
REASONS = ("failed", "empty", "wer", "avg_logprob", "compression_ratio", "no_speech_prob")


def drop_reasons(labels: pd.DataFrame, options: FilterOptions) -> pd.Series:
    """Per row, the first reason it is dropped ("" when kept). Needs the label columns."""
    has_ref = labels["reference"].notna() & (labels["reference"].fillna("").str.len() > 0)
    no_ref = ~has_ref
    checks = {
        "failed": labels["error"].notna(),
        "empty": labels["text"].fillna("").str.strip().eq("") & options.drop_empty,
        "wer": has_ref & (labels["wer"] > options.max_wer),
        "avg_logprob": no_ref & (labels["avg_logprob"] < options.min_avg_logprob),
        "compression_ratio": no_ref & (labels["compression_ratio"] > options.max_compression_ratio),
        "no_speech_prob": no_ref & (labels["no_speech_prob"] > options.max_no_speech_prob),
    }
    reasons = pd.Series("", index=labels.index, dtype=object)
    for name in reversed(REASONS):  # earlier reasons overwrite later ones
        reasons[checks[name].fillna(False).astype(bool)] = name
    return reasons


def apply_filters(labels: pd.DataFrame, options: FilterOptions) -> tuple[pd.DataFrame, dict]:
    """Kept rows, and how many rows each filter dropped (failed items counted separately)."""
    reasons = drop_reasons(labels, options)
    counts = {name: int((reasons == name).sum()) for name in REASONS}
    return labels[reasons == ""].reset_index(drop=True), counts
