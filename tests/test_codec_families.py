"""Codec students of each family: a DAC student from a tiny random-init DAC teacher's labels
end to end (build, train steps, dev metrics, export, reload), and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import audiodistill
from audiodistill import codec_metrics
from audiodistill.distill import (
    TrainOptions,
    evaluate,
    make_optimizer,
    train_step,
)
from audiodistill.students.codec import CodecModel, CodecOptions, CodecTask
from audiodistill.students.codec_families import DacFamily
from audiodistill.teachers import TeacherOptions, build_teacher
from audiodistill.testing.codecs import label_tone_clips, save_tiny_codec, tone_clip, training_rows


@pytest.fixture(scope="module")
def dac_dir(tmp_path_factory):
    return save_tiny_codec("dac", tmp_path_factory.mktemp("dac") / "tiny-dac")


@pytest.fixture(scope="module")
def dac_labels(dac_dir, tmp_path_factory):
    return label_tone_clips(dac_dir, tmp_path_factory.mktemp("dac_labels"))


@pytest.fixture(scope="module")
def dac_rows(dac_labels):
    return training_rows(dac_labels)


def _dac_task(dac_dir, **kw) -> CodecTask:
    options = {"size": "tiny", "init": "random", "code_weight": 0.0} | kw
    return CodecTask(CodecOptions(teacher=str(dac_dir), **options))


def test_dac_steps_match_the_models_own_quantizer(dac_dir):
    from transformers import DacModel

    model = DacModel.from_pretrained(dac_dir).eval()
    audio = torch.from_numpy(tone_clip(2, np.random.default_rng(0)))[None, None]
    family = DacFamily()
    with torch.no_grad():
        latents = family.latents(model, audio)
        quantized, codes = model.quantizer(latents)[:2]
        assert torch.equal(family.quantize(model, latents, 2), codes)
        assert torch.allclose(family.dequantize(model, codes), quantized, atol=1e-5)
        assert family.quantize(model, latents, 1).shape == (1, 1, codes.shape[2])
    model.train()  # quantizer dropout would drop stages here; the family's loop does not
    assert torch.equal(family.quantize(model, latents, 2), codes)


def test_dac_student_trains_from_the_teachers_frozen_quantizer(dac_dir, dac_rows):
    train, dev = dac_rows
    task = _dac_task(dac_dir)
    torch.manual_seed(0)
    model = task.build()
    teacher = task.teacher.model
    assert codec_metrics.parameters(model) < 0.5 * codec_metrics.parameters(teacher)
    theirs = teacher.quantizer.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in model.codec.quantizer.state_dict().items())
    assert not any(p.requires_grad for p in model.codec.quantizer.parameters())
    optimizer, scheduler = make_optimizer(
        model, TrainOptions(lr=3e-3, warmup_steps=1, max_steps=20)
    )
    batch = task.collate(train)
    before = evaluate(model, task, dev)
    first = train_step(model, task, batch, optimizer, scheduler, grad_clip=1.0)
    for _ in range(19):
        last = train_step(model, task, batch, optimizer, scheduler, grad_clip=1.0)
    after = evaluate(model, task, dev)
    assert "code_ce" not in first and last["skipped"] == 0.0
    assert last["loss"] < 0.7 * first["loss"] and last["spectral"] < first["spectral"]
    assert np.isfinite(last["latent_mse"])  # the tiny random DAC's latents are near 0
    # scored against the original audio, which a random-init teacher does not reproduce
    # either, so the dev score need not improve here; it must be measured all the same
    assert set(after) == set(before) and after["dev_utterances"] == 2
    assert np.isfinite([after["dev_mel_distance"], after["dev_teacher_decoded_mel_distance"]]).all()
    quantizer = model.codec.quantizer.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in quantizer.items())  # still frozen


def test_dac_student_exports_and_loads_as_a_codec(dac_dir, dac_rows, tmp_path):
    task = _dac_task(dac_dir)
    model = task.build().eval()
    task.save(model, tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["model_type"] == "dac" and config["distilled_from"] == "tiny-dac"
    loaded = audiodistill.load_model(tmp_path / "model")
    assert isinstance(loaded, CodecModel) and loaded.bitrate() == 600.0  # 2 x 6 bits x 50 Hz
    audio = dac_rows[1][0]["audio"]
    codes = loaded.encode(audio)
    np.testing.assert_array_equal(codes, CodecModel(model.codec, 16_000).encode(audio))
    assert abs(len(loaded.roundtrip(audio)) - len(audio)) < 320
    as_teacher = build_teacher(TeacherOptions(backend="codec", model=str(tmp_path / "model")))
    np.testing.assert_array_equal(as_teacher.encode([audio])[0].codes, codes)


def test_what_a_dac_student_refuses(dac_dir, tmp_path):
    with pytest.raises(ValueError, match="codec.init=pruned"):
        _dac_task(dac_dir, init="pruned").build()
    with pytest.raises(ValueError, match="codec.code_weight=1.0"):
        _dac_task(dac_dir, code_weight=1.0).build()
    with pytest.raises(ValueError, match="codec.latent_dim"):
        _dac_task(dac_dir, latent_dim=8).build()
    with pytest.raises(ValueError, match="codec.size must be one of"):
        _dac_task(dac_dir, size="xxs").build()
    mimi = save_tiny_codec("mimi", tmp_path / "tiny-mimi")
    with pytest.raises(ValueError, match="codec.teacher=.*MimiModel"):
        _dac_task(mimi).build()


def test_eval_command_scores_a_dac_student_against_its_teacher(dac_dir, dac_labels, tmp_path):
    from audiodistill.cli import main
    from audiodistill.manifest import Utterance, write_manifest

    task = _dac_task(dac_dir)
    task.save(task.build().eval(), tmp_path / "student" / "model")
    clips = sorted(dac_labels.parent.glob("c*.wav"))[:2]
    manifest = tmp_path / "clips.jsonl"
    write_manifest([Utterance(c.stem, str(c)) for c in clips], manifest)
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(dac_dir), "--model", str(tmp_path / "student" / "model"),
            f"data={manifest}", "split=null", f"out={out}"]  # fmt: skip
    assert main(argv) == 0
    teacher, student = json.loads((out / "report.json").read_text())["models"]
    assert teacher["bitrate"] == student["bitrate"] == 600.0
    assert 0.0 <= student["code_agreement"] <= 1.0 and student["rtf"] > 0
