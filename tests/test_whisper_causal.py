"""The whisper-causal student: the teacher's encoder under a chunk mask, read by its decoder."""

import numpy as np
import pytest
import torch

from audiodistill.students.whisper_causal import (
    WhisperCausalOptions,
    WhisperCausalTask,
    chunk_frames,
    features_of,
    piece_samples,
)


def _rows(task: WhisperCausalTask, sentences, clips) -> list[dict]:
    """Training rows as pseudo-labels give them: text and the teacher tokenizer's ids."""
    tokenizer = task.processor.tokenizer
    return [
        {
            "id": str(i),
            "audio": clips[i],
            "duration": len(clips[i]) / 16_000,
            "text": sentences[i],
            "token_ids": tokenizer.encode(" " + sentences[i], add_special_tokens=False),
        }
        for i in range(2)
    ]


@pytest.fixture(scope="module")
def trained(speech, tmp_path_factory):
    """A student trained for a few steps on two clips (the default recipe: cross-attention
    and, gently, the encoder), saved and loaded back; losses on the batch before and after."""
    from audiodistill.students.registry import load_model
    from audiodistill.training.distill_options import TrainOptions
    from audiodistill.training.loop import make_optimizer, train_step

    torch.manual_seed(0)
    task = WhisperCausalTask(WhisperCausalOptions(chunk_ms=(320,)))
    rows = _rows(task, *speech)
    model = task.build()
    options = TrainOptions(lr=3e-4, warmup_steps=1, max_steps=4)
    optimizer, scheduler = make_optimizer(model, options, task.lr_scale)
    batch = task.collate(rows)
    with torch.no_grad():
        before = float(task.loss(model, batch)[0])
    for _ in range(4):
        train_step(model, task, batch, optimizer, scheduler, grad_clip=1.0)
    with torch.no_grad():
        losses = (before, float(task.loss(model, batch)[0]))
    out = tmp_path_factory.mktemp("whisper_causal")
    task.save(model, out)
    return task, model, rows, losses, load_model(out), out


def test_training_lowers_the_loss_and_the_teachers_targets_stay_fixed(trained):
    """The encoder trains (encoder_lr 0.1), while the teacher's targets come from a fixed
    copy of the teacher's encoder."""
    task, model, _, losses, _, _ = trained
    assert losses[-1] < losses[0], losses
    untrained = task.build().encoder.state_dict()
    teacher = task._teacher_encoder.state_dict()
    kept = [n for n in untrained if not n.startswith("head.")]  # the CTC head is unused
    assert any(not torch.equal(model.encoder.state_dict()[n], untrained[n]) for n in kept)
    assert all(torch.equal(teacher[n], untrained[n]) for n in kept)


def test_saved_student_transcribes_as_it_trained(trained):
    task, model, rows, _, loaded, _ = trained
    audios = [r["audio"] for r in rows]
    whole = task.transcribe(model, audios)
    assert all(len(text.split()) >= 3 for text in whole), whole
    assert loaded.transcribe(audios) == whole


def test_streamed_chunk_by_chunk_it_gives_the_whole_utterance_text(trained):
    _, _, rows, _, loaded, _ = trained
    whole = loaded.transcribe([r["audio"] for r in rows])
    recognizer = loaded.recognizer()
    for row, expected in zip(rows, whole, strict=True):
        partials = [
            recognizer.accept(row["audio"][start : start + 1_234])
            for start in range(0, len(row["audio"]), 1_234)
        ]
        assert any(partials), "a partial text once a second of audio is encoded"
        assert recognizer.finalize() == expected


