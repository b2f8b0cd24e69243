"""Turning a CTC model's per-frame log-probabilities into text, one stream at a time.

Two decoders behind one interface, so recognizers, the server and the edge runtime take
either: `GreedyDecoder` (the best path: argmax per frame, repeats merged, blanks dropped) and
`BeamDecoder` (CTC prefix beam search, Graves 2012 / Hannun et al. 2014, optionally scored by
a character n-gram LM fitted on the pseudo-label text, ngram_lm.py). Both consume frames as they
arrive and keep all their state per stream, so decoding a stream chunk by chunk gives exactly
the text of decoding all its frames at once.

Numpy and plain Python only: the edge runtime uses this module without torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from audiodistill.config import from_dict
from audiodistill.decoding.ngram_lm import BOS, EOS, NgramLM, fit_kneser_ney

# the LM's token for the space between words (ARPA tokens cannot hold whitespace)
LM_SPACE = "|"
NEG_INF = -math.inf
LM_FILE = "lm.arpa"  # an export's character n-gram, beside its weights


@dataclass(frozen=True)
class DecodingOptions:
    # "greedy": the best path; "beam": prefix beam search, LM-scored when the model has one
    method: Literal["greedy", "beam"] = "beam"
    # hypotheses kept after each frame
    beam: int = 16
    # weight of the LM's log-probability of each character (and of the sentence end)
    lm_weight: float = 1.0
    # added per character when an LM scores: offsets the LM's cost per character, which
    # would otherwise make the search prefer dropping characters
    char_bonus: float = 1.5
    # a frame's characters below this log-probability are not tried (e^-5 ~ 0.7%): on
    # data/synth_big's dev set, -8 took 3x the time for the same WER, -4 lost a point
    prune_logprob: float = -5.0

    def __post_init__(self) -> None:
        if self.method not in ("greedy", "beam"):
            raise ValueError(f"method must be 'greedy' or 'beam', not {self.method!r}")
        if self.beam < 1 or self.lm_weight < 0:
            raise ValueError("beam must be >= 1 and lm_weight >= 0")


GREEDY = DecodingOptions(method="greedy")


class CtcStream(Protocol):
    def accept(self, logprobs: np.ndarray) -> str:
        """Take the next frames' log-probabilities [T, V]; return the best text so far."""

    def finalize(self) -> str:
        """The final text of every frame accepted (the stream is then spent)."""


class CtcDecoder(Protocol):
    def stream(self) -> CtcStream:
        """Start decoding one utterance."""


def decode(decoder: CtcDecoder, logprobs: np.ndarray) -> str:
    """The text of one utterance's frames [T, V]."""
    stream = decoder.stream()
    stream.accept(logprobs)
    return stream.finalize()


def load_decoder(
    decoding: dict | None, symbols: Sequence[str], blank: int, lm_path: Path
) -> CtcDecoder:
    """The decoder an export's config names (`decoding`: DecodingOptions as a dict; None,
    from exports that predate the beam search, is greedy), with the LM at `lm_path` if any."""
    options = from_dict(DecodingOptions, decoding or {"method": "greedy"}, "decoding.")
    if options.method == "greedy":
        return GreedyDecoder(tuple(symbols), blank)
    lm = NgramLM.load_arpa(lm_path) if lm_path.exists() else None
    return BeamDecoder(tuple(symbols), blank, options, lm)


def fit_char_lm(texts: Iterable[str], order: int) -> NgramLM:
    """A character n-gram over `texts` (already in the decoder's alphabet), spaces as
    LM_SPACE; empty texts are skipped."""
    return fit_kneser_ney((t.replace(" ", LM_SPACE) for t in texts if t.strip()), order)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis, for runtimes that return raw logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def greedy_text(ids_per_frame: Sequence[int], symbols: Sequence[str], blank: int = 0) -> str:
    """CTC best path: merge repeated frame ids, drop blanks, tidy spaces."""
    kept, previous = [], None
    for i in ids_per_frame:
        if i != previous and i != blank:
            kept.append(symbols[i])
        previous = i
    return " ".join("".join(kept).split())


@dataclass(frozen=True)
class GreedyDecoder:
    symbols: tuple[str, ...]
    blank: int = 0

    def stream(self) -> GreedyStream:
        return GreedyStream(self)


class GreedyStream:
    def __init__(self, decoder: GreedyDecoder):
        self._decoder = decoder
        self._ids: list[int] = []  # best id of every frame so far

    def accept(self, logprobs: np.ndarray) -> str:
        self._ids.extend(np.asarray(logprobs).argmax(-1).tolist())
        return greedy_text(self._ids, self._decoder.symbols, self._decoder.blank)

    def finalize(self) -> str:
        return greedy_text(self._ids, self._decoder.symbols, self._decoder.blank)


