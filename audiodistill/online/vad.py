"""Energy voice-activity detection for endpointing live streams.

Streaming needs to know when a speaker has stopped, so a segment can be closed (its text
becomes final) and so silence never reaches a model that might hallucinate on it (Whisper
is known to). A frame counts as speech when it is louder than an absolute floor and than a
running noise-floor estimate by a margin. The estimate drops at once to any quieter frame
and creeps up slowly, so steady background noise raises it and speech does not.

Deliberately simple and frame-local: deterministic, no model to load, microseconds per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiodistill.data.audio import SAMPLE_RATE


@dataclass(frozen=True)
class VadOptions:
    # analysis frame; 30 ms (480 samples at 16 kHz) is the usual VAD frame
    frame_ms: int = 30
    # frames quieter than this (dB relative to full scale) are never speech
    threshold_db: float = -45.0
    # a speech frame must also be this much louder than the running noise floor
    margin_db: float = 12.0
    # how fast the noise floor rises toward louder frames, per frame (falls at once)
    floor_rise: float = 0.001
    # this much non-speech after speech closes a segment (pauses inside sentences are shorter)
    min_silence_ms: int = 600
    # a segment needs this much speech in all before it counts (a click is not speech)
    min_speech_ms: int = 90

    def __post_init__(self) -> None:
        if self.frame_ms <= 0 or self.min_silence_ms <= 0 or self.min_speech_ms < 0:
            raise ValueError("frame_ms and min_silence_ms must be > 0, min_speech_ms >= 0")

    @property
    def frame_samples(self) -> int:
        return SAMPLE_RATE * self.frame_ms // 1000


class EnergyVad:
    """Labels 16 kHz audio, fed in pieces of any size, frame by frame as speech or not."""

    def __init__(self, options: VadOptions = VadOptions()):
        self.options = options
        self._pending = np.zeros(0, dtype=np.float32)
        self._floor_db = options.threshold_db

    def accept(self, pcm: np.ndarray) -> list[bool]:
        """Speech decisions for every frame completed by `pcm` (leftover samples wait)."""
        self._pending = np.concatenate([self._pending, np.asarray(pcm, np.float32).ravel()])
        size = self.options.frame_samples
        n = len(self._pending) // size
        frames = self._pending[: n * size].reshape(n, size)  # [n, frame]
        self._pending = self._pending[n * size :]
        power = np.mean(frames.astype(np.float64) ** 2, axis=1)
        return [self._decide(db) for db in 10.0 * np.log10(power + 1e-12)]

    def _decide(self, db: float) -> bool:
        o = self.options
        speech = db > o.threshold_db and db > self._floor_db + o.margin_db
        if db < self._floor_db:
            self._floor_db = db
        else:
            self._floor_db += o.floor_rise * (db - self._floor_db)
        return bool(speech)
