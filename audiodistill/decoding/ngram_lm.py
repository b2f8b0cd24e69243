"""A back-off n-gram language model: fitted with Kneser-Ney smoothing, stored as ARPA.

The streaming student's beam search (`ctc_decoder.py`) scores its hypotheses with a
character n-gram fitted on the pseudo-label text: the teacher's knowledge of which letter
sequences make English words and sentences, which a small CTC model trained on hours, not
thousands of hours, has not learned. Characters rather than words: every spelling stays
possible (names the text never had), and the decoder can score a hypothesis after every
character instead of only at word ends.

Fitting is interpolated Kneser-Ney with one discount; the result is written in ARPA, the
plain-text format KenLM and SRILM read and write, so a model fitted elsewhere loads here too
(`NgramLM.load_arpa`). Plain Python and no torch: the edge runtime decodes with it as well.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
# Kneser-Ney absolute discount: 0.75 is the usual single value (Chen & Goodman, 1998)
DISCOUNT = 0.75
LOG10 = math.log(10.0)
ARPA_NO_PROB = -99.0  # ARPA's log10 probability of <s>, which is never predicted
# lookups remembered before the memo starts over (~50 MB): a server decodes for days
CACHE_ENTRIES = 200_000


class NgramLM:
    """Natural-log probabilities of tokens given up to `order - 1` tokens of history.

    `logprobs[n]` maps n-gram tuples to log P(last | rest); `backoffs` maps a history to the
    log weight added when the next-longer n-gram is missing (ARPA semantics).
    """

    def __init__(
        self, order: int, logprobs: list[dict[tuple, float]], backoffs: dict[tuple, float]
    ):
        if order < 1 or len(logprobs) != order + 1:
            raise ValueError(f"an order-{order} model needs tables for orders 1..{order}")
        self.order = order
        self.logprobs = logprobs  # logprobs[0] is unused: orders count from 1
        self.backoffs = backoffs
        self._cache: dict[tuple, float] = {}

    def logp(self, history: Sequence[str], token: str) -> float:
        """log P(token | history); only the last `order - 1` history tokens count."""
        key = (*history[len(history) - self.order + 1 :], token) if self.order > 1 else (token,)
        value = self._cache.get(key)
        if value is None:
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            value = self._cache[key] = self._lookup(key)
        return value

    def _lookup(self, ngram: tuple) -> float:
        weight = 0.0
        for start in range(len(ngram) - 1):  # longest first, backing off one token at a time
            found = self.logprobs[len(ngram) - start].get(ngram[start:])
            if found is not None:
                return weight + found
            weight += self.backoffs.get(ngram[start:-1], 0.0)
        unigrams = self.logprobs[1]
        return weight + unigrams.get(ngram[-1:], unigrams[(UNK,)])

    def save_arpa(self, path: str | Path) -> None:
        """Write the model as an ARPA file (log10 values)."""
        lines = ["", "\\data\\"]
        lines += [f"ngram {n}={len(self.logprobs[n])}" for n in range(1, self.order + 1)]
        for n in range(1, self.order + 1):
            lines += ["", f"\\{n}-grams:"]
            for ngram, logprob in sorted(self.logprobs[n].items()):
                row = f"{_log10(logprob):.6f}\t{' '.join(ngram)}"
                if ngram in self.backoffs and n < self.order:
                    row += f"\t{self.backoffs[ngram] / LOG10:.6f}"
                lines.append(row)
        lines += ["", "\\end\\", ""]
        Path(path).write_text("\n".join(lines))

    @classmethod
    def load_arpa(cls, path: str | Path) -> NgramLM:
        """Read an ARPA file (as written by `save_arpa`, KenLM or SRILM)."""
        counts: dict[int, int] = {}
        logprobs: list[dict[tuple, float]] = [{}]
        backoffs: dict[tuple, float] = {}
        section = 0
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            line = line.strip()
            if not line or line in ("\\data\\", "\\end\\"):
                continue
            if line.startswith("ngram "):
                n, count = line[6:].split("=")
                counts[int(n)] = int(count)
            elif line.startswith("\\") and line.endswith("-grams:"):
                section = int(line[1:].split("-")[0])
                logprobs.append({})
            elif section:
                fields = line.split()
                if len(fields) not in (section + 1, section + 2):
                    raise ValueError(f"{path}:{number}: not an ARPA {section}-gram line")
                ngram = tuple(fields[1 : section + 1])
                logprobs[section][ngram] = float(fields[0]) * LOG10
                if len(fields) == section + 2:
                    backoffs[ngram] = float(fields[-1]) * LOG10
        order = len(logprobs) - 1
        if order < 1 or any(len(logprobs[n]) != counts.get(n) for n in range(1, order + 1)):
            raise ValueError(f"{path}: the n-gram counts in \\data\\ do not match the file")
        logprobs[1].setdefault((UNK,), ARPA_NO_PROB * LOG10)
        return cls(order, logprobs, backoffs)


def _log10(logprob: float) -> float:
    return max(logprob / LOG10, ARPA_NO_PROB)


def fit_kneser_ney(sentences: Iterable[Sequence[str]], order: int) -> NgramLM:
    """Interpolated Kneser-Ney over token sequences, returned in back-off form.

    Highest order: raw counts; lower orders: continuation counts (how many distinct tokens
    precede an n-gram), except n-grams that start with <s>, which nothing can precede.
    Unigrams are interpolated with a uniform distribution over the vocabulary plus <unk>.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, not {order}")
    counts = _counts(sentences, order)
    if not counts[1]:
        raise ValueError("no text to fit a language model on")
    vocab = {g[0] for g in counts[1]} - {BOS}
    spaced = sorted(w for w in vocab if not w or any(c.isspace() for c in w))
    if spaced:  # ARPA separates tokens by whitespace
        raise ValueError(f"tokens must be non-empty and hold no whitespace: {spaced[:5]!r}")
    logprobs: list[dict[tuple, float]] = [{} for _ in range(order + 1)]
    backoffs: dict[tuple, float] = {}
    lower = {(w,): 1.0 / (len(vocab) + 1) for w in (*vocab, UNK)}  # the uniform "order 0"
    for n in range(1, order + 1):
        probs, gammas = _interpolate(counts[n], lower, uniform=1.0 / (len(vocab) + 1))
        if n == 1:
            probs[(UNK,)] = gammas[()] / (len(vocab) + 1)
        logprobs[n] = {g: math.log(p) for g, p in probs.items()}
        backoffs.update({h: math.log(g) for h, g in gammas.items() if h})
        lower = probs
    logprobs[1][(BOS,)] = ARPA_NO_PROB * LOG10
    return NgramLM(order, logprobs, backoffs)


