"""The codec student: losses, metrics, the task on real codec labels, export and the Ray job.

The teacher is a tiny random-init EnCodec (save_tiny_codec), whose codebooks are filled from
the encoder's own latents (as k-means init does), so its codes vary with the audio.
"""

import json
import math

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

import audiodistill
from audiodistill.codec import losses, quality
from audiodistill.config import load_config
from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.data.manifest import Utterance
from audiodistill.students.codec_student import CodecModel, CodecOptions, CodecTask
from audiodistill.students.registry import build_task
from audiodistill.teachers import TeacherOptions, build_teacher
from audiodistill.testing.codecs import label_tone_clips, save_tiny_codec, tone_clip, training_rows
from audiodistill.training.distill_options import DataOptions, DistillOptions, TrainOptions
from audiodistill.training.label_rows import load_training_rows
from audiodistill.training.loop import evaluate, make_optimizer, train_step


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A tiny EnCodec whose codebooks are residual samples of its own latents."""
    return save_tiny_codec("encodec", tmp_path_factory.mktemp("codec") / "tiny-encodec")


@pytest.fixture(scope="module")
def labels_dir(teacher_dir, tmp_path_factory):
    """Codec pseudo-labels of 8 clips (6 train, 2 dev), written as the labelling job does."""
    return label_tone_clips(teacher_dir, tmp_path_factory.mktemp("codec_labels"))


@pytest.fixture(scope="module")
def rows(labels_dir):
    return training_rows(labels_dir)


def _task(teacher_dir, **kw) -> CodecTask:
    return CodecTask(CodecOptions(teacher=str(teacher_dir), size="tiny", **kw))


# --- losses -------------------------------------------------------------------------------


def test_latent_mse_ignores_padding():
    teacher = torch.randn(2, 4, 5)
    student = teacher.clone()
    student[1, :, 3:] += 100.0  # padding frames of the second item
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    assert losses.latent_mse(student, teacher, mask) == 0.0
    assert losses.latent_mse(student + 1.0, teacher, mask) == pytest.approx(1.0)


def test_code_logits_pick_what_the_residual_quantizer_picks(teacher_dir):
    from transformers import EncodecModel

    model = EncodecModel.from_pretrained(teacher_dir).eval()
    with torch.no_grad():
        clip = tone_clip(3, np.random.default_rng(2))
        latents = model.encoder(torch.from_numpy(clip)[None, None])
        codes = model.quantizer.encode(latents).transpose(0, 1)  # [1, n_q, T]
    codebooks = torch.stack([layer.codebook.embed for layer in model.quantizer.layers])
    logits = losses.residual_code_logits(latents, codebooks, codes)
    assert logits.shape == (1, 2, codes.shape[2], 64)
    assert torch.equal(logits.argmax(-1), codes)  # teacher forcing on its own codes
    mask = torch.ones(1, codes.shape[2], dtype=torch.bool)
    sure = losses.code_cross_entropy(logits * 100, codes, mask)
    wrong = losses.code_cross_entropy(logits * 100, (codes + 1) % 64, mask)
    assert sure < 0.5 * math.log(64) < wrong  # near-duplicate entries keep "sure" above 0


def test_spectral_loss_is_zero_on_a_match_and_ignores_padding():
    target = torch.randn(2, 6000)
    mask = torch.ones(2, 6000, dtype=torch.bool)
    mask[1, 4000:] = False
    estimate = target.clone()
    estimate[1, 4000:] = torch.randn(2000)  # differs only on padding
    assert losses.multi_resolution_spectral_loss(estimate, target, mask, 24_000) == 0.0
    louder = losses.multi_resolution_spectral_loss(2 * target, target, mask, 24_000)
    assert louder > 0.5  # log magnitudes differ by log 2 where there is signal


# --- metrics ------------------------------------------------------------------------------


def test_si_sdr_matches_a_known_snr_and_ignores_scale():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(SAMPLE_RATE)
    noise = rng.standard_normal(SAMPLE_RATE)
    noise *= np.sqrt(np.sum(signal**2) / np.sum(noise**2) / 10 ** (10 / 10))  # 10 dB SNR
    assert quality.si_sdr(signal, signal) > 100
    assert quality.si_sdr(signal, signal + noise) == pytest.approx(10.0, abs=0.3)
    assert quality.si_sdr(signal, 0.5 * (signal + noise)) == pytest.approx(
        quality.si_sdr(signal, signal + noise)
    )


def test_stoi_and_mel_distance_rank_clean_above_noisy():
    rng = np.random.default_rng(0)
    speechlike = np.concatenate([tone_clip(i, rng) for i in range(6)]).astype(np.float64)
    noisy = speechlike + 0.3 * rng.standard_normal(len(speechlike))
    assert quality.stoi(speechlike, speechlike) == pytest.approx(1.0, abs=1e-6)
    assert quality.stoi(speechlike, noisy) < 0.9
    assert quality.mel_distance(speechlike, speechlike) == 0.0
    assert quality.mel_distance(speechlike, noisy) > 0.5
    longer = np.concatenate([speechlike, np.zeros(300)])  # a codec's whole-frame padding
    assert quality.mel_distance(speechlike, longer) == 0.0


def test_bitrate_agreement_parameters_and_rtf():
    assert quality.bitrate(8, 1024, 75.0) == 6000.0  # EnCodec 24 kHz at 6 kbps
    codes = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    other = codes.copy()
    other[1, :2] = 0
    assert quality.code_agreement(codes, other) == 0.75
    assert quality.code_agreement(codes, other[:, :2]) == 0.5  # common frames only
    assert quality.parameters(torch.nn.Linear(3, 2)) == 8
    threads = torch.get_num_threads()
    clips = [np.zeros(SAMPLE_RATE, np.float32)]
    fast, slow = quality.roundtrip_rtfs([lambda a: a * 2, lambda a: np.sort(a * 2)], clips)
    assert 0 < fast < slow < 0.1 and torch.get_num_threads() == threads


# --- the task -----------------------------------------------------------------------------


def test_codec_labels_load_as_training_rows(rows, labels_dir):
    train, dev = rows
    assert len(train) == 6 and [r["id"] for r in dev] == ["c6", "c7"]
    row = train[0]
    frames = math.ceil(row["duration"] * 75)
    assert np.array(row["codes"]).shape == (2, frames) and len(row["latents"]) == 16
    assert len(set(np.concatenate([np.ravel(r["codes"]) for r in train]))) > 5  # not degenerate


def test_collate_pads_to_whole_frames(teacher_dir, rows):
    task = _task(teacher_dir)
    batch = task.collate(rows[0][:3])
    frames = batch["codes"].shape[2]
    assert batch["audio"].shape == (3, 1, frames * 320)
    assert batch["teacher_audio"].shape == (3, frames * 320)
    assert batch["latents"].shape == (3, 16, frames)
    assert batch["frame_mask"].sum(1).tolist() == [len(r["codes"][0]) for r in rows[0][:3]]
    assert len(task._teacher_audio) == 3  # decoded once, then cached


def test_student_is_smaller_and_starts_from_the_teachers_codebooks(teacher_dir):
    task = _task(teacher_dir)
    model = task.build()
    teacher = task.teacher.model
    assert quality.parameters(model) < 0.3 * quality.parameters(teacher)
    def codebooks(codec):
        return torch.stack([layer.codebook.embed for layer in codec.quantizer.layers])

    assert torch.equal(codebooks(model.codec), codebooks(teacher))
    from_scratch = _task(teacher_dir, init="random").build()
    assert torch.equal(codebooks(from_scratch.codec), codebooks(teacher))
    narrow = _task(teacher_dir, latent_dim=8).build()
    assert isinstance(narrow.proj, torch.nn.Linear) and narrow.proj.out_features == 16


def test_twenty_steps_reduce_every_loss_and_the_dev_score(teacher_dir, rows):
    train, dev = rows
    task = _task(teacher_dir)
    torch.manual_seed(0)
    model = task.build()
    optimizer, scheduler = make_optimizer(
        model, TrainOptions(lr=3e-3, warmup_steps=1, max_steps=20)
    )
    batch = task.collate(train)
    before = evaluate(model, task, dev)
    first = train_step(model, task, batch, optimizer, scheduler, grad_clip=1.0)
    for _ in range(19):
        last = train_step(model, task, batch, optimizer, scheduler, grad_clip=1.0)
    after = evaluate(model, task, dev)
    assert last["loss"] < 0.7 * first["loss"] and last["skipped"] == 0.0
    assert last["code_ce"] < first["code_ce"] and last["spectral"] < first["spectral"]
    assert after["dev_score"] == after["dev_mel_distance"] < before["dev_mel_distance"]
    assert 0.0 <= after["dev_code_agreement"] <= 1.0
    assert after["dev_teacher_decoded_mel_distance"] > 0 and after["dev_utterances"] == 2


def test_check_rejects_labels_of_another_teacher(teacher_dir, labels_dir, tmp_path):
    train, _ = load_training_rows(DataOptions(labels=str(labels_dir)))
    _task(teacher_dir).check(train)
    other = save_tiny_codec("encodec", tmp_path / "tiny-encodec", seed=1)
    with pytest.raises(ValueError, match="not from codec.teacher"):
        _task(other).check(train)
    with pytest.raises(ValueError, match="codec pseudo-labels"):
        _task(teacher_dir).check(train.drop(columns=["codes"]))


def test_export_loads_through_the_registry_and_as_a_codec(teacher_dir, rows, tmp_path):
    options = load_config(
        DistillOptions,
        overrides=["student=codec", f"codec.teacher={teacher_dir}", "codec.size=tiny"],
    )
    task = build_task(options)
    model = task.build().eval()
    task.save(model, tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["student"] == "codec" and config["distilled_from"] == "tiny-encodec"
    loaded = audiodistill.load_model(tmp_path / "model")
    assert isinstance(loaded, CodecModel) and loaded.bitrate() == 900.0
    audio = rows[1][0]["audio"]
    mine = CodecModel(model.codec, 24_000)
    np.testing.assert_array_equal(loaded.encode(audio), mine.encode(audio))
    # loaded for inference: weight norm folded into plain weights, the same codec
    assert not any(parametrize.is_parametrized(m) for m in loaded.model.modules())
    assert any(parametrize.is_parametrized(m) for m in model.codec.modules())
    np.testing.assert_allclose(loaded.roundtrip(audio), mine.roundtrip(audio), atol=1e-5)
    assert abs(len(loaded.roundtrip(audio)) - len(audio)) < 320
    # the export is an ordinary transformers codec: the codec teacher loads it too
    as_teacher = build_teacher(TeacherOptions(backend="codec", model=str(tmp_path / "model")))
    np.testing.assert_array_equal(as_teacher.encode([audio])[0].codes, loaded.encode(audio))


@pytest.mark.integration
@pytest.mark.slow  # ~45 s on 2 busy cores, most of it Ray Train's start-up
def test_codec_student_runs_through_the_ray_job(teacher_dir, labels_dir, tmp_path):
    import ray

    from pipelines.distill import run

    out = tmp_path / "run"
    options = load_config(
        DistillOptions,
        overrides=[
            "student=codec", f"out={out}", f"data.labels={labels_dir}",
            f"codec.teacher={teacher_dir}", "codec.size=tiny", "train.batch_size=3",
            "train.workers=2", "train.max_steps=4", "train.eval_every=2",
            "train.checkpoint_every=2", "train.warmup_steps=1", "train.log_every=2",
        ],
    )  # fmt: skip
    ray.init(num_cpus=2, log_to_driver=False)
    try:
        summary = run(options)
    finally:
        ray.shutdown()
    assert summary["steps"] == 4 and summary["best_dev_wer"] is None
    assert summary["best_dev_score"] > 0 and summary["train_utterances"] == 6
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("dev_code_agreement" in r for r in records)
    assert isinstance(audiodistill.load_model(out / "model"), CodecModel)


def test_score_compares_a_codec_with_its_teacher(teacher_dir, rows):
    teacher = CodecModel.from_pretrained(teacher_dir)
    audios = [r["audio"] for r in rows[1]]
    alone = quality.score(teacher, audios)
    against_itself = quality.score(teacher, audios, teacher)
    assert set(alone) == {"mel_distance", "si_sdr", "stoi", "bitrate", "parameters"}
    assert against_itself["code_agreement"] == 1.0
    assert against_itself["teacher_decoded_mel_distance"] == pytest.approx(alone["mel_distance"])
    assert alone["bitrate"] == 900.0 and alone["parameters"] > 0


def test_eval_command_scores_codecs_against_the_first(teacher_dir, labels_dir, tmp_path):
    from audiodistill.cli import main
    from audiodistill.data.manifest import write_manifest

    options = load_config(
        DistillOptions,
        overrides=["student=codec", f"codec.teacher={teacher_dir}", "codec.size=tiny"],
    )
    task = build_task(options)
    task.save(task.build().eval(), tmp_path / "student" / "model")
    clips = sorted(labels_dir.parent.glob("c*.wav"))[:3]
    manifest = tmp_path / "clips.jsonl"
    write_manifest([Utterance(c.stem, str(c)) for c in clips], manifest)  # no transcripts
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(teacher_dir), "--model", str(tmp_path / "student" / "model"),
            f"data={manifest}", "split=null", f"out={out}"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    teacher, student = report["models"]
    assert (teacher["name"], student["name"]) == ("tiny-encodec", "student")
    assert "code_agreement" in student and "code_agreement" not in teacher
    checks = {c["target"]: c for c in report["targets"]["student"]}
    share = checks["parameters / teacher's"]
    assert share["value"] == pytest.approx(student["parameters"] / teacher["parameters"])
    assert "parameters / teacher's" in (out / "report.md").read_text()
    mixed = ["eval", "--model", str(teacher_dir), "--model", "teacher:ct2", f"data={manifest}"]
    assert main(mixed + [f"out={tmp_path / 'mixed'}"]) == 2
