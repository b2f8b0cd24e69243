"""CTranslate2 -> transformers conversion: the format reader, and the same teacher in both."""

import struct

import numpy as np
import pytest

from audiodistill.teachers.convert import read_ct2_model


def _write_string(f, text):
    f.write(struct.pack("<H", len(text) + 1) + text.encode() + b"\0")


def test_reader_parses_the_ctranslate2_layout(tmp_path):
    weight = np.arange(6, dtype=np.float16).reshape(2, 3)
    heads = np.array(4, dtype=np.int16)
    with open(tmp_path / "model.bin", "wb") as f:
        f.write(struct.pack("<I", 6))
        _write_string(f, "WhisperSpec")
        f.write(struct.pack("<II", 3, 2))
        for name, array, type_id in (("a/weight", weight, 4), ("a/num_heads", heads, 2)):
            _write_string(f, name)
            f.write(struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape))
            f.write(struct.pack("<BI", type_id, array.nbytes) + array.tobytes())
        f.write(struct.pack("<I", 1))
        _write_string(f, "b/weight")
        _write_string(f, "a/weight")
    spec, variables = read_ct2_model(tmp_path / "model.bin")
    assert spec == "WhisperSpec"
    np.testing.assert_array_equal(variables["a/weight"], weight)
    assert int(variables["a/num_heads"]) == 4
    assert variables["b/weight"] is variables["a/weight"]


def test_converted_directory_loads_offline(hf_teacher_dir):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    model = WhisperForConditionalGeneration.from_pretrained(hf_teacher_dir)
    processor = WhisperProcessor.from_pretrained(hf_teacher_dir)
    assert model.config.decoder_layers == 4 and model.config.d_model == 384
    assert processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>") == 50257
    assert model.generation_config.no_timestamps_token_id == 50362
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()


def test_both_backends_give_the_same_transcripts_and_logits(hf_teacher_dir, speech):
    """Same features into CTranslate2 (float32) and the converted model: same greedy tokens,
    same no-speech probability, and first-step log-probs within float32 noise."""
    import ctranslate2
    import torch

    from audiodistill.teachers.bundled import bundled_ct2_dir
    from audiodistill.teachers.whisper_hf import HFWhisperTeacher

    _, clips = speech
    hf = HFWhisperTeacher(str(hf_teacher_dir), top_k=5, threads=2)
    features = hf.processor.feature_extractor(
        clips, sampling_rate=16_000, return_tensors="np"
    ).input_features
    ct2 = ctranslate2.models.Whisper(str(bundled_ct2_dir()), compute_type="float32")
    results = ct2.generate(
        ctranslate2.StorageView.from_array(np.ascontiguousarray(features)),
        [hf.prompt] * len(clips),
        beam_size=1,
        return_no_speech_prob=True,
        return_logits_vocab=True,
        suppress_tokens=list(hf.model.generation_config.suppress_tokens),
        max_length=128,
    )
    ours = hf.transcribe(clips)
    for mine, theirs in zip(ours, results, strict=True):
        assert mine.token_ids == [t for t in theirs.sequences_ids[0] if t < hf.eot]
        assert mine.no_speech_prob == pytest.approx(theirs.no_speech_prob, abs=1e-3)
        first = torch.as_tensor(np.array(theirs.logits[0][0])).float().log_softmax(-1)
        top_values, top_ids = first.topk(5)
        assert mine.topk_ids[0] == top_ids.tolist()
        np.testing.assert_allclose(mine.topk_logprobs[0], top_values.numpy(), atol=2e-3)
