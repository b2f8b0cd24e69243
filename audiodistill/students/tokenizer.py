"""Character vocabulary for CTC students, and the written-to-spoken text mapping it needs.

Pseudo-labels are written text ("Holly paid $268 at 7:30 am."), but a character CTC model
hears words, so targets are the spoken form ("holly paid two hundred and sixty eight
dollars at seven thirty am"). Numbers are verbalized the way num2words says them, which is
also how the synthetic corpus reads them aloud. Evaluation normalizes both sides with
Whisper's English normalizer, which turns spelled numbers back into digits, so spoken-form
output still scores against written references.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from num2words import num2words

from audiodistill.data.spoken import spoken_clock
from audiodistill.decoding.ctc_decoder import greedy_text

BLANK = 0  # CTC blank id
SYMBOLS = ("", " ", *"abcdefghijklmnopqrstuvwxyz", "'")  # id -> character; "" is the blank
TOKENIZER_TYPE = "char"

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CURRENCIES = {"$": ("dollar", "cent"), "£": ("pound", "penny"), "€": ("euro", "cent")}
SCALES = ("thousand", "million", "billion", "trillion")
SUBUNIT_PLURALS = {"penny": "pence"}
NUMBER = r"\d[\d,]*(?:\.\d+)?"  # 1,234.5: commas group thousands, one decimal point

_PHONE = re.compile(r"\b\d{3}-\d{3}(?:-\d{4})?\b")
_MONEY_SCALED = re.compile(rf"([$£€])\s?({NUMBER})\s+({'|'.join(SCALES)})\b")
_MONEY = re.compile(r"([$£€])\s?(\d[\d,]*)(?:\.(\d\d?))?\b(?!\.\d)")
_PERCENT = re.compile(rf"({NUMBER})\s?%")
_TIME = re.compile(r"\b(\d{1,2}):(\d\d)\b(\s*[ap]\.?m\b\.?)?", re.IGNORECASE)
_ORDINAL = re.compile(r"\b(\d[\d,]*)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL = re.compile(r"\b(\d[\d,]*)\.(\d+)\b")
_INTEGER = re.compile(r"\d[\d,]*\d|\d")
_STRAY_APOSTROPHE = re.compile(r"(?<![a-z])'|'(?![a-z])")


def _words(n: int) -> str:
    return num2words(n)


def _digits(text: str) -> str:
    return " ".join(DIGITS[int(d)] for d in text if d.isdigit())


def _number(text: str) -> str:
    """'1,234' -> cardinal; '3.14' -> 'three point one four'."""
    whole, _, fraction = text.replace(",", "").partition(".")
    spoken = _words(int(whole))
    return f"{spoken} point {_digits(fraction)}" if fraction else spoken


def _integer(text: str) -> str:
    """A bare integer: identifiers (leading zero, 5+ digits without commas) digit by digit,
    years 1100-2099 as years, everything else as a cardinal."""
    plain = text.replace(",", "")
    if "," not in text and ((len(plain) > 1 and plain[0] == "0") or len(plain) >= 5):
        return _digits(plain)
    value = int(plain)
    if "," not in text and len(plain) == 4 and 1100 <= value <= 2099:
        return num2words(value, to="year")
    return _words(value)


def _plural(unit: str, count: float) -> str:
    if count == 1:
        return unit
    return SUBUNIT_PLURALS.get(unit, unit + "s")


def _money_scaled(match: re.Match) -> str:
    """'$1.5 million' -> 'one point five million dollars'."""
    unit = CURRENCIES[match.group(1)][0]
    return f" {_number(match.group(2))} {match.group(3)} {unit}s "


def _money(match: re.Match) -> str:
    """'$247.45' -> 'two hundred and forty-seven dollars and forty-five cents'."""
    unit, subunit = CURRENCIES[match.group(1)]
    whole = int(match.group(2).replace(",", ""))
    cents = int(match.group(3).ljust(2, "0")) if match.group(3) else 0
    parts = []
    if whole or not cents:
        parts.append(f"{_words(whole)} {_plural(unit, whole)}")
    if cents:
        parts.append(f"{_words(cents)} {_plural(subunit, cents)}")
    return " " + " and ".join(parts) + " "


def _time(match: re.Match) -> str:
    hour, minute, suffix = int(match.group(1)), int(match.group(2)), match.group(3)
    return f" {spoken_clock(hour, minute, suffix or '')} {suffix or ''} "


def _ordinal(match: re.Match) -> str:
    return f" {num2words(int(match.group(1).replace(',', '')), to='ordinal')} "


def spoken_form(text: str) -> str:
    """Written text -> lower-case words over the vocabulary: numbers, money, percentages,
    times and ordinals verbalized, '&' as 'and', hyphens as spaces, other punctuation gone."""
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _PHONE.sub(lambda m: f" {_digits(m.group(0))} ", text)
    text = _MONEY_SCALED.sub(_money_scaled, text)
    text = _MONEY.sub(_money, text)
    text = _PERCENT.sub(lambda m: f" {_number(m.group(1))} percent ", text)
    text = _TIME.sub(_time, text)
    text = _ORDINAL.sub(_ordinal, text)
    text = _DECIMAL.sub(lambda m: f" {_number(m.group(0))} ", text)
    text = _INTEGER.sub(lambda m: f" {_integer(m.group(0))} ", text)
    text = text.lower().replace("&", " and ").replace(".", "")
    text = re.sub(r"[^a-z' ]", " ", text)  # hyphens, commas, other punctuation and symbols
    text = _STRAY_APOSTROPHE.sub(" ", text)
    return " ".join(text.split())


class CharTokenizer:
    """Characters of the spoken form: blank=0, space, a-z, apostrophe (29 ids)."""

    def __init__(self, symbols: Sequence[str] = SYMBOLS):
        if symbols[BLANK] != "" or len(set(symbols)) != len(symbols):
            raise ValueError("symbols must start with the blank '' and hold no duplicates")
        self.symbols = tuple(symbols)
        self._ids = {s: i for i, s in enumerate(self.symbols)}

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        """Written text -> ids of its spoken form (never contains the blank)."""
        return [self._ids[c] for c in spoken_form(text) if c in self._ids]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; blanks are skipped, nothing is collapsed."""
        return "".join(self.symbols[i] for i in ids if i != BLANK)

    def greedy(self, ids_per_frame: Iterable[int]) -> str:
        """CTC best path: merge repeated frame ids, drop blanks, tidy spaces."""
        return greedy_text(ids_per_frame, self.symbols, BLANK)

    def save(self, path: str | Path) -> None:
        """tokenizer.json: {"type": "char", "symbols": [...]}; index = id."""
        payload = {"type": TOKENIZER_TYPE, "blank": BLANK, "symbols": list(self.symbols)}
        Path(path).write_text(json.dumps(payload, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        payload = json.loads(Path(path).read_text())
        if payload.get("type") != TOKENIZER_TYPE:
            raise ValueError(f"{path}: not a char tokenizer (type {payload.get('type')!r})")
        return cls(payload["symbols"])