def _counts(sentences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """counts[n]: raw counts at the highest order, continuation counts below it."""
    raw = Counter()
    for sentence in sentences:
        tokens = [BOS, *sentence, EOS]
        for i in range(1, len(tokens)):
            raw[tuple(tokens[max(0, i - order + 1) : i + 1])] += 1
    counts = [Counter() for _ in range(order + 1)]
    for ngram, count in raw.items():
        counts[len(ngram)][ngram] += count  # shorter than order only at a sentence start
    for n in range(order, 1, -1):
        for ngram in counts[n]:
            counts[n - 1][ngram[1:]] += 1  # one more distinct token precedes ngram[1:]
    return counts


def _interpolate(
    counts: Counter, lower: dict[tuple, float], uniform: float
) -> tuple[dict[tuple, float], dict[tuple, float]]:
    """P(w | h) = max(c(h w) - D, 0) / c(h) + gamma(h) P_lower(w | h[1:]) for every seen
    (h, w), with gamma(h) = D * |{w: c(h w) > 0}| / c(h)."""
    totals, types = defaultdict(int), defaultdict(int)
    for ngram, count in counts.items():
        totals[ngram[:-1]] += count
        types[ngram[:-1]] += 1
    gammas = {h: DISCOUNT * types[h] / totals[h] for h in totals}
    probs = {
        g: max(c - DISCOUNT, 0) / totals[g[:-1]] + gammas[g[:-1]] * lower.get(g[1:], uniform)
        for g, c in counts.items()
    }
    return probs, gammas
