"""The CTC symbol table of an export, read without torch or num2words.

Training, serving and the edge recognizer all decode with `audiodistill.decoding.ctc_decoder`, so a
model gives the same text in either runtime; the edge side reads the symbols from here.
"""

from __future__ import annotations

import json
from pathlib import Path

CHAR_TOKENIZER = "char"  # tokenizer.json "type" this decoder reads


def load_symbols(path: str | Path) -> tuple[tuple[str, ...], int]:
    """(symbols, blank id) of a character tokenizer.json written by CharTokenizer.save."""
    payload = json.loads(Path(path).read_text())
    if payload.get("type") != CHAR_TOKENIZER:
        raise ValueError(f"{path}: not a char tokenizer (type {payload.get('type')!r})")
    return tuple(payload["symbols"]), int(payload.get("blank", 0))
