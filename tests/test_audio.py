import numpy as np
import pytest
import soundfile as sf

from audiodistill.data.audio import SAMPLE_RATE, AudioError, AudioTooLong, load_audio


def _tone(rate, seconds=0.5, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    mono = 0.5 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


@pytest.mark.parametrize("fmt, rate", [("WAV", 16000), ("FLAC", 22050), ("OGG", 48000)])
def test_formats_and_rates_become_16k_mono(tmp_path, fmt, rate):
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, _tone(rate, channels=2), rate, format=fmt)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - SAMPLE_RATE // 2) <= 2
    assert 0.3 < np.abs(audio).max() <= 1.0


def test_bytes_input(tmp_path):
    sf.write(tmp_path / "x.wav", _tone(8000), 8000)
    assert len(load_audio((tmp_path / "x.wav").read_bytes())) == SAMPLE_RATE // 2


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "file is empty"),
        (b"this is not audio at all" * 10, "not decodable"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not decodable"),  # truncated header
    ],
)
def test_broken_files_say_why(tmp_path, content, reason):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=reason):
        load_audio(path)


def test_missing_too_short_and_too_long(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    sf.write(tmp_path / "short.wav", np.zeros(50, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match="shorter than"):
        load_audio(tmp_path / "short.wav")
    sf.write(tmp_path / "long.wav", np.zeros(SAMPLE_RATE * 3, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(AudioTooLong, match="longer than"):
        load_audio(tmp_path / "long.wav", max_seconds=2)


def test_file_objects_and_messages_without_internals(tmp_path):
    sf.write(tmp_path / "x.flac", _tone(22050), 22050)
    with open(tmp_path / "x.flac", "rb") as f:  # what an upload spooled to disk is
        assert abs(len(load_audio(f)) - SAMPLE_RATE // 2) <= 2
    with pytest.raises(AudioError) as err:
        load_audio(b"\x00\x01garbage" * 100)
    assert "object at 0x" not in str(err.value) and str(err.value).startswith("<upload>")
    sf.write(tmp_path / "long.flac", np.zeros(SAMPLE_RATE * 3, dtype=np.int16), SAMPLE_RATE)
    with open(tmp_path / "long.flac", "rb") as f, pytest.raises(AudioTooLong):
        load_audio(f, max_seconds=2)
