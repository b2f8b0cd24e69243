"""How the project says things aloud, shared by the corpus builder (what the TTS speaks) and
the character tokenizer (what a student learns to spell), so the two can never disagree."""

from __future__ import annotations

from num2words import num2words


def spoken_clock(hour: int, minute: int, suffix: str = "") -> str:
    """"7:05" -> "seven oh five", "7:00" -> "seven o'clock" (just "seven" before am/pm)."""
    if minute == 0:
        return num2words(hour) if suffix else f"{num2words(hour)} o'clock"
    if minute < 10:
        return f"{num2words(hour)} oh {num2words(minute)}"
    return f"{num2words(hour)} {num2words(minute)}"
