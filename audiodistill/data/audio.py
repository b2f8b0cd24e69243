"""Audio constants and loading: everything inside audiodistill is 16 kHz mono float32."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import BinaryIO

import numpy as np

from audiodistill.errors import UserError

SAMPLE_RATE = 16_000  # Whisper's rate; every model in the project consumes this
N_FFT = 400  # 25 ms analysis window at 16 kHz
HOP_LENGTH = 160  # 10 ms hop -> 100 mel frames per second
CHUNK_SECONDS = 30  # Whisper's fixed input window
N_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE  # 480,000 samples in one Whisper window

MAX_SECONDS = 4 * 60 * 60  # longer inputs are rejected: almost surely a wrong file, not speech
MIN_SAMPLES = SAMPLE_RATE // 100  # under 10 ms there is nothing a teacher can transcribe


class AudioError(UserError, ValueError):
    """An input that cannot be used as audio; the message says why (shown per item)."""


class AudioTooLong(AudioError):
    """Audio over the duration allowed, found from the file's header before decoding."""


# decoders name an in-memory input by its repr ("<_io.BytesIO object at 0x7f...>"), which
# means nothing to whoever sent the file
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>")


def load_audio(
    source: str | Path | bytes | BinaryIO, max_seconds: float = MAX_SECONDS
) -> np.ndarray:
    """Decode a file (wav/flac/ogg/mp3/...), bytes or a seekable binary file object to
    16 kHz mono float32 in [-1, 1].

    Stereo is averaged to mono, other rates are resampled. Raises AudioError with a reason
    for missing, empty, undecodable or too-short input, AudioTooLong (before decoding, where
    the header says the duration) for input over `max_seconds`.
    """
    import soundfile as sf

    in_memory = not isinstance(source, str | Path)
    name = "<upload>" if in_memory else str(source)
    if not in_memory:
        path = Path(source)
        if not path.is_file():
            raise AudioError(f"{name}: file not found")
        if path.stat().st_size == 0:
            raise AudioError(f"{name}: file is empty")
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        _check_duration(sf.info(handle).duration, max_seconds, name)
        _rewind(handle)
        data, rate = sf.read(handle, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as err:  # soundfile cannot read it (mp3 on old libsndfile, garbage...)
        _rewind(handle)
        data, rate = _decode_with_av(handle, name, err, max_seconds)
    audio = _to_model_input(data, rate, name)
    _check_duration(len(audio) / SAMPLE_RATE, max_seconds, name)  # a header can understate it
    return audio


def _check_duration(seconds: float, max_seconds: float, name: str) -> None:
    if seconds > max_seconds:
        raise AudioTooLong(f"{name}: {seconds:.0f} s is longer than {max_seconds:.0f} s")


def _rewind(handle) -> None:
    if hasattr(handle, "seek"):
        handle.seek(0)


def _decode_with_av(handle, name: str, first_error: Exception, max_seconds: float):
    """Fallback decoder (PyAV/ffmpeg) for formats libsndfile does not handle."""
    reason = _OBJECT_REPR.sub("the file", str(first_error))
    try:
        import av

        with av.open(handle if hasattr(handle, "read") else str(handle)) as container:
            stream = container.streams.audio[0]
            if container.duration is not None:  # microseconds, from the container's header
                _check_duration(container.duration / 1e6, max_seconds, name)
            rate = stream.rate
            frames = [f.to_ndarray() for f in container.decode(stream)]
    except AudioError:
        raise
    except Exception:
        raise AudioError(f"{name}: not decodable as audio ({reason})") from first_error
    if not frames:
        raise AudioError(f"{name}: no audio frames")
    # PyAV frames are [channels, samples] (planar) or [1, samples*channels] (packed)
    data = np.concatenate([_planar(f) for f in frames], axis=1).T
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / np.iinfo(data.dtype).max
    return data.astype(np.float32), rate


def _planar(frame: np.ndarray) -> np.ndarray:
    return frame if frame.ndim == 2 else frame[None, :]


def _to_model_input(data: np.ndarray, rate: int, name: str) -> np.ndarray:
    """[samples, channels] at `rate` -> [samples] mono float32 at SAMPLE_RATE."""
    if data.size == 0:
        raise AudioError(f"{name}: no samples")
    if not 1_000 <= rate <= 384_000:
        raise AudioError(f"{name}: implausible sample rate {rate} Hz")
    mono = data.mean(axis=1) if data.ndim == 2 else data
    audio = resample(mono.astype(np.float32), rate, SAMPLE_RATE)
    if audio.size < MIN_SAMPLES:
        raise AudioError(f"{name}: shorter than {MIN_SAMPLES / SAMPLE_RATE * 1000:.0f} ms")
    if not np.isfinite(audio).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return np.clip(audio, -1.0, 1.0)


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """High-quality resampling (soxr) of a 1-D float signal."""
    if orig_rate == target_rate:
        return audio
    import soxr

    return soxr.resample(audio, orig_rate, target_rate).astype(np.float32)


def save_wav(path: str | Path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV (compact, readable by every tool)."""
    import soundfile as sf

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio, -1.0, 1.0), rate, subtype="PCM_16")
