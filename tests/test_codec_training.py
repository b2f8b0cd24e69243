"""`train-codec-teacher`: the EMA residual quantizer, a short run through the training loop,
resume and budget, and loading the result through the real codec teacher."""

import json

import numpy as np
import pytest
import torch

from audiodistill.codec.teacher_training import (
    CODEBOOK_SIZE,
    CodecTeacherOptions,
    quantize,
    teacher_config,
    train,
)
from audiodistill.config import load_config
from audiodistill.data.audio import SAMPLE_RATE, save_wav
from audiodistill.data.manifest import Utterance, write_manifest


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """Ten 1 s clips of decaying tones in noise, 8 train and 2 dev, plus one broken file."""
    root = tmp_path_factory.mktemp("codec_corpus")
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    rows = []
    for i in range(10):
        tone = 0.3 * np.sin(2 * np.pi * (180 + 60 * i) * t) * np.exp(-3 * t)
        save_wav(root / f"c{i}.wav", (tone + 0.02 * rng.standard_normal(len(t))).astype("f4"))
        split = "train" if i < 8 else "dev"
        rows.append(Utterance(f"c{i}", str(root / f"c{i}.wav"), 1.0, "", split))
    (root / "broken.wav").write_bytes(b"RIFF....WAVE")
    rows.append(Utterance("broken", str(root / "broken.wav"), 1.0, "", "train"))
    write_manifest(rows, root / "manifest.jsonl")
    return root / "manifest.jsonl"


def test_first_batch_seeds_the_codebooks_and_codes_vary():
    from transformers import EncodecModel

    torch.manual_seed(0)
    model = EncodecModel(teacher_config("tiny", 2)).train()
    latents = torch.randn(2, 16, 50, requires_grad=True)
    quantized, codes, commitment = quantize(model.quantizer, latents, 2, 0.99, 0.5)
    assert codes.shape == (2, 2, 50) and quantized.shape == latents.shape
    # all entries started unused, so every one was seeded from this batch's frames
    assert len(codes[:, 0].unique()) > 20 and float(commitment.detach()) < 1e-10
    quantized.sum().backward()  # straight through: the encoder's latents get the gradient
    assert torch.equal(latents.grad, torch.ones_like(latents))


def test_entries_move_towards_their_frames_and_unused_ones_are_reseeded():
    from transformers import EncodecModel

    torch.manual_seed(0)
    model = EncodecModel(teacher_config("tiny", 1)).train()
    book = model.quantizer.layers[0].codebook
    frames = torch.randn(1, 16, 40)
    quantize(model.quantizer, frames, 1, 0.5, 0.5)
    moved = frames + 0.1
    _, codes, _ = quantize(model.quantizer, moved, 1, 0.5, 0.5)
    used = codes.unique()
    assert len(used) > 1 and (book.cluster_size[used] > 0.5).all()
    unused = torch.ones(CODEBOOK_SIZE, dtype=torch.bool)
    unused[used] = False
    # an entry nobody picked falls below the threshold: the next batch re-seeds it
    assert (book.cluster_size[unused] < 0.5).all()
    before = book.embed[unused].clone()
    quantize(model.quantizer, torch.randn(1, 16, 40) * 5, 1, 0.5, 0.5)
    assert not torch.equal(book.embed[unused], before)


def test_named_sizes_and_the_student_share():
    from transformers import EncodecModel

    from audiodistill.codec.families import EncodecFamily

    config = teacher_config("s", 4)
    assert (config.sampling_rate, config.frame_rate, config.num_quantizers) == (16000, 50, 4)
    teacher = sum(p.numel() for p in EncodecModel(config).parameters())
    assert 2.5e6 < teacher < 3e6
    for size in ("xs", "xxs"):
        student = EncodecModel(EncodecFamily().student_config(config, size, None))
        assert sum(p.numel() for p in student.parameters()) / teacher <= 0.30
    with pytest.raises(ValueError, match="size must be one of"):
        teacher_config("xl", 4)


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_short_run_exports_a_loadable_teacher(tiny_corpus, tmp_path):
    from audiodistill.teachers import TeacherOptions, build_teacher

    options = CodecTeacherOptions(
        manifest=str(tiny_corpus), out=str(tmp_path), size="tiny", codebooks=2,
        max_steps=6, max_minutes=None, batch_size=2, eval_every=3, dev_limit=2, threads=1,
    )  # fmt: skip
    model_dir = train(options)
    lines = _metrics(tmp_path)
    evals = [m for m in lines if "dev_score" in m]
    assert [m["step"] for m in evals] == [3, 6]
    assert all(np.isfinite(m["dev_mel_distance"]) for m in evals)
    assert {"spectral", "commitment", "usage_q0", "loss"} <= lines[-1].keys()
    load_config(CodecTeacherOptions, tmp_path / "config.yaml")  # the resolved config
    teacher = build_teacher(TeacherOptions(backend="codec", model=str(model_dir)))
    clip = np.random.default_rng(1).standard_normal(SAMPLE_RATE).astype("f4") * 0.1
    encoding = teacher.encode([clip])[0]
    assert encoding.codes.shape == (2, 50) and teacher.frame_rate == 50
    assert teacher.bitrate == 1000  # 2 codebooks x 10 bits x 50 frames/s


def test_a_rerun_resumes_from_the_checkpoint(tiny_corpus, tmp_path):
    options = CodecTeacherOptions(
        manifest=str(tiny_corpus), out=str(tmp_path), size="tiny", codebooks=1,
        max_steps=4, max_minutes=None, batch_size=2, eval_every=2, dev_limit=1, threads=1,
    )  # fmt: skip
    train(options)
    # a larger max_steps continues from step 4; a spent budget stops it at the next checkpoint
    train(CodecTeacherOptions(**{**vars(options), "max_steps": 8, "max_minutes": 1e-9}))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir())[-1].endswith("06")
    train(CodecTeacherOptions(**{**vars(options), "max_steps": 8}))
    lines = _metrics(tmp_path)
    assert [m["step"] for m in lines if m.get("event") == "start"] == [0, 4, 6]
    steps = [m["step"] for m in lines if "event" not in m]
    assert len(steps) == len(set(steps)) and steps == sorted(steps)
    assert [m["step"] for m in lines if "dev_score" in m] == [2, 4, 6, 8]
    assert (tmp_path / "model" / "config.json").is_file()


def test_no_readable_audio_is_a_clear_error(tmp_path):
    rows = [Utterance("x", str(tmp_path / "x.wav"), 1.0, "", "train")]
    write_manifest(rows, tmp_path / "m.jsonl")
    (tmp_path / "x.wav").write_bytes(b"junk")
    options = CodecTeacherOptions(manifest=str(tmp_path / "m.jsonl"), out=str(tmp_path / "o"))
    with pytest.raises(ValueError, match="no readable audio"):
        train(options)
