"""`train-codec-teacher`: the EMA residual quantizer, a short run, resume, and loading the
result through the real codec teacher."""

import json

import numpy as np
import pytest
import torch

from audiodistill.audio import SAMPLE_RATE, save_wav
from audiodistill.codec_training import (
    CODEBOOK_SIZE,
    CodecTeacherOptions,
    quantize,
    teacher_config,
    train,
)
from audiodistill.config import load_config
from audiodistill.manifest import Utterance, write_manifest


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

    from audiodistill.codec_families import EncodecFamily

    config = teacher_config("s", 4)
    assert (config.sampling_rate, config.frame_rate, config.num_quantizers) == (16000, 50, 4)
    teacher = sum(p.numel() for p in EncodecModel(config).parameters())
    assert 2.5e6 < teacher < 3e6
    for size in ("xs", "xxs"):
        student = EncodecModel(EncodecFamily().student_config(config, size, None))
        assert sum(p.numel() for p in student.parameters()) / teacher <= 0.30
    with pytest.raises(ValueError, match="size must be one of"):
        teacher_config("xl", 4)


def test_short_run_exports_a_loadable_teacher_and_resumes(tiny_corpus, tmp_path):
    from audiodistill.teachers import TeacherOptions, build_teacher

    options = CodecTeacherOptions(
        manifest=str(tiny_corpus), out=str(tmp_path), size="tiny", codebooks=2,
        max_steps=6, max_minutes=None, batch_size=2, eval_every=3, dev_limit=2, threads=1,
    )  # fmt: skip
    model_dir = train(options)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [3, 6, 6] and lines[-1]["final"]
    assert all(np.isfinite(m["mel_distance"]) for m in lines)
    load_config(CodecTeacherOptions, tmp_path / "config.yaml")  # the resolved config
    teacher = build_teacher(TeacherOptions(backend="codec", model=str(model_dir)))
    clip = np.random.default_rng(1).standard_normal(SAMPLE_RATE).astype("f4") * 0.1
    encoding = teacher.encode([clip])[0]
    assert encoding.codes.shape == (2, 50) and teacher.frame_rate == 50
    assert teacher.bitrate == 1000  # 2 codebooks x 10 bits x 50 frames/s
    # a rerun with a larger budget continues from the checkpoint's step
    train(CodecTeacherOptions(**{**vars(options), "max_steps": 9}))
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines][-2:] == [9, 9]


def test_no_readable_audio_is_a_clear_error(tmp_path):
    rows = [Utterance("x", str(tmp_path / "x.wav"), 1.0, "", "train")]
    write_manifest(rows, tmp_path / "m.jsonl")
    (tmp_path / "x.wav").write_bytes(b"junk")
    options = CodecTeacherOptions(manifest=str(tmp_path / "m.jsonl"), out=str(tmp_path / "o"))
    with pytest.raises(ValueError, match="no readable audio"):
        train(options)