def test_a_stream_longer_than_the_window_is_decoded_in_the_same_pieces(trained):
    _, _, rows, _, loaded, _ = trained
    audio = np.concatenate([rows[0]["audio"], rows[1]["audio"]] * 4)
    reps = -(-piece_samples(loaded.options.tail_seconds) // len(audio)) + 1
    audio = np.tile(audio, reps)[: piece_samples(loaded.options.tail_seconds) + 3 * 16_000]
    whole = loaded.transcribe([audio])[0]
    recognizer = loaded.recognizer(chunk_ms=320)
    recognizer.partial_frames = 0  # partials do not change the final text; they cost time
    for start in range(0, len(audio), 16_000):
        recognizer.accept(audio[start : start + 16_000])
    assert recognizer.finalize() == whole


def test_untrained_with_full_context_the_decoder_reads_the_teachers_states(speech):
    """Built from the teacher, the full-context window is what the teacher's own encoder gives
    on the student's front end, filled with its silence."""
    task = WhisperCausalTask()
    model = task.build().eval()
    features, lengths = features_of(speech[1][:1], tail_seconds=1.0)
    with torch.no_grad():
        window = model.window(features, lengths, None, model.silence(None))
        states, out_lengths = model.encoder.encode(features, lengths, None)
        chunk = chunk_frames(320)
        chunked = model.window(features, lengths, chunk, model.silence(chunk))
    n = int(out_lengths[0])
    assert window.shape == (1, 1500, states.shape[2])
    assert torch.equal(window[:, :n], states[:, :n])
    similarity = torch.cosine_similarity(chunked[0, :n], states[0, :n], dim=-1)
    assert 0.5 < similarity.mean() < 0.999  # the chunk mask changes the states, not wholly


def test_cross_attention_recipe_trains_only_what_reads_the_encoder():
    options = WhisperCausalOptions(decoder_trains="cross_attention", encoder_lr=0.0)
    model = WhisperCausalTask(options).build()
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trained and all(".encoder_attn" in name for name in trained), sorted(trained)[:5]
    assert any("encoder_attn_layer_norm" in name for name in trained)


@pytest.mark.parametrize(
    "field, value", [("chunk_ms", (310,)), ("eval_chunk_ms", 10), ("tail_seconds", -1.0)]
)
def test_options_reject_bad_values(field, value):
    with pytest.raises(ValueError, match="whisper_causal"):
        WhisperCausalOptions(**{field: value})


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The trained student's ONNX export, fp32 and int8."""
    from audiodistill.export.exporter import export_onnx

    out = tmp_path_factory.mktemp("whisper_causal_onnx")
    export_onnx(trained[-1], out, int8=True)
    return out


def _encoded(model, audio: np.ndarray) -> np.ndarray:
    """The export's encoder states [T, D] of a whole clip, run chunk by chunk."""
    streamer, queue, state = model.feature_streamer(), model.chunk_queue(), model.init_state()
    states = []
    for step in [*queue.push(streamer.accept(audio)), queue.flush()]:
        out, state = model.step(step.features, state)
        states.append(out)
    return np.concatenate(states)


def test_onnx_export_streams_the_torch_students_text(trained, exported):
    """fp32 graphs give the torch student's text, whole clips and streamed; int8 ones come
    within a word or two (a released student ships those)."""
    from audiodistill.edge.causal import OnnxCausalWhisper
    from audiodistill.evaluation.wer import corpus_wer

    _, _, rows, _, loaded, _ = trained
    audios = [r["audio"] for r in rows]
    whole = loaded.transcribe(audios)
    fp32 = OnnxCausalWhisper(exported)
    assert fp32.transcribe(audios) == whole
    recognizer = fp32.recognizer()
    for start in range(0, len(audios[0]), 2_000):
        recognizer.accept(audios[0][start : start + 2_000])
    assert recognizer.finalize() == whole[0]
    int8 = OnnxCausalWhisper(exported, int8=True)
    assert corpus_wer(whole, int8.transcribe(audios)).wer < 0.25
    # a draft speeds the export's decode up and never changes it
    states = _encoded(fp32, audios[0])
    plain = fp32.decode(states, [])
    assert len(plain) > 4
    for draft in (plain, plain[:2], [*plain[:3], plain[3] + 1, *plain[4:]], [*plain, 11, 12]):
        assert fp32.decode(states, draft) == plain


def test_onnx_decoder_without_timestamp_rows_decodes_as_one_with_every_row(
    trained, exported, tmp_path
):
    """The export's decoder keeps the token ids below the first timestamp, and its int8
    graph stores the positions in float16 (tiny.en's are float16 values) and runs the
    output layer as an integer matmul: its logits are a full-width int8 decoder's own over
    those ids, and greedy picks the same tokens."""
    import onnx
    import onnxruntime as ort

    from audiodistill.edge.causal import OnnxCausalWhisper
    from audiodistill.edge.whisper import empty_cache, greedy_tokens
    from audiodistill.export.causal_onnx import text_vocab
    from audiodistill.export.onnx_graphs import quantize_int8
    from audiodistill.export.whisper_onnx import export_decoder

    _, _, rows, _, loaded, _ = trained
    model = OnnxCausalWhisper(exported, int8=True)
    whisper, config = loaded.model.whisper, model.config
    export_decoder(whisper, config["prompt"], tmp_path / "full.onnx")
    quantize_int8(tmp_path / "full.onnx", tmp_path / "full.int8.onnx")  # as exports were
    full = ort.InferenceSession(
        str(tmp_path / "full.int8.onnx"), providers=["CPUExecutionProvider"]
    )
    graph = onnx.load(str(exported / config["models"]["int8"]["decoder"])).graph
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.initializer)
    # the int8 token table is read as it is stored, never dequantized whole every step: the
    # embedding gathers its columns, the logits are an integer matmul on it
    assert {n.op_type for n in graph.node if "tokens_quantized" in n.input} == {
        "Gather",
        "MatMulInteger",
    }

    states = _encoded(model, rows[0]["audio"])
    speech = model.cross.run(None, {"states": states[None]})
    keys, values = (  # the whole window: the piece's states, then the silence's
        np.concatenate([mine, silent[:, :, :, len(states) :]], axis=3)
        for mine, silent in zip(speech, model.silence_cross, strict=True)
    )
    tokens = greedy_tokens(model.decoder, config, keys, values, 64)
    assert len(tokens) > 4 and tokens == greedy_tokens(full, config, keys, values, 64)
    empty = empty_cache(config)
    feeds = {"input_ids": np.asarray([config["prompt"] + tokens]), "cross_keys": keys}
    feeds |= {"cross_values": values, "past_keys": empty, "past_values": empty}
    (narrow,), (wide,) = model.decoder.run(["logits"], feeds), full.run(["logits"], feeds)
    vocab = text_vocab(whisper.generation_config)
    assert narrow.shape[-1] == vocab < wide.shape[-1] == whisper.config.vocab_size
    np.testing.assert_array_equal(narrow, wide[..., :vocab])


