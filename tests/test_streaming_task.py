"""The streaming student as a StudentTask: batches, loss, label checks, export, options."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import audiodistill
from audiodistill.config import ConfigError, load_config
from audiodistill.decoding.ctc_decoder import LM_FILE, BeamDecoder, DecodingOptions, GreedyDecoder
from audiodistill.students.registry import build_task
from audiodistill.students.streaming import StreamingStudent, count_parameters
from audiodistill.students.streaming_task import FeatureMatched, StreamingOptions, StreamingTask
from audiodistill.training.distill_options import DistillOptions, TrainOptions
from audiodistill.training.loop import make_optimizer, train_step

CONFIGS = Path(__file__).parent.parent / "configs" / "distill"


@pytest.fixture(scope="module")
def rows(speech):
    sentences, clips = speech
    return [
        {"id": str(i), "audio": clip, "duration": len(clip) / 16_000, "text": text}
        for i, (text, clip) in enumerate(zip(sentences, clips, strict=True))
    ]


def test_collate_draws_the_configured_chunk_sizes(rows):
    task = StreamingTask(StreamingOptions(chunk_ms=(160, 640)))
    batch = task.collate(rows[:3])
    assert batch["features"].shape[0] == 3 and batch["features"].shape[2] == 80
    assert batch["targets"][0, : batch["target_lengths"][0]].tolist() == task.tokenizer.encode(
        rows[0]["text"]
    )
    torch.manual_seed(0)
    drawn = {int(task.collate(rows[:1])["chunk_frames"]) for _ in range(20)}
    assert drawn == {16, 64}  # feature frames (10 ms) in 160 and 640 ms


def test_train_steps_reduce_the_ctc_loss(rows):
    torch.manual_seed(0)
    task = StreamingTask(StreamingOptions(encoder="conformer", dropout=0.0))
    model = task.build()
    optimizer, scheduler = make_optimizer(model, TrainOptions(lr=1e-3, warmup_steps=1))
    batch = task.collate(rows[:2])
    first = train_step(model, task, batch, optimizer, scheduler, grad_clip=1.0)
    assert all(p.grad is not None for p in model.parameters())
    for _ in range(6):
        last = train_step(model, task, batch, optimizer, scheduler, grad_clip=1.0)
    assert last["skipped"] == 0.0 and last["loss"] < 0.8 * first["loss"]
    assert set(first) >= {"loss", "ctc", "grad_norm"}


def test_feature_matching_trains_a_projection_to_the_teachers_encoder(rows, tmp_path):
    torch.manual_seed(0)
    task = StreamingTask(StreamingOptions(encoder="conformer", dropout=0.0, feature_matching=1.0))
    model = task.build()
    assert isinstance(model, FeatureMatched) and model.proj.out_features == 384  # tiny.en
    batch = task.collate(rows[:2])
    # the teacher hears the same audio: its 20 ms frames are twice the student's 40 ms ones
    teacher = task._teacher_states(batch)
    assert abs(teacher.shape[1] - 2 * (batch["features"].shape[1] // 4)) <= 4  # edges
    optimizer, scheduler = make_optimizer(model, TrainOptions(lr=1e-3, warmup_steps=1))
    first = train_step(model, task, batch, optimizer, scheduler, grad_clip=1.0)
    assert model.proj.weight.grad.abs().sum() > 0
    for _ in range(6):
        last = train_step(model, task, batch, optimizer, scheduler, grad_clip=1.0)
    assert last["feature_matching"] < 0.9 * first["feature_matching"]
    assert last["loss"] == pytest.approx(last["ctc"] + last["feature_matching"], rel=1e-4)
    # the export is the encoder alone: no projection, no teacher needed to load it
    expected = task.transcribe(model, [r["audio"] for r in rows[:2]])
    task.save(model, tmp_path / "model")
    loaded = audiodistill.load_model(tmp_path / "model")
    assert isinstance(loaded, StreamingStudent)
    assert loaded.transcribe([r["audio"] for r in rows[:2]]) == expected


def test_check_rejects_labels_the_character_set_cannot_learn():
    task = StreamingTask()
    task.check(pd.DataFrame({"text": ["Set a timer for 10 minutes.", "Café at 7:30 am"]}))
    with pytest.raises(ValueError, match="lack it"):
        task.check(pd.DataFrame({"token_ids": [[1, 2]]}))
    with pytest.raises(ValueError, match="outside the streaming student's character set"):
        task.check(pd.DataFrame({"text": ["Привет, как дела?", "hello"]}))
    with pytest.raises(ValueError, match="empty"):
        task.check(pd.DataFrame({"text": ["", "?!", None]}))


def test_export_loads_through_the_registry_with_the_same_transcripts(rows, tmp_path):
    task = StreamingTask(StreamingOptions(eval_chunk_ms=640))
    torch.manual_seed(0)
    model = task.build().eval()
    nn.init.normal_(model.head.weight, std=3.0)  # a random head that emits many characters
    audios = [r["audio"] for r in rows[:2]]
    expected = task.transcribe(model, audios)
    assert all(len(t) > 5 for t in expected)
    task.save(model, tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["student"] == "streaming" and config["config"]["chunk_ms"] == 640
    assert (tmp_path / "model" / "tokenizer.json").is_file()
    loaded = audiodistill.load_model(tmp_path / "model")
    assert isinstance(loaded, StreamingStudent)
    assert loaded.transcribe(audios) == expected  # the export's default chunk is eval_chunk_ms


def test_finish_export_fits_the_lm_on_the_training_text(tmp_path):
    task = StreamingTask()
    task.save(task.build().eval(), tmp_path / "model")
    assert isinstance(audiodistill.load_model(tmp_path / "model").decoder, GreedyDecoder)
    train = pd.DataFrame({"text": ["Call Ann at 5:30.", "Play some jazz", "Call Bo now"]})
    task.finish_export(tmp_path / "model", train)
    decoder = audiodistill.load_model(tmp_path / "model").decoder
    assert isinstance(decoder, BeamDecoder) and decoder.lm.order == 8
    # the LM is over the spoken form the student spells: "five thirty", no digits or capitals
    assert decoder.lm.logp(tuple("call|ann|at|"), "f") > decoder.lm.logp(tuple("call|ann|at|"), "5")
    greedy = StreamingTask(StreamingOptions(decoding=DecodingOptions(method="greedy")))
    greedy.finish_export(tmp_path / "model", train)
    assert isinstance(audiodistill.load_model(tmp_path / "model").decoder, GreedyDecoder)
    assert not (tmp_path / "model" / LM_FILE).exists()


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_distill_config_loads(path):
    options = load_config(DistillOptions, path)
    task = build_task(options)
    assert task.kind == options.student


def test_streaming_configs_sizes():
    xs = build_task(load_config(DistillOptions, CONFIGS / "streaming_conformer.yaml"))
    s = build_task(load_config(DistillOptions, CONFIGS / "streaming_conformer_long.yaml"))
    assert count_parameters(xs.build()) < 2_000_000 < count_parameters(s.build()) < 10_000_000


def test_bad_streaming_options_are_rejected():
    with pytest.raises(ConfigError, match="streaming.size must be one of"):
        load_config(DistillOptions, None, ["streaming.size=m"])
    with pytest.raises(ConfigError, match="unknown key streaming.chunks"):
        load_config(DistillOptions, None, ["streaming.chunks=[160]"])
    with pytest.raises(ConfigError, match=r"streaming.chunk_ms\[0\] must be int"):
        load_config(DistillOptions, None, ["streaming.chunk_ms=[fast]"])
    options = load_config(DistillOptions, None, ["streaming.chunk_ms=[110]"])
    with pytest.raises(ValueError, match="not a multiple of 20 ms"):
        build_task(options)
    options = load_config(
        DistillOptions, None, ["streaming.chunk_ms=[100]", "streaming.encoder=conformer"]
    )
    with pytest.raises(ValueError, match="not a multiple of 40 ms"):
        build_task(options)
    with pytest.raises(ConfigError, match="streaming.decoding.method"):
        load_config(DistillOptions, None, ["streaming.decoding.method=sample"])
    with pytest.raises(ValueError, match="feature_matching must be >= 0"):
        load_config(DistillOptions, None, ["streaming.feature_matching=-1"])
    with pytest.raises(ValueError, match="lm_order, lm_lexicon_words and feature"):
        load_config(DistillOptions, None, ["streaming.lm_order=-1"])


def test_the_lexicon_teaches_the_lm_english_spelling(tmp_path):
    """Words the training text never held are spelled by the LM from the word list."""
    task = StreamingTask(StreamingOptions(lm_lexicon_words=5_000))
    task.save(task.build().eval(), tmp_path / "model")
    task.finish_export(tmp_path / "model", pd.DataFrame({"text": ["Play some jazz."]}))
    lm = audiodistill.load_model(tmp_path / "model").decoder.lm

    def score(word: str) -> float:
        history = list("play|")
        total = 0.0
        for char in word + "|":
            total += lm.logp(tuple(history[-(lm.order - 1) :]), char)
            history.append(char)
        return total

    assert score("describe") > score("discribe") + 2.0
    assert score("necessary") > score("nesessary") + 2.0
