"""CTranslate2 -> transformers conversion: the format reader, and the same teacher in both.

Tolerances: the two runtimes differ only by float32 rounding (different GEMM kernels and
summation order through 4 encoder and 4 decoder layers). On the 40 test utterances of the
synthetic corpus the largest logit difference over every step and vocabulary entry was
1.3e-4 (logits span about +-30); the tests allow 1e-3. Log-probs of chosen tokens differed
by under 1e-4.
"""

import struct
import threading

import numpy as np
import pytest

from audiodistill.teachers.bundled import bundled_ct2_dir
from audiodistill.teachers.convert import (
    dequantize,
    ensure_bundled_hf,
    read_ct2_model,
    whisper_state_dict,
)

# CTranslate2's dtype ids (model_spec.py `_dtype_to_type_id`)
TYPE_IDS = {np.dtype(t): i for i, t in enumerate((np.float32, np.int8, np.int16, np.int32))}
TYPE_IDS[np.dtype(np.float16)] = 4


def _write_string(f, text):
    f.write(struct.pack("<H", len(text) + 1) + text.encode() + b"\0")


def _write_ct2(path, variables: dict[str, np.ndarray], aliases: dict[str, str]):
    """A model.bin laid out as ctranslate2/specs/model_spec.py `_serialize` writes it."""
    with open(path, "wb") as f:
        f.write(struct.pack("<I", 6))
        _write_string(f, "WhisperSpec")
        f.write(struct.pack("<II", 3, len(variables)))
        for name, array in variables.items():
            _write_string(f, name)
            f.write(struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape))
            f.write(struct.pack("<BI", TYPE_IDS[array.dtype], array.nbytes) + array.tobytes())
        f.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases.items():
            _write_string(f, alias)
            _write_string(f, target)


def test_reader_round_trips_the_ctranslate2_layout(tmp_path):
    weight = np.arange(6, dtype=np.float16).reshape(2, 3)
    heads = np.array(4, dtype=np.int16)
    variables = {"a/weight": weight, "a/num_heads": heads}
    _write_ct2(tmp_path / "model.bin", variables, {"b": "a/weight"})
    spec, variables = read_ct2_model(tmp_path / "model.bin")
    assert spec == "WhisperSpec"
    np.testing.assert_array_equal(variables["a/weight"], weight)
    assert variables["a/weight"].dtype == np.float16 and int(variables["a/num_heads"]) == 4
    assert variables["b"] is variables["a/weight"]


def test_quantized_weights_are_restored(tmp_path):
    """int8 with a scale per output row (conv kernels flattened), int16 with one scale."""
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(4, 3, 3)).astype(np.float32)
    linear = rng.normal(size=(5, 2)).astype(np.float32)
    row_scale = (127 / np.abs(conv.reshape(4, -1)).max(axis=1)).astype(np.float32)
    int8 = np.rint(conv * row_scale[:, None, None]).astype(np.int8)
    scale16 = np.float32(2**10 / np.abs(linear).max())
    int16 = np.rint(linear * scale16).astype(np.int16)
    _write_ct2(
        tmp_path / "model.bin",
        {
            "conv/weight": int8,
            "conv/weight_scale": row_scale,
            "fc/weight": int16,
            "fc/weight_scale": np.array(scale16),
        },
        {},
    )
    variables = dequantize(read_ct2_model(tmp_path / "model.bin")[1])
    assert set(variables) == {"conv/weight", "fc/weight"}
    np.testing.assert_allclose(variables["conv/weight"], conv, atol=np.abs(conv).max() / 127)
    np.testing.assert_allclose(variables["fc/weight"], linear, atol=1 / scale16)


@pytest.fixture(scope="module")
def ct2_variables():
    return read_ct2_model(bundled_ct2_dir() / "model.bin")[1]


def test_every_ct2_weight_finds_a_place(ct2_variables):
    assert len(ct2_variables) == 149  # 148 tensors and the projection alias
    extra = dict(ct2_variables) | {"decoder/extra/weight": np.zeros((2, 2), np.float16)}
    with pytest.raises(ValueError, match="decoder/extra/weight"):
        whisper_state_dict(extra)
    untied = dict(ct2_variables)
    untied["decoder/projection/weight"] = ct2_variables["decoder/projection/weight"] * 2
    with pytest.raises(ValueError, match="projection"):
        whisper_state_dict(untied)


