"""Real speech for tests, made on the spot with the bundled TTS voice (no files, no network)."""

from __future__ import annotations

import numpy as np

SENTENCES = (
    "Set a timer for ten minutes.",
    "The meeting moved to Thursday afternoon.",
    "Please call the office before noon.",
    "Where did you leave the blue umbrella?",
    "She paid forty dollars for the tickets.",
    "Turn off the lights in the kitchen.",
)


def speak(sentences=SENTENCES, seed: int = 0) -> list[np.ndarray]:
    """16 kHz mono float32 clips of the bundled hibari voice reading `sentences`."""
    from audiodistill.data.synth.voices import speak as read_aloud

    return read_aloud(sentences, seed)
