"""The synthetic corpus: sentences, voices, augmentations and a tiny end-to-end build."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from audiodistill.config import load_config
from audiodistill.data.audio import SAMPLE_RATE, load_audio
from audiodistill.data.manifest import read_manifest
from audiodistill.data.synth import augment as aug
from audiodistill.data.synth import voices
from audiodistill.data.synth.corpus import SynthOptions, build_corpus, pad, plan, trim_silence
from audiodistill.data.synth.texts import MONTHS, generate_texts, normalized


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


@pytest.fixture(scope="module")
def many_texts():
    return generate_texts(3000, seed=0)


def test_texts_are_deterministic_for_a_seed():
    assert generate_texts(200, seed=3) == generate_texts(200, seed=3)
    assert generate_texts(200, seed=3) != generate_texts(200, seed=4)


def test_texts_are_varied(many_texts):
    assert len({w for t in many_texts for w in _words(t.text)}) >= 2000
    assert len({normalized(t.text) for t in many_texts}) == len(many_texts)
    kinds = {t.kind for t in many_texts}
    assert {"number", "phone", "date", "time", "command", "question", "statement"} <= kinds
    assert any(re.search(r"\d", t.text) for t in many_texts)
    assert any("$" in t.text for t in many_texts)
    assert any(re.search(r"\d:\d\d", t.text) for t in many_texts)
    assert any(any(m in t.text for m in MONTHS) for t in many_texts if t.kind == "date")
    assert any(t.text.endswith("?") for t in many_texts)
    assert any(t.text.startswith(("Set ", "Turn ", "Remind ")) for t in many_texts)


def test_short_and_long_sentences_have_their_lengths(many_texts):
    short = [len(t.text.split()) for t in many_texts if t.kind == "short"]
    long = [len(t.text.split()) for t in many_texts if t.kind == "long"]
    assert short and min(short) >= 2 and max(short) <= 4
    assert long and min(long) >= 20 and max(long) <= 30


def test_spoken_form_has_no_digits_or_symbols(many_texts):
    for t in many_texts:
        assert not re.search(r"[0-9$%]", t.spoken), t
    example = next(t for t in many_texts if "$" in t.text)
    assert "dollar" in example.spoken


def _tone_mix(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 6000 * t)).astype(
        np.float32
    )


def _band_energy(audio: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1 / SAMPLE_RATE)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _assert_audio(audio: np.ndarray, length: int | None = None) -> None:
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.isfinite(audio).all()
    if length is not None:
        assert audio.size == length


def test_telephone_removes_energy_above_the_band():
    audio = _tone_mix()
    for seed in (0, 1):  # one draw goes through 8 kHz, the other does not
        out, _ = aug.telephone(audio, _rng(seed))
        _assert_audio(out, audio.size)
        assert _band_energy(out, 3600, 8000) < 1e-3 * _band_energy(audio, 3600, 8000)
        assert _band_energy(out, 900, 1100) > 0.5 * _band_energy(audio, 900, 1100)


def test_gain_scales_by_the_reported_decibels():
    audio = _tone_mix()
    out, gain_db = aug.gain(audio, _rng(), -12.0, 3.0)
    _assert_audio(out, audio.size)
    np.testing.assert_allclose(out, audio * 10 ** (gain_db / 20), rtol=1e-5)


def test_noise_is_added_at_the_reported_snr():
    audio = _tone_mix()
    out, colour, snr_db = aug.add_noise(audio, _rng(), 10.0, 20.0)
    _assert_audio(out, audio.size)
    measured = 10 * np.log10(np.mean(audio**2) / np.mean((out - audio) ** 2))
    assert colour in aug.NOISE_COLOURS and abs(measured - snr_db) < 0.5


def test_speed_changes_length_by_the_factor_and_reverb_keeps_it():
    audio = _tone_mix()
    fast, factor = aug.speed(audio, _rng(), 0.9, 1.1)
    _assert_audio(fast)
    assert abs(fast.size - audio.size / factor) <= 2
    wet, rt60, _ = aug.reverb(audio, _rng(), (0.2, 0.6), (0.0, 10.0))
    _assert_audio(wet, audio.size)
    assert 0.2 <= rt60 <= 0.6 and not np.allclose(wet, audio)


def test_augment_describes_what_it_did_and_is_deterministic():
    audio = _tone_mix()
    for seed in range(10):
        out, description = aug.augment(audio, _rng(seed), aug.AugmentOptions())
        again, description_again = aug.augment(audio, _rng(seed), aug.AugmentOptions())
        _assert_audio(out)
        assert description and description == description_again
        assert np.array_equal(out, again)
        if "speed" not in description:
            assert out.size == audio.size


def test_trim_silence_then_pad():
    speech = _tone_mix(0.5)
    silence = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    trimmed = trim_silence(np.concatenate([silence, speech, silence]))
    assert abs(trimmed.size - speech.size) <= SAMPLE_RATE // 100
    assert pad(trimmed, 0.2).size == trimmed.size + 2 * round(0.2 * SAMPLE_RATE)


def test_espeak_is_skipped_without_its_binary(monkeypatch):
    monkeypatch.setattr(voices.shutil, "which", lambda name: None)
    assert voices.espeak_voices(0) == []
    assert voices.available_voices(0) == voices.hibari_voices(0)


def test_hibari_uses_only_voices_bundled_in_the_wheel():
    from hibari.voices import VOICES

    models = {v.model for v in voices.hibari_voices(0)}
    assert models and all(VOICES[m]["bundled"] for m in models)
    audio = voices.hibari_voices(0)[0].synthesize("Good morning.")
    _assert_audio(audio)
    assert 0.3 * SAMPLE_RATE < audio.size < 3 * SAMPLE_RATE


def test_plan_without_espeak_uses_hibari_only():
    jobs = plan(SynthOptions(n=30, use_espeak=False))
    assert {job.voice.name.split("-")[0] for job in jobs} == {"hibari"}


@pytest.fixture(scope="module")
def tiny_corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    options = SynthOptions(out=str(root / "a"), n=12, seed=7, workers=1)
    first = build_corpus(options, progress=False)
    # a second build in a process pool: the corpus must not depend on `workers`
    second_options = replace(options, out=str(root / "b"), workers=2)
    build_corpus(second_options, progress=False)
    return options, first, Path(options.out), Path(second_options.out)


def test_tiny_corpus_is_deterministic(tiny_corpora):
    _, first, a, b = tiny_corpora
    assert len(first) == 12
    assert (a / "manifest.jsonl").read_text() == (b / "manifest.jsonl").read_text()
    for u in first:
        name = Path(u.audio).name
        assert (a / "audio" / name).read_bytes() == (b / "audio" / name).read_bytes()


def test_tiny_corpus_reads_back(tiny_corpora):
    options, _, a, _ = tiny_corpora
    rows = read_manifest(a / "manifest.jsonl")
    assert len(rows) == 12
    for u in rows:
        audio = load_audio(u.audio)
        assert abs(audio.size / SAMPLE_RATE - u.duration) < 0.01
        assert u.text and u.speaker == u.meta["voice"]
        assert u.meta["augmentation"] and u.meta["spoken"]
    assert load_config(SynthOptions, a / "synth_config.yaml") == options


def test_tiny_corpus_splits_share_no_text(tiny_corpora):
    _, first, _, _ = tiny_corpora
    by_split = {
        s: {normalized(u.text) for u in first if u.split == s} for s in ("train", "dev", "test")
    }
    assert by_split["dev"] and by_split["test"]
    assert not by_split["train"] & by_split["dev"]
    assert not by_split["train"] & by_split["test"]
    assert not by_split["dev"] & by_split["test"]


def test_id_prefix_names_utterances_and_files(tmp_path):
    options = SynthOptions(out=str(tmp_path), n=2, seed=3, workers=1, id_prefix="extra_1")
    utterances = build_corpus(options, progress=False)
    assert [u.id for u in utterances] == ["extra_1-00000", "extra_1-00001"]
    assert all(Path(u.audio).name == f"{u.id}.wav" for u in utterances)


def test_id_prefix_must_be_a_plain_name(tmp_path):
    with pytest.raises(ValueError, match="id_prefix"):
        build_corpus(SynthOptions(out=str(tmp_path), n=2, id_prefix="../x"), progress=False)