def test_converted_directory_loads_offline(hf_teacher_dir):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    model = WhisperForConditionalGeneration.from_pretrained(hf_teacher_dir)
    processor = WhisperProcessor.from_pretrained(hf_teacher_dir)
    assert model.config.decoder_layers == 4 and model.config.d_model == 384
    assert model.config.vocab_size == 51864 and model.config.num_mel_bins == 80
    assert processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>") == 50257
    assert model.generation_config.no_timestamps_token_id == 50362
    assert model.generation_config.eos_token_id == 50256
    assert model.generation_config.begin_suppress_tokens == [220, 50256]
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()


@pytest.fixture(scope="module")
def hf(hf_teacher_dir):
    from audiodistill.teachers.whisper_hf import HFWhisperTeacher

    return HFWhisperTeacher(str(hf_teacher_dir), top_k=5, threads=2)


def test_same_transcripts_as_the_ctranslate2_teacher(hf, speech):
    from audiodistill.teachers.whisper_ct2 import CT2WhisperTeacher

    _, clips = speech
    ct2 = CT2WhisperTeacher(compute_type="float32", threads=2)
    for mine, theirs in zip(hf.transcribe(clips), ct2.transcribe(clips), strict=True):
        assert mine.token_ids == theirs.token_ids and mine.text == theirs.text
        assert mine.avg_logprob == pytest.approx(theirs.avg_logprob, abs=1e-3)
        # the features differ a little (two STFT implementations)
        assert mine.no_speech_prob == pytest.approx(theirs.no_speech_prob, abs=2e-3)


def test_same_logits_as_ctranslate2_on_the_same_features(hf, speech):
    """Every decoding step's full-vocabulary logits, CTranslate2's greedy path replayed
    through the converted model in one teacher-forced pass."""
    import ctranslate2
    import torch

    from audiodistill.teachers.whisper_hf import log_mel_windows

    _, clips = speech
    extractor = hf.processor.feature_extractor
    features = np.stack([log_mel_windows(extractor, c)[0] for c in clips])  # [B, 80, 3000]
    ct2 = ctranslate2.models.Whisper(str(bundled_ct2_dir()), compute_type="float32")
    results = ct2.generate(
        ctranslate2.StorageView.from_array(features),
        [hf.prompt] * len(clips),
        beam_size=1,
        return_no_speech_prob=True,
        return_logits_vocab=True,
        suppress_tokens=list(hf.model.generation_config.suppress_tokens),
    )
    for i, result in enumerate(results):
        tokens = hf.prompt + result.sequences_ids[0]
        with torch.inference_mode():
            out = hf.model(
                input_features=torch.from_numpy(features[i : i + 1]),
                decoder_input_ids=torch.tensor([tokens]),
            )
        logits = out.logits[0]  # [prompt + steps, vocab]
        # the rows predicting each generated token and end-of-text: [steps, vocab]
        ours = logits[len(hf.prompt) - 1 :].numpy()
        theirs = np.stack([np.asarray(step).reshape(-1) for step in result.logits[0]])
        assert theirs.shape == ours.shape and theirs[-1].argmax() == hf.eot
        allowed = theirs > -1e30  # CTranslate2 reports suppressed tokens at -inf
        np.testing.assert_allclose(ours[allowed], theirs[allowed], atol=1e-3, rtol=0)
        no_speech = logits[0].softmax(-1)[hf.no_speech_id]  # at start-of-transcript
        assert float(no_speech) == pytest.approx(result.no_speech_prob, abs=1e-4)


def test_bundled_conversion_is_cached_and_race_safe(monkeypatch, tmp_path):
    """Two converters at once (as two Ray actors starting together): one wins the rename,
    the other uses its result; both get a complete directory and nothing is left over."""
    # threads stand in for actor processes; transformers' lazy imports are not thread-safe
    from transformers import (  # noqa: F401
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    monkeypatch.setenv("AUDIODISTILL_CACHE", str(tmp_path))
    found, errors = [], []

    def convert():
        try:
            found.append(ensure_bundled_hf())
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=convert) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and found[0] == found[1]
    assert [p.name for p in tmp_path.iterdir()] == [found[0].name]
    assert (found[0] / "model.safetensors").is_file()
    before = (found[0] / "model.safetensors").stat().st_mtime_ns
    assert ensure_bundled_hf() == found[0]
    assert (found[0] / "model.safetensors").stat().st_mtime_ns == before
