"""whisper-distil: layer choice, weight copying, unpadded encoder, target alignment, loss,
and running where the model is (CPU, a GPU)."""

import copy

import numpy as np
import pytest
import torch

from audiodistill.students.whisper_distil import (
    WhisperDistilOptions,
    WhisperDistilTask,
    encode,
    encode_audio,
    fill,
    kept_layer_ids,
    log_mel,
    pad_targets,
    shrink_decoder,
    silence_states,
    transcribe,
)
from audiodistill.training.kd_losses import TokenCrossEntropyLoss


@pytest.fixture(scope="module")
def tiny_whisper():
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=200,
        d_model=32,
        encoder_layers=2,
        decoder_layers=4,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=64,
        decoder_start_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    return WhisperForConditionalGeneration(config).eval()


@pytest.mark.parametrize(
    "layers, keep, expected",
    [(4, 1, [3]), (4, 2, [0, 3]), (4, 3, [0, 2, 3]), (32, 2, [0, 31]), (4, 4, [0, 1, 2, 3])],
)
def test_kept_layers_are_maximally_spaced_and_include_the_last(layers, keep, expected):
    assert kept_layer_ids(layers, keep) == expected


def test_kept_layers_reject_impossible_counts():
    with pytest.raises(ValueError, match="decoder_layers must be in 1..4"):
        kept_layer_ids(4, 5)


def test_shrunk_decoder_copies_the_chosen_teacher_layers(tiny_whisper):
    student = shrink_decoder(tiny_whisper, 2)
    assert student.config.decoder_layers == 2
    teacher_state, student_state = tiny_whisper.state_dict(), student.state_dict()
    for new, old in ((0, 0), (1, 3)):
        for name in ("self_attn.q_proj.weight", "fc2.bias", "encoder_attn.v_proj.weight"):
            got = student_state[f"model.decoder.layers.{new}.{name}"]
            assert torch.equal(got, teacher_state[f"model.decoder.layers.{old}.{name}"])
    assert torch.equal(
        student_state["model.encoder.layers.1.fc1.weight"],
        teacher_state["model.encoder.layers.1.fc1.weight"],
    )
    # the output projection stays tied to the token embedding
    embedding = student.model.decoder.embed_tokens.weight
    assert student.proj_out.weight.data_ptr() == embedding.data_ptr()


def test_unpadded_encoder_matches_transformers_on_full_windows(tiny_whisper):
    features = torch.randn(2, 80, 3000)
    with torch.no_grad():
        ours = encode(tiny_whisper, features)
        theirs = tiny_whisper.model.encoder(features).last_hidden_state
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_unpadded_encoder_accepts_short_input(tiny_whisper):
    with torch.no_grad():
        out = encode(tiny_whisper, torch.randn(1, 80, 400))
    assert out.shape == (1, 200, 32)  # 400 mel frames (4 s) -> 200 positions of 20 ms


def _rows():
    return [
        {
            "token_ids": [10, 11, 12],
            "topk_ids": [[10, 5], [11, 5], [12, 5], [2, 5]],
            "topk_logprobs": [[-0.1, -2.0], [-0.2, -2.0], [-0.3, -2.0], [-0.05, -3.0]],
        },
        {"token_ids": [20], "topk_ids": [[20, 6], [2, 6]], "topk_logprobs": [[-0.5, -1.0]] * 2},
    ]


def test_fill_extends_the_encoder_output_to_the_window_with_silence(tiny_whisper):
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor()
    silence = silence_states(tiny_whisper, extractor)
    assert silence.shape == (1, 1500, 32)
    clips = [np.random.default_rng(0).standard_normal(16_000).astype(np.float32) * 0.1] * 2
    with torch.no_grad():
        encoded = encode(tiny_whisper, log_mel(extractor, clips, 1.0))  # 2 s: 100 positions
        filled = fill(encoded, silence)
        window = encode(tiny_whisper, log_mel(extractor, clips, None))
    assert encoded.shape == (2, 100, 32) and filled.shape == (2, 1500, 32)
    assert torch.equal(filled[:, :100], encoded)
    assert torch.equal(filled[:, 100:], silence[:, 100:].expand(2, -1, -1))
    assert torch.equal(fill(window, silence), window)  # already the whole window


