"""Word times of a CTC transcript from the frames it was decoded from (numpy only).

The final text (greedy, or the LM-scored beam search's choice) is force-aligned to the
frame log-probabilities: the most probable CTC path that spells exactly that text (Viterbi
over the text's characters with a blank before, between and after them). A word starts at
the first frame its first character holds and ends after the last frame its last character
holds. For greedy text that path is the greedy path itself; for a beam search it is the
best path of the words it chose, so one rule serves both decoders.

A CTC model emits each character in a short spike, often a frame or two after the sound:
times are those of the spikes, not of the sound's edges (docs/protocol.md says what that
costs). Numpy and plain Python only: the edge runtime uses this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from audiodistill.decoding.words import Word


def forced_path(logprobs: np.ndarray, labels: Sequence[int], blank: int) -> np.ndarray:
    """The label index (into `labels`) each frame of the best path spelling `labels`
    holds, -1 where it holds a blank; [T]. `logprobs` [T, V]; the text must fit the frames
    (it does when it was decoded from them)."""
    states = [blank]  # blank, label 0, blank, label 1, ..., blank
    for label in labels:
        states += [label, blank]
    states = np.array(states)
    n = len(states)
    # a state may be entered from itself, the state before, or (a label) the label before,
    # unless that label is the same character (CTC needs a blank between repeats)
    skip = np.zeros(n, dtype=bool)
    skip[2:] = (states[2:] != blank) & (states[2:] != states[:-2])
    score = np.full(n, -np.inf)
    score[:2] = logprobs[0, states[:2]]
    came = np.zeros((len(logprobs), n), dtype=np.int8)  # states stepped back to reach each
    for t in range(1, len(logprobs)):
        one = np.concatenate([[-np.inf], score[:-1]])
        two = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        options = np.stack([score, one, two])  # [3, n]
        came[t] = options.argmax(0)
        score = options.max(0) + logprobs[t, states]
    state = n - 1 if n == 1 or score[-1] >= score[-2] else n - 2
    path = np.empty(len(logprobs), dtype=np.int64)
    for t in range(len(logprobs) - 1, -1, -1):
        path[t] = state
        state -= int(came[t, state])
    return np.where(path % 2 == 1, path // 2, -1)


def ctc_words(
    logprobs: np.ndarray,
    text: str,
    symbols: Sequence[str],
    blank: int,
    frame_seconds: float,
    offset: float = 0.0,
) -> list[Word]:
    """The words of `text` (decoded from `logprobs` [T, V] with this symbol table) timed by
    the forced alignment; frame t spans [offset + t * frame_seconds, + frame_seconds)."""
    if not text.strip() or len(logprobs) == 0:
        return []
    index = {s: i for i, s in enumerate(symbols)}
    labels = [index[c] for c in text]
    frames = forced_path(np.asarray(logprobs, dtype=np.float64), labels, blank)
    held = [np.flatnonzero(frames == i) for i in range(len(labels))]  # frames of each char
    words, start = [], 0
    for end in [*(i for i, c in enumerate(text) if c == " "), len(text)]:
        chars = [held[i] for i in range(start, end) if len(held[i])]
        if chars:
            first, last = int(chars[0][0]), int(chars[-1][-1]) + 1
            times = (offset + first * frame_seconds, offset + last * frame_seconds)
            words.append(Word(text[start:end], *times))
        start = end + 1
    return words