def test_words_spell_the_text_in_order_inside_the_audio(trained, exported):
    """Torch and the export time the final text's words from the decoder's
    cross-attention; past one window, the second piece's words come after the first's."""
    from audiodistill.edge.causal import OnnxCausalWhisper

    _, _, rows, _, loaded, _ = trained
    audios = [r["audio"] for r in rows[:2]]
    onnx = OnnxCausalWhisper(exported)
    piece = piece_samples(onnx.tail_seconds)
    long = np.tile(np.concatenate(audios), -(-piece // sum(map(len, audios))) + 1)
    for model, clips in ((loaded, audios), (onnx, [*audios, long[: piece + 3 * 16_000]])):
        for audio, text, words in zip(
            clips, model.transcribe(clips), model.transcribe_words(clips), strict=True
        ):
            assert words and " ".join(w.text for w in words) == text
            starts = [w.start for w in words]
            assert starts == sorted(starts)
            assert all(0 <= w.start <= w.end <= len(audio) / 16_000 + 0.05 for w in words)
    assert words[-1].start > piece / 16_000  # the last clip's second piece


def test_a_draft_is_checked_not_trusted(trained):
    """A stream's earlier hypothesis speeds a decode up but never changes it: the tokens
    greedy would choose are kept, the first other one and all after it are decoded again."""
    from audiodistill.decoding.whisper_greedy import (
        accepted_draft,
        generation_greedy,
        prompt_ids,
    )
    from audiodistill.students.whisper_causal import _decode_from_draft

    _, _, rows, _, loaded, _ = trained
    model, chunk = loaded.model, chunk_frames(320)
    features, lengths = features_of([rows[0]["audio"]], tail_seconds=1.0)
    with torch.no_grad():
        window = model.window(features, lengths, chunk, model.silence(chunk))
    prompt = prompt_ids(model.whisper.generation_config)
    plain = generation_greedy(model.whisper, window, prompt, 128)[0].token_ids
    assert len(plain) > 4
    assert accepted_draft(model.whisper, window, prompt, plain) == len(plain)
    wrong = [*plain[:3], plain[3] + 1, *plain[4:]]
    assert accepted_draft(model.whisper, window, prompt, wrong) == 3
    assert _decode_from_draft(model, window, prompt, 128, wrong) == plain
    assert _decode_from_draft(model, window, prompt, 128, plain[:2]) == plain
