"""Augmentations of clean TTS audio (16 kHz mono float32), so students also hear rough input.

Each effect is a small function of (audio, rng, ...) that returns new audio; `augment`
applies a random non-empty subset and names what it did ("speed=1.05,noise=pink,snr=18"),
which goes into the manifest so results can be broken down by condition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiodistill.data.audio import SAMPLE_RATE, resample

TELEPHONE_BAND = (300.0, 3400.0)  # Hz: the classic narrowband telephone channel
NOISE_COLOURS = ("white", "pink", "brown")


@dataclass(frozen=True)
class AugmentOptions:
    # chance of each effect on an augmented utterance (at least one is always applied)
    speed_probability: float = 0.4
    noise_probability: float = 0.5
    reverb_probability: float = 0.3
    gain_probability: float = 0.4
    telephone_probability: float = 0.15
    # speed factor range: 1.1 is 10% faster and higher-pitched (Kaldi-style perturbation)
    speed_range: tuple[float, float] = (0.9, 1.1)
    # signal-to-noise ratio range in dB for additive noise
    snr_db_range: tuple[float, float] = (5.0, 30.0)
    # reverberation time range in seconds (small room to a hall)
    rt60_range: tuple[float, float] = (0.2, 0.6)
    # direct-to-reverberant ratio range in dB: lower sounds farther from the microphone
    drr_db_range: tuple[float, float] = (0.0, 10.0)
    # gain range in dB; the corpus builder only scales down afterwards if a peak clips
    gain_db_range: tuple[float, float] = (-12.0, 3.0)


def speed(
    audio: np.ndarray, rng: np.random.Generator, low: float, high: float
) -> tuple[np.ndarray, float]:
    """Play faster or slower by resampling: length shrinks by the factor, pitch follows."""
    factor = round(float(rng.uniform(low, high)), 2)
    return resample(audio, round(SAMPLE_RATE * factor), SAMPLE_RATE), factor


def coloured_noise(rng: np.random.Generator, length: int, colour: str) -> np.ndarray:
    """Unit-power noise with a 1/f^k spectrum: white k=0, pink k=1, brown k=2."""
    exponent = NOISE_COLOURS.index(colour)
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.fft.rfftfreq(length)
    frequencies[0] = frequencies[1] if length > 1 else 1.0  # keeps DC finite
    noise = np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=length)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def add_noise(
    audio: np.ndarray, rng: np.random.Generator, low: float, high: float
) -> tuple[np.ndarray, str, float]:
    """Add white, pink or brown noise at an SNR drawn in [low, high] dB."""
    snr_db = round(float(rng.uniform(low, high)))
    colour = str(rng.choice(NOISE_COLOURS))
    signal_power = float(np.mean(audio.astype(np.float64) ** 2)) + 1e-12
    noise = coloured_noise(rng, audio.size, colour) * np.sqrt(signal_power / 10 ** (snr_db / 10))
    return (audio + noise).astype(np.float32), colour, snr_db


def room_impulse_response(
    rng: np.random.Generator, rt60: float, drr_db: float, rate: int = SAMPLE_RATE
) -> np.ndarray:
    """A direct path plus an exponentially decaying noise tail that falls 60 dB in rt60 s."""
    t = np.arange(int(rt60 * rate)) / rate
    tail = rng.standard_normal(t.size) * np.exp(-6.908 * t / rt60)  # ln(1000) = 60 dB
    tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail**2))
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverb(
    audio: np.ndarray,
    rng: np.random.Generator,
    rt60_range: tuple[float, float],
    drr_range: tuple[float, float],
) -> tuple[np.ndarray, float, float]:
    """Convolve with a synthetic room; the tail past the end is cut so the length stays."""
    from scipy.signal import fftconvolve

    rt60 = round(float(rng.uniform(*rt60_range)), 2)
    drr_db = round(float(rng.uniform(*drr_range)))
    wet = fftconvolve(audio, room_impulse_response(rng, rt60, drr_db))[: audio.size]
    # keep the loudness of the dry signal: reverb should not read as a gain change
    wet *= np.sqrt(np.mean(audio**2) / (np.mean(wet**2) + 1e-12))
    return wet.astype(np.float32), rt60, drr_db


def gain(
    audio: np.ndarray, rng: np.random.Generator, low: float, high: float
) -> tuple[np.ndarray, float]:
    gain_db = round(float(rng.uniform(low, high)), 1)
    return (audio * 10 ** (gain_db / 20)).astype(np.float32), gain_db


def telephone(audio: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Band-limit to 300-3400 Hz; half the time also go through 8 kHz like a real line."""
    from scipy.signal import butter, sosfiltfilt

    through_8k = bool(rng.random() < 0.5)
    if through_8k:
        audio = resample(resample(audio, SAMPLE_RATE, 8_000), 8_000, SAMPLE_RATE)
    sos = butter(6, TELEPHONE_BAND, btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return sosfiltfilt(sos, audio).astype(np.float32), through_8k


def _chosen_effects(rng: np.random.Generator, options: AugmentOptions) -> list[str]:
    # in signal-chain order: the room (speed, reverb, noise), then the line, then the level
    chances = {
        "speed": options.speed_probability,
        "reverb": options.reverb_probability,
        "noise": options.noise_probability,
        "telephone": options.telephone_probability,
        "gain": options.gain_probability,
    }
    chosen = [name for name, p in chances.items() if rng.random() < p]
    return chosen or [list(chances)[int(rng.integers(len(chances)))]]


def augment(
    audio: np.ndarray, rng: np.random.Generator, options: AugmentOptions
) -> tuple[np.ndarray, str]:
    """Apply a random non-empty subset of the effects; returns audio and what was done."""
    done = []
    for name in _chosen_effects(rng, options):
        if name == "speed":
            audio, factor = speed(audio, rng, *options.speed_range)
            done.append(f"speed={factor:g}")
        elif name == "reverb":
            audio, rt60, drr_db = reverb(audio, rng, options.rt60_range, options.drr_db_range)
            done.append(f"reverb_rt60={rt60:g},drr={drr_db:g}")
        elif name == "noise":
            audio, colour, snr_db = add_noise(audio, rng, *options.snr_db_range)
            done.append(f"noise={colour},snr={snr_db:g}")
        elif name == "telephone":
            audio, through_8k = telephone(audio, rng)
            done.append("telephone_8k" if through_8k else "telephone")
        else:
            audio, gain_db = gain(audio, rng, *options.gain_db_range)
            done.append(f"gain_db={gain_db:g}")
    return audio, ",".join(done)
