"""English spelling for the character LM: text made from a word-frequency list.

A CTC student learns to spell from its training transcripts, which are hours at most; its
misses on recorded speech are mostly near-spellings ("discribe", "hipnatism"). The character
n-gram that scores its beam search (ctc_decoder.py) can know far more words than the
transcripts hold. The `wordfreq` package (on PyPI, its data inside it: nothing is fetched)
ranks English words by frequency over large corpora; this module turns its top N words into
text for the n-gram, so it learns how English words are spelled and how often each occurs,
while the pseudo-label transcripts beside them teach it real word order.

Each word is a text of its own between two spaces (" word "), so the n-gram learns how words
start and end without learning word sequences that nothing said (random word orders made an
8-gram four times larger). A word is repeated 1 + log2(frequency / frequency of the N-th
word) times, so common words weigh more without drowning the rest ("the" about 19 times,
the N-th word once).
"""

from __future__ import annotations

import math
import re

# words the character set spells: letters and inner apostrophes (tokenizer.SYMBOLS)
_SPELLABLE = re.compile(r"[a-z]+(?:'[a-z]+)*")


def lexicon_texts(words: int) -> list[str]:
    """The `words` most frequent English words as LM texts (see module doc)."""
    if words <= 0:
        return []
    from wordfreq import top_n_list, word_frequency

    ranked = [w for w in top_n_list("en", words) if _SPELLABLE.fullmatch(w)]
    floor = word_frequency(ranked[-1], "en")
    return [
        f" {w} "
        for w in ranked
        for _ in range(1 + int(math.log2(max(word_frequency(w, "en") / floor, 1.0))))
    ]
