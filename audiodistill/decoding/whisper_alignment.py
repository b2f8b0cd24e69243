"""Word times of a Whisper-type transcript from its decoder's cross-attention (numpy only).

Whisper's own method (its `word_timestamps`): a few cross-attention heads, the "alignment
heads", attend to the audio where the token being predicted is spoken. For every generated
token (and end-of-text) their weights over the audio's encoder positions are renormalised
to the audio, standardised over the tokens, smoothed along time with a median filter and
averaged over the heads; dynamic time warping then finds the monotonic path of tokens
through time that gathers the most attention. A word starts where the path reaches its
first token and ends where the path reaches the token after its last one.

The transformers teacher, the whisper-distil student and its ONNX export all end here; the
CTranslate2 teacher runs the same steps inside CTranslate2 (`Whisper.align`) and joins at
`words_from_path`. Numpy and plain Python only: the edge runtime uses this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from audiodistill.decoding.words import Word

SECONDS_PER_POSITION = 0.02  # one encoder position: two 10 ms log-mel frames
MEDIAN_WIDTH = 7  # positions (140 ms) of the median filter, as Whisper's default

# token ids -> their text, not stripped (a token that starts a word starts with a space)
Decode = Callable[[list[int]], str]


def alignment_heads(
    heads: Sequence[Sequence[int]] | None, layers: int, heads_per_layer: int
) -> list[tuple[int, int]]:
    """The (layer, head) pairs to align with: the model's own alignment heads inside its
    `layers`, or, when it has none there, every head of the upper half of its decoder
    layers (Whisper's choice for a model whose heads are unknown)."""
    known = [(int(layer), int(head)) for layer, head in heads or () if int(layer) < layers]
    if known:
        return known
    return [(layer, h) for layer in range(layers // 2, layers) for h in range(heads_per_layer)]


def median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """Median of each `width` neighbours along the last axis (edges reflected)."""
    if width <= 1 or x.shape[-1] <= width // 2:
        return x
    half = width // 2
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(half, half)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    return np.median(windows, axis=-1)


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest monotonic path through `cost` [tokens, frames] from the first cell to
    the last, each step to the next frame, the next token, or both: (token index, frame
    index) of every cell on it, in order."""
    n, m = cost.shape
    # plain lists: the loop is sequential along both axes, and list access is the fast one
    above = [0.0] + [np.inf] * m  # cheapest total to each cell of the row before
    came = [[0] * (m + 1) for _ in range(n + 1)]  # 0: diagonal, 1: next token, 2: next frame
    for i in range(1, n + 1):
        costs, row, left = cost[i - 1].tolist(), [np.inf] * (m + 1), np.inf
        for j in range(1, m + 1):
            options = (above[j - 1], above[j], left)
            k = options.index(min(options))
            left = row[j] = costs[j - 1] + options[k]
            came[i][j] = k
        above = row
    tokens, frames = [], []
    i, j = n, m
    while i > 0 and j > 0:
        tokens.append(i - 1)
        frames.append(j - 1)
        k = came[i][j]
        i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k == 1 else (i, j - 1)
    return np.array(tokens[::-1]), np.array(frames[::-1])


def attention_path(weights: np.ndarray, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """The DTW path of the tokens through the audio's first `positions` encoder positions,
    from the alignment heads' weights [heads, tokens + 1, positions >= `positions`]."""
    w = weights[:, :, :positions].astype(np.float64)
    # the heads also attend to the fill after the audio: renormalise over the audio alone
    w = w / np.maximum(w.sum(-1, keepdims=True), 1e-12)
    w = (w - w.mean(1, keepdims=True)) / np.maximum(w.std(1, keepdims=True), 1e-12)
    matrix = median_filter(w, MEDIAN_WIDTH).mean(0)  # [tokens + 1, positions]
    return dtw(-matrix)


def word_groups(tokens: Sequence[int], decode: Decode) -> list[list[int]]:
    """Indices into `tokens` of each word: a token whose text starts with a space starts a
    new word; the others (the rest of a word, punctuation) join the word before."""
    groups: list[list[int]] = []
    for i, token in enumerate(tokens):
        if not groups or decode([token]).startswith(" "):
            groups.append([])
        groups[-1].append(i)
    return groups


def words_from_path(
    tokens: Sequence[int],
    decode: Decode,
    token_index: np.ndarray,
    frame_index: np.ndarray,
    seconds_per_frame: float = SECONDS_PER_POSITION,
) -> list[Word]:
    """Words of `tokens` timed by an alignment path over the tokens and end-of-text (token
    index len(tokens)): each token is placed where the path first reaches it."""
    first = np.full(len(tokens) + 1, -1)
    for t, f in zip(token_index.tolist(), frame_index.tolist(), strict=True):
        if first[t] < 0:
            first[t] = f
    times = first * seconds_per_frame
    words = []
    for group in word_groups(tokens, decode):
        text = decode([tokens[i] for i in group]).strip()
        if text:
            words.append(Word(text, float(times[group[0]]), float(times[group[-1] + 1])))
    return words


def timed_words(
    tokens: Sequence[int], decode: Decode, weights: np.ndarray, positions: int
) -> list[Word]:
    """Words of `tokens` timed from the alignment heads' cross-attention `weights` [heads,
    len(tokens) + 1, >= positions]: row i is the attention of the step that predicted
    token i (the last row, end-of-text); `positions` encoder positions hold the audio."""
    if not tokens or positions < 1:
        return []
    token_index, frame_index = attention_path(weights, positions)
    return words_from_path(tokens, decode, token_index, frame_index)