@dataclass(frozen=True)
class BeamDecoder:
    symbols: tuple[str, ...]
    blank: int = 0
    options: DecodingOptions = DecodingOptions()
    lm: NgramLM | None = None

    def stream(self) -> BeamStream:
        return BeamStream(self)

    def char_score(self, history: tuple[str, ...], token: str) -> float:
        """What the LM adds for `token` after `history` (LM tokens, <s> first)."""
        if self.lm is None:
            return 0.0
        return self.options.lm_weight * self.lm.logp(history, token) + self.options.char_bonus


class _Hypothesis:
    """A prefix's probability of ending in blank / in its last character, and its LM score."""

    __slots__ = ("blank", "char", "lm", "history")

    def __init__(self, lm: float, history: tuple[str, ...]):
        self.blank, self.char = NEG_INF, NEG_INF
        self.lm = lm
        self.history = history  # LM tokens of the prefix, <s> first

    def acoustic(self) -> float:
        return _logaddexp(self.blank, self.char)


def _logaddexp(a: float, b: float) -> float:
    """log(e^a + e^b) on Python floats (numpy's ufunc costs more per call than the math)."""
    if a < b:
        a, b = b, a
    return a if b == NEG_INF else a + math.log1p(math.exp(b - a))


class BeamStream:
    def __init__(self, decoder: BeamDecoder):
        self._decoder = decoder
        self._space = decoder.symbols.index(" ") if " " in decoder.symbols else -1
        # LM history kept per hypothesis: what the LM can see
        self._keep = decoder.lm.order - 1 if decoder.lm is not None else 0
        start = _Hypothesis(0.0, (BOS,))
        start.blank = 0.0
        self._beams: dict[str, _Hypothesis] = {"": start}  # prefix text -> hypothesis

    def accept(self, logprobs: np.ndarray) -> str:
        for frame in np.asarray(logprobs, dtype=np.float64):
            self._step(frame)
        return self._best(final=False)

    def finalize(self) -> str:
        return self._best(final=True)

    def _step(self, frame: np.ndarray) -> None:
        candidates = np.flatnonzero(frame > self._decoder.options.prune_logprob).tolist()
        candidates = candidates or [int(frame.argmax())]  # a threshold above every symbol
        following: dict[str, _Hypothesis] = {}
        for prefix, hyp in self._beams.items():
            total = hyp.acoustic()
            for c in candidates:
                self._extend(following, prefix, hyp, total, c, float(frame[c]))
        ranked = sorted(following.items(), key=lambda kv: kv[1].acoustic() + kv[1].lm, reverse=True)
        self._beams = dict(ranked[: self._decoder.options.beam])

    def _extend(self, following, prefix: str, hyp: _Hypothesis, total: float, c: int, p: float):
        """Add what frame symbol `c` (log-probability `p`) makes of `prefix` to `following`."""
        if c == self._decoder.blank:
            same = _get(following, prefix, hyp.lm, hyp.history)
            same.blank = _logaddexp(same.blank, total + p)
            return
        char = self._decoder.symbols[c]
        if c == self._space and (not prefix or prefix[-1] == " "):
            same = _get(following, prefix, hyp.lm, hyp.history)  # spaces never lead or repeat
            same.char = _logaddexp(same.char, total + p)
            return
        grown_from = total
        if prefix and prefix[-1] == char:  # a repeat without a blank between merges
            same = _get(following, prefix, hyp.lm, hyp.history)
            same.char = _logaddexp(same.char, hyp.char + p)
            grown_from = hyp.blank
        token = LM_SPACE if c == self._space else char
        if prefix + char not in following:
            score = hyp.lm + self._decoder.char_score(hyp.history, token)
            history = (*hyp.history, token)[-self._keep :] if self._keep else ()
            _get(following, prefix + char, score, history)
        grown = following[prefix + char]
        grown.char = _logaddexp(grown.char, grown_from + p)

    def _best(self, final: bool) -> str:
        def score(item: tuple[str, _Hypothesis]) -> float:
            prefix, hyp = item
            total = hyp.acoustic() + hyp.lm
            if final and self._decoder.lm is not None:
                # a trailing space is not part of the sentence the LM saw
                history = hyp.history[:-1] if prefix.endswith(" ") else hyp.history
                total += self._decoder.options.lm_weight * self._decoder.lm.logp(history, EOS)
            return total

        prefix, _ = max(self._beams.items(), key=score)
        return " ".join(prefix.split())


def _get(following: dict[str, _Hypothesis], prefix: str, lm: float, history) -> _Hypothesis:
    hyp = following.get(prefix)
    if hyp is None:
        hyp = following[prefix] = _Hypothesis(lm, history)
    return hyp
