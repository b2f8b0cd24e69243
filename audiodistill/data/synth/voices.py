"""Voices that read the synthetic corpus: the bundled hibari neural voice and espeak-ng.

Every voice returns 16 kHz mono float32 and is deterministic: the same text read by the same
voice gives the same samples (hibari's noise source is seeded from the text). Nothing here
downloads: hibari voices that are not inside the wheel are skipped, and espeak-ng is used
only when its binary is installed.
"""

from __future__ import annotations

import functools
import io
import random
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from audiodistill.data.audio import SAMPLE_RATE, resample

if TYPE_CHECKING:
    from hibari import Hibari

HIBARI_SPEEDS = (0.9, 1.0, 1.15)
# the wheel ships both spelling-to-sound lexicons, so one bundled voice gives two accents
HIBARI_ACCENTS = {"us": False, "gb": True}
ESPEAK_VARIANTS = (
    "en-us+m3",
    "en-us+f3",
    "en-gb+f2",
    "en-gb+m5",
    "en+klatt",
    "en-us+klatt2",
    "en-gb-scotland+m1",
    "en-gb-x-rp+f4",
)
ESPEAK_RATES = (140, 190)  # words per minute, drawn per variant
ESPEAK_PITCHES = (30, 70)  # espeak-ng's 0-99 pitch scale, drawn per variant


class Voice(Protocol):
    name: str  # stable across runs and machines: it is the manifest's speaker

    def synthesize(self, text: str) -> np.ndarray:
        """Text (words only, no digits) -> 16 kHz mono float32."""
        ...


@dataclass(frozen=True)
class HibariVoice:
    name: str
    model: str  # a hibari voice bundled in the wheel ("heart")
    british: bool  # British spelling-to-sound rules instead of American
    speed: float  # hibari's pace: 1.0 is the voice's own, 0.9 slower, 1.15 faster
    seed: int  # mixed with the text into the noise seed: varies takes, stays reproducible

    def synthesize(self, text: str) -> np.ndarray:
        tts = _hibari(self.model, self.british)
        noise_seed = [self.seed, zlib.crc32(text.encode())]
        audio = tts(text, speed=self.speed, seed=noise_seed)
        return resample(audio.astype(np.float32), tts.sample_rate, SAMPLE_RATE)


@functools.lru_cache(maxsize=4)
def _hibari(model: str, british: bool) -> Hibari:
    """One loaded model per (voice, accent) per process: loading takes a few hundred ms."""
    from hibari import Hibari
    from hibari.g2p import G2P

    return Hibari(voice=model, threads=1, g2p=G2P(british=british))


@dataclass(frozen=True)
class EspeakVoice:
    name: str
    variant: str  # espeak-ng `-v`: language plus voice variant, e.g. "en-gb+f2"
    rate: int  # espeak-ng `-s`: words per minute
    pitch: int  # espeak-ng `-p`: 0-99

    def synthesize(self, text: str) -> np.ndarray:
        import soundfile as sf

        command = ["espeak-ng", "-v", self.variant, "-s", str(self.rate), "-p", str(self.pitch)]
        # text on stdin, so a sentence starting with "-" is never read as an option
        result = subprocess.run(
            [*command, "--stdout"], input=text.encode(), capture_output=True, check=True
        )
        audio, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
        return resample(audio, rate, SAMPLE_RATE)


def bundled_hibari_models() -> list[str]:
    """hibari voices inside the installed wheel; the others would download on first use."""
    from hibari.voices import VOICES

    return [name for name, info in VOICES.items() if info.get("bundled")]


def speak(texts, seed: int = 0) -> list[np.ndarray]:
    """16 kHz clips of the first bundled hibari voice reading each of `texts`, plainly (no
    augmentation): speech for measurements and tests, made on the spot."""
    voice = HibariVoice("bundled", bundled_hibari_models()[0], False, 1.0, seed)
    return [voice.synthesize(text) for text in texts]


def hibari_voices(seed: int) -> list[HibariVoice]:
    return [
        HibariVoice(f"hibari-{model}-{accent}-x{speed:g}", model, british, speed, seed)
        for model in bundled_hibari_models()
        for accent, british in HIBARI_ACCENTS.items()
        for speed in HIBARI_SPEEDS
    ]


def espeak_voices(seed: int) -> list[EspeakVoice]:
    """espeak-ng variants with a rate and pitch drawn from `seed`; none without the binary."""
    if shutil.which("espeak-ng") is None:
        return []
    rng = random.Random(seed)
    voices = []
    for variant in ESPEAK_VARIANTS:
        rate, pitch = rng.randint(*ESPEAK_RATES), rng.randint(*ESPEAK_PITCHES)
        voices.append(EspeakVoice(f"espeak-{variant}-s{rate}-p{pitch}", variant, rate, pitch))
    return voices


def available_voices(seed: int, use_espeak: bool = True) -> list[Voice]:
    """Every voice this machine can run offline: hibari first, then espeak-ng if installed."""
    return [*hibari_voices(seed), *(espeak_voices(seed) if use_espeak else [])]
