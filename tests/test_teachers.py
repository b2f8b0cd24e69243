"""Teachers behind one interface: what the transformers backend returns, and the dispatch."""

import numpy as np
import pytest

from audiodistill.audio import SAMPLE_RATE
from audiodistill.metrics import wer
from audiodistill.teachers import TeacherOptions, build_teacher


@pytest.fixture(scope="module")
def hf(hf_teacher_dir):
    return build_teacher(TeacherOptions(backend="hf", model=str(hf_teacher_dir), top_k=4))


def test_hf_teacher_fills_every_field(hf, speech):
    sentences, clips = speech
    for text, out in zip(sentences, hf.transcribe(clips), strict=True):
        assert wer(text, out.text) <= 0.25
        assert len(out.topk_ids) == len(out.token_ids) + 1  # a row per token plus end-of-text
        assert all(len(row) == 4 for row in out.topk_ids)
        logprobs = np.array(out.topk_logprobs)
        assert (logprobs <= 0).all() and (np.diff(logprobs, axis=1) <= 0).all()
        chosen = [row[0] for row in out.topk_logprobs]  # greedy picks the top entry
        assert out.avg_logprob == pytest.approx(np.mean(chosen), abs=1e-4)
        assert out.topk_ids[-1][0] == hf.eot and 0 <= out.no_speech_prob < 0.5
        assert 0 < out.compression_ratio < 2.4


def test_batching_does_not_change_results(hf, speech):
    _, clips = speech
    together = hf.transcribe(clips[:3])
    alone = [hf.transcribe([c])[0] for c in clips[:3]]
    for a, b in zip(together, alone, strict=True):
        assert a.token_ids == b.token_ids
        np.testing.assert_allclose(a.topk_logprobs, b.topk_logprobs, atol=1e-3)


def test_long_audio_is_decoded_in_30_second_windows(hf, speech):
    sentences, clips = speech
    pause = np.zeros(SAMPLE_RATE * 2, dtype=np.float32)
    long = np.concatenate([np.concatenate([c, pause]) for c in clips * 2])
    assert len(long) > 31 * SAMPLE_RATE
    out = hf.transcribe([long])[0]
    assert len(out.topk_ids) == len(out.token_ids) + 1
    # speech from both windows made it into the transcript
    assert "timer" in out.text.lower() and "kitchen" in out.text.lower()


def test_silence_is_flagged_as_no_speech(hf):
    out = hf.transcribe([np.zeros(SAMPLE_RATE * 3, dtype=np.float32)])[0]
    assert out.no_speech_prob > 0.5


def test_build_teacher_dispatches_on_backend():
    fake = build_teacher(TeacherOptions(backend="fake", top_k=3))
    assert fake.name == "fake-teacher" and len(fake.transcribe([np.zeros(100)])[0].topk_ids[0]) == 3
    ct2 = build_teacher(TeacherOptions(backend="ct2"))
    assert ct2.name == "whisper-tiny.en" and len(ct2.revision) == 12
    with pytest.raises(ValueError, match="teacher.backend"):
        build_teacher(TeacherOptions(backend="onnx"))


def test_ct2_teacher_transcribes_speech(speech):
    sentences, clips = speech
    out = build_teacher(TeacherOptions(backend="ct2", threads=2)).transcribe(clips[:2])
    for text, t in zip(sentences[:2], out, strict=True):
        assert wer(text, t.text) <= 0.25 and t.token_ids and t.avg_logprob < 0
