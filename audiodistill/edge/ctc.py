"""Greedy CTC decoding over a symbol table, in plain Python.

`CharTokenizer.greedy` (training, serving) and the edge recognizer both decode with
`greedy_text`, so a model gives the same text in either runtime. The edge side reads the
symbol table from the exported tokenizer.json and needs neither torch nor num2words.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

CHAR_TOKENIZER = "char"  # tokenizer.json "type" this decoder reads


def greedy_text(ids_per_frame: Iterable[int], symbols: Sequence[str], blank: int = 0) -> str:
    """CTC best path: merge repeated frame ids, drop blanks, tidy spaces."""
    kept, previous = [], None
    for i in ids_per_frame:
        if i != previous and i != blank:
            kept.append(symbols[i])
        previous = i
    return " ".join("".join(kept).split())


def load_symbols(path: str | Path) -> tuple[tuple[str, ...], int]:
    """(symbols, blank id) of a character tokenizer.json written by CharTokenizer.save."""
    payload = json.loads(Path(path).read_text())
    if payload.get("type") != CHAR_TOKENIZER:
        raise ValueError(f"{path}: not a char tokenizer (type {payload.get('type')!r})")
    return tuple(payload["symbols"]), int(payload.get("blank", 0))
