"""Teachers behind one interface: what the transformers backend returns, and the dispatch."""

import numpy as np
import pytest

from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.evaluation.wer import wer
from audiodistill.teachers import TeacherOptions, build_teacher
from audiodistill.teachers.bundled import BUNDLED_NAME, bundled_ct2_dir, revision_of


@pytest.fixture(scope="module")
def hf(hf_teacher_dir):
    return build_teacher(
        TeacherOptions(backend="hf", model=str(hf_teacher_dir), top_k=4, threads=2)
    )


def test_hf_teacher_fills_every_field(hf, speech):
    sentences, clips = speech
    for text, out in zip(sentences, hf.transcribe(clips), strict=True):
        assert wer(text, out.text) <= 0.25
        assert out.text == out.text.strip() and "<|" not in out.text
        assert all(t < hf.eot for t in out.token_ids)
        assert len(out.topk_ids) == len(out.token_ids) + 1  # a row per token plus end-of-text
        assert all(len(row) == 4 for row in out.topk_ids)
        logprobs = np.array(out.topk_logprobs)
        assert logprobs.shape == (len(out.token_ids) + 1, 4)
        assert (logprobs <= 0).all() and (np.diff(logprobs, axis=1) <= 0).all()
        # greedy picks the top entry: the chosen tokens are column 0
        assert [row[0] for row in out.topk_ids] == out.token_ids + [hf.eot]
        assert out.avg_logprob == pytest.approx(logprobs[:, 0].mean(), abs=1e-5)
        assert 0 <= out.no_speech_prob < 0.5
        assert 0 < out.compression_ratio < 2.4


def test_filled_teacher_labels_like_the_plain_one_with_soft_targets(hf, hf_teacher_dir, speech):
    """fill_window: the encoder hears each window's audio and a 1 s tail, its output filled
    to the window with silence states; the transcripts stay the teacher's."""
    sentences, clips = speech
    filled = build_teacher(
        TeacherOptions(backend="hf", model=str(hf_teacher_dir), top_k=4, fill_window=True)
    )
    plain = hf.transcribe(clips)
    long_clip = np.concatenate([clips[0], np.zeros(27 * SAMPLE_RATE, np.float32), clips[1]])
    out = filled.transcribe([*clips, long_clip])  # the last spans two windows
    for text, a, b in zip(sentences, plain, out, strict=False):
        assert wer(a.text, b.text) <= 0.15 and wer(text, b.text) <= 0.25
        assert len(b.topk_ids) == len(b.token_ids) + 1 and b.topk_ids[0][0] == b.token_ids[0]
    assert wer(f"{sentences[0]} {sentences[1]}", out[-1].text) <= 0.25


def test_batching_does_not_change_results(hf, speech):
    _, clips = speech
    together = hf.transcribe(clips[:4])  # different lengths in one batch
    alone = [hf.transcribe([c])[0] for c in clips[:4]]
    for a, b in zip(together, alone, strict=True):
        assert a.token_ids == b.token_ids
        np.testing.assert_allclose(a.topk_logprobs, b.topk_logprobs, atol=1e-4)
        assert a.no_speech_prob == pytest.approx(b.no_speech_prob, abs=1e-5)


def test_long_audio_is_decoded_in_30_second_windows(hf, speech):
    from audiodistill.teachers.whisper_hf import log_mel_windows

    _, clips = speech
    pause = np.zeros(SAMPLE_RATE * 2, dtype=np.float32)
    long = np.concatenate([np.concatenate([c, pause]) for c in clips * 2])
    assert 31 * SAMPLE_RATE < len(long) < 60 * SAMPLE_RATE
    assert len(log_mel_windows(hf.processor.feature_extractor, long)) == 2
    out = hf.transcribe([long])[0]
    assert len(out.topk_ids) == len(out.token_ids) + 1
    # speech from both windows made it into the transcript, in order
    text = out.text.lower()
    assert text.index("timer") < text.index("kitchen") < text.rindex("timer")


def test_silence_is_flagged_as_no_speech(hf):
    silent = [np.zeros(SAMPLE_RATE * 3, dtype=np.float32), np.zeros(0, dtype=np.float32)]
    for out in hf.transcribe(silent):
        assert out.no_speech_prob > 0.5 and len(out.token_ids) <= 2


def test_build_teacher_dispatches_on_backend(hf, hf_teacher_dir, monkeypatch, tmp_path):
    from audiodistill.teachers.whisper_hf import HFWhisperTeacher

    fake = build_teacher(TeacherOptions(backend="fake", top_k=3))
    assert fake.name == "fake-teacher" and len(fake.transcribe([np.zeros(100)])[0].topk_ids[0]) == 3
    ct2 = build_teacher(TeacherOptions(backend="ct2"))
    assert ct2.name == BUNDLED_NAME and len(ct2.revision) == 12
    # silence and empty audio give no segments: no division by zero, confidence -inf
    for out in ct2.transcribe([np.zeros(SAMPLE_RATE, dtype=np.float32), np.zeros(0)]):
        assert out.text == "" and out.avg_logprob == float("-inf")
    assert isinstance(hf, HFWhisperTeacher) and hf.name == hf_teacher_dir.name
    assert hf.revision == revision_of(hf_teacher_dir)
    # the bundled teacher: found in the cache where ensure_bundled_hf() keeps it
    monkeypatch.setenv("AUDIODISTILL_CACHE", str(tmp_path))
    cached = tmp_path / f"{BUNDLED_NAME}-hf-{revision_of(bundled_ct2_dir())}"
    cached.symlink_to(hf_teacher_dir)
    bundled = build_teacher(TeacherOptions(backend="hf"))
    assert bundled.name == BUNDLED_NAME and bundled.prompt == [50257, 50362]
    with pytest.raises(FileNotFoundError):
        build_teacher(TeacherOptions(backend="hf", model=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="teacher.backend"):
        build_teacher(TeacherOptions(backend="onnx"))


def test_ct2_teacher_transcribes_speech(speech):
    sentences, clips = speech
    out = build_teacher(TeacherOptions(backend="ct2", threads=2)).transcribe(clips[:2])
    for text, t in zip(sentences[:2], out, strict=True):
        assert wer(text, t.text) <= 0.25 and t.token_ids and t.avg_logprob < 0


# The bundled tiny.en spells this name "Deborah" unless a prompt says otherwise (checked on
# both backends); OpenAI's `prompt` exists for exactly this.
NAMED = "I think the wooden engine belongs to Debra."


@pytest.mark.parametrize("backend", ["ct2", "hf"])
def test_prompt_guides_spelling(backend, hf_teacher_dir):
    from audiodistill.testing.speech import speak

    model = str(hf_teacher_dir) if backend == "hf" else None
    teacher = build_teacher(TeacherOptions(backend=backend, model=model, threads=2, top_k=1))
    clip = speak((NAMED,))[0]
    assert "Deborah" in teacher.transcribe([clip])[0].text
    guided = teacher.transcribe([clip], prompt="Debra and Wesley Conley.")[0]
    assert "Debra." in guided.text and "Deborah" not in guided.text
    # the prompt conditions the transcript but is not part of it
    assert "Conley" not in guided.text


def test_previous_text_keeps_whisper_half_context(hf):
    from audiodistill.decoding.whisper_greedy import previous_text_ids

    tokenizer = hf.processor.tokenizer
    ids = previous_text_ids(tokenizer, "word " * 500, max_target_positions=448)
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|startofprev|>")
    assert len(ids) == 1 + 223
    assert tokenizer.decode(previous_text_ids(tokenizer, " Debra ", 448)[1:]) == " Debra"