def test_filled_window_transcribes_like_the_teacher(hf_teacher_dir, speech, tmp_path):
    """The teacher's own decoder on a 1 s tail: bare, it repeats its sentence on some clips
    (which the loop guard then cuts back); filled to the window it gives the teacher's 30 s
    window transcripts, after export and reload too."""
    from audiodistill.evaluation.wer import corpus_wer
    from audiodistill.students.whisper_distil import WhisperDistilModel

    sentences, clips = speech

    def student(**kw) -> tuple[WhisperDistilTask, torch.nn.Module]:
        task = WhisperDistilTask(WhisperDistilOptions(str(hf_teacher_dir), decoder_layers=4, **kw))
        return task, task.build().eval()

    teacher = student(tail_seconds=None)
    expected = teacher[0].transcribe(teacher[1], clips)
    assert corpus_wer(sentences, expected).errors / len(" ".join(sentences).split()) < 0.2
    bare_task, bare = student(tail_seconds=1.0, fill_window=False)
    unguarded = transcribe(bare, bare_task.processor, clips, tail_seconds=1.0, loop_repeats=0)
    # 2 of the 6 repeat their sentence until the token budget runs out
    assert sum(len(a) > 3 * len(b) for a, b in zip(unguarded, expected, strict=True)) >= 1
    guarded = bare_task.transcribe(bare, clips)
    assert all(len(a) < 2 * len(b) for a, b in zip(guarded, expected, strict=True))
    filled_task, filled = student(tail_seconds=1.0, fill_window=True)
    assert filled_task.transcribe(filled, clips) == expected
    filled_task.save(filled, tmp_path / "filled")
    assert WhisperDistilModel(tmp_path / "filled").transcribe(clips) == expected


def test_audio_is_encoded_on_the_models_device_in_its_dtype(tiny_whisper):
    """Features are made on the CPU; a model elsewhere must get them on its own device. The
    meta device stands in for a GPU here: a CPU tensor fed to it fails as it would on CUDA."""
    from transformers import WhisperFeatureExtractor

    model = copy.deepcopy(tiny_whisper).to("meta", torch.float16)
    clips = [np.zeros(16_000, np.float32), np.zeros(8_000, np.float32)]
    with pytest.raises(RuntimeError, match="device"):  # what transcribe once did
        encode(model, log_mel(WhisperFeatureExtractor(), clips, 1.0).to(torch.float16))
    encoded = encode_audio(model, WhisperFeatureExtractor(), clips, 1.0)
    assert encoded.device.type == "meta" and encoded.dtype == torch.float16
    assert encoded.shape == (2, 100, 32)  # 1 s of audio and the 1 s tail: 2 s, 100 positions


CUDA = pytest.param(
    "cuda",
    marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ],
)


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_dev_evaluation_runs_where_the_model_is(hf_teacher_dir, speech, device):
    """The training loop's dev evaluation on a student placed on `device`: with all 4 decoder
    layers kept the student is the teacher, so it must transcribe the clips well."""
    from audiodistill.training.loop import evaluate

    sentences, clips = speech
    task = WhisperDistilTask(WhisperDistilOptions(str(hf_teacher_dir), decoder_layers=4))
    model = task.build().to(device)
    rows = [{"audio": c, "reference": s} for s, c in zip(sentences, clips, strict=True)]
    metrics = evaluate(model, task, rows)
    assert metrics["dev_wer"] < 0.2 and metrics["dev_utterances"] == len(clips)
    assert task._silence(model).device.type == device  # the fill is computed there too


def test_targets_line_up_with_decoder_positions():
    prompt, eot = [1, 7], 2
    inputs, labels, topk_ids, topk_logprobs = pad_targets(_rows(), prompt, eot, top_k=3)
    ignore = TokenCrossEntropyLoss.IGNORE
    assert inputs[0].tolist() == [1, 7, 10, 11, 12]
    assert labels[0].tolist() == [ignore, 10, 11, 12, eot]
    assert inputs[1].tolist() == [1, 7, 20, eot, eot]
    assert labels[1].tolist() == [ignore, 20, eot, ignore, ignore]
    # the teacher's first soft target (for token 10) sits where token 10 is predicted
    assert topk_ids[0, 1].tolist() == [10, 5, 0]
    assert topk_logprobs[0, 1, :2].tolist() == pytest.approx([-0.1, -2.0])
    assert topk_logprobs[0, 1, 2] < -1e3  # the label stored only 2: the third slot is empty
    assert (topk_ids[0, 1:5, 0] == labels[0, 1:5]).all()


def test_distillation_loss_trains_the_student(tiny_whisper):
    task = WhisperDistilTask(WhisperDistilOptions(decoder_layers=2, top_k=2))
    student = shrink_decoder(tiny_whisper, 2).train()
    inputs, labels, topk_ids, topk_logprobs = pad_targets(_rows(), [1, 7], 2, top_k=2)
    batch = {
        "features": torch.randn(2, 80, 200),
        "decoder_input_ids": inputs,
        "labels": labels,
        "topk_ids": topk_ids,
        "topk_logprobs": topk_logprobs,
    }
    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss, parts = task.loss(student, batch)
        first = first if first is not None else parts
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert set(parts) == {"loss", "ce", "kd"}
    assert np.isfinite(parts["loss"]) and parts["loss"] < 0.5 * first["loss"]


def test_online_soft_targets_are_the_teacher_decoder_on_the_same_encoder_output(
    tiny_whisper, tmp_path
):
    tiny_whisper.save_pretrained(tmp_path)
    inputs, labels, topk_ids, topk_logprobs = pad_targets(_rows(), [1, 7], 2, top_k=0)
    batch = {
        "features": torch.randn(2, 80, 200),
        "decoder_input_ids": inputs,
        "labels": labels,
        "topk_ids": topk_ids,  # placeholders: online targets need nothing stored
        "topk_logprobs": topk_logprobs,
    }

    def kd(keep: int) -> float:
        options = WhisperDistilOptions(
            teacher=str(tmp_path), decoder_layers=keep, soft_targets="online", fill_window=False
        )
        task = WhisperDistilTask(options)
        assert task.top_k == 0 and task.online
        with torch.no_grad():
            return task.loss(task.build().eval(), batch)[1]["kd"]

    assert kd(4) == pytest.approx(0.0, abs=1e-6)  # all 4 layers kept: the student is the teacher
    assert kd(2) > 1e-3


def test_soft_target_options_are_checked():
    with pytest.raises(ValueError, match="soft_targets must be one of"):
        WhisperDistilOptions(soft_targets="live")
    with pytest.raises(ValueError, match="needs whisper_distil.freeze_encoder=true"):
        WhisperDistilOptions(soft_targets="online", freeze_encoder=False)


@pytest.mark.parametrize("freeze_encoder, freeze_embeddings", [(True, True), (False, False)])
def test_build_freezes_what_the_options_say(
    tiny_whisper, tmp_path, freeze_encoder, freeze_embeddings
):
    tiny_whisper.save_pretrained(tmp_path)
    options = WhisperDistilOptions(
        teacher=str(tmp_path), freeze_encoder=freeze_encoder, freeze_embeddings=freeze_embeddings
    )
    student = WhisperDistilTask(options).build()
    decoder = student.model.decoder
    assert len(decoder.layers) == 2 and student.config.student == "whisper-distil"
    encoder_layers = student.model.encoder.layers  # (its position table is fixed anyway)
    assert all(p.requires_grad != freeze_encoder for p in encoder_layers.parameters())
    assert decoder.embed_tokens.weight.requires_grad != freeze_embeddings
    assert all(p.requires_grad for p in decoder.layers.parameters())


def test_frozen_encoder_output_is_cached_across_epochs(hf_teacher_dir, speech):
    """The second epoch reuses the encoder output: same shapes, nearly the same loss."""
    sentences, clips = speech

    def task(cache: bool) -> WhisperDistilTask:
        options = WhisperDistilOptions(
            teacher=str(hf_teacher_dir), cache_encoder=cache, beta_kd=0.0  # CE only
        )
        return WhisperDistilTask(options)

    cached, fresh = task(True), task(False)
    tokenizer = cached.processor.tokenizer
    rows = [
        {
            "id": f"u{i}",
            "audio": clip,
            "token_ids": tokenizer.encode(" " + text, add_special_tokens=False),
        }
        for i, (text, clip) in enumerate(zip(sentences[:3], clips[:3], strict=True))
    ]
    model = cached.build().eval()
    first = cached.collate(rows)
    assert "features" in first and "encoded" not in first
    with torch.no_grad():
        loss_first, _ = cached.loss(model, first)
        second = cached.collate(rows)
        loss_second, _ = cached.loss(model, second)
        loss_fresh, _ = fresh.loss(model, fresh.collate(rows))
    assert "encoded" in second and "features" not in second
    assert float(loss_second) == pytest.approx(float(loss_first), rel=1e-2)
    assert float(loss_second) == pytest.approx(float(loss_fresh), rel=5e-2)
    # a batch holding a longer, unseen utterance is encoded afresh
    longer = {"id": "long", "audio": np.concatenate(clips[:3]), "token_ids": [50256]}
    assert "features" in cached.collate(rows[:1] + [longer])
