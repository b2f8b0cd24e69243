"""Codec teachers: tiny random-init EnCodec, DAC and Mimi saved and loaded like checkpoints."""

import math

import numpy as np
import pytest
import torch

from audiodistill.data.audio import SAMPLE_RATE, resample
from audiodistill.teachers import CodecTeacher, TeacherOptions, build_teacher
from audiodistill.testing.codecs import FAMILIES, save_tiny_codec

# (sampling rate, frames per second, latent dim) of the tiny configs
EXPECTED = {"encodec": (24_000, 75.0, 16), "dac": (16_000, 50.0, 16), "mimi": (24_000, 12.5, 16)}


@pytest.fixture(scope="module")
def codec_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("codecs")
    return {family: save_tiny_codec(family, root / f"tiny-{family}") for family in FAMILIES}


def _teacher(path, **kw) -> CodecTeacher:
    return build_teacher(TeacherOptions(backend="codec", model=str(path), **kw))


def _clips(lengths=(SAMPLE_RATE, 9_000, 4_321), seed=0):
    rng = np.random.default_rng(seed)
    return [0.1 * rng.standard_normal(n).astype(np.float32) for n in lengths]


@pytest.mark.parametrize("family", FAMILIES)
def test_codes_and_latents_have_the_codec_shapes(codec_dirs, family):
    teacher = _teacher(codec_dirs[family])
    rate, frame_rate, dim = EXPECTED[family]
    assert isinstance(teacher, CodecTeacher)
    assert teacher.name == f"tiny-{family}" and len(teacher.revision) == 12
    assert teacher.frame_rate == frame_rate and teacher.n_q == 2 and teacher.codebook_size == 64
    assert teacher.bitrate == 2 * math.log2(64) * frame_rate
    clips = _clips()
    out = teacher.encode(clips)
    for clip, encoding in zip(clips, out, strict=True):
        frames = math.ceil(len(clip) / SAMPLE_RATE * frame_rate)
        assert encoding.error is None
        assert encoding.codes.shape == (2, frames) and encoding.codes.dtype == np.int32
        assert 0 <= encoding.codes.min() and encoding.codes.max() < 64
        assert encoding.latents.shape == (dim, frames) and encoding.latents.dtype == np.float32
    # deterministic: again, and through a second load of the same directory
    again = _teacher(codec_dirs[family]).encode(clips)
    for a, b in zip(out, again, strict=True):
        np.testing.assert_array_equal(a.codes, b.codes)
        np.testing.assert_array_equal(a.latents, b.latents)


@pytest.mark.parametrize("family", FAMILIES)
def test_codes_match_the_models_own_encode_after_resampling(codec_dirs, family):
    """16 kHz in, resampled to the codec's rate and padded to whole frames: the codes
    transformers' own encode() gives."""
    teacher = _teacher(codec_dirs[family])
    rate = EXPECTED[family][0]
    clip = _clips((9_000,))[0]
    at_rate = resample(clip, SAMPLE_RATE, rate)
    assert len(at_rate) == 9_000 * rate // SAMPLE_RATE
    whole = math.ceil(len(at_rate) / teacher.hop) * teacher.hop
    inputs = torch.from_numpy(np.pad(at_rate, (0, whole - len(at_rate))))[None, None]
    with torch.inference_mode():
        if family == "encodec":
            codes = teacher.model.encode(inputs, bandwidth=0.9).audio_codes[0, 0]
        else:
            codes = teacher.model.encode(inputs).audio_codes[0]
    mine = teacher.encode([clip])[0].codes
    np.testing.assert_array_equal(mine, codes.numpy())


def test_batching_does_not_change_results(codec_dirs):
    teacher = _teacher(codec_dirs["mimi"], batch_size=4)
    assert teacher.batched  # causal, zero padding: the batch padding can't reach any frame
    clips = _clips((SAMPLE_RATE, 9_000, 4_321, 800))
    together = teacher.encode(clips)
    for clip, batched in zip(clips, together, strict=True):
        alone = teacher.encode([clip])[0]
        np.testing.assert_array_equal(batched.codes, alone.codes)
        np.testing.assert_allclose(batched.latents, alone.latents, atol=1e-4)
    assert not _teacher(codec_dirs["dac"]).batched  # looks ahead: one utterance at a time
    assert not _teacher(codec_dirs["encodec"]).batched  # reflect padding


@pytest.mark.parametrize("family", ["encodec", "mimi"])
def test_a_broken_item_fails_alone(codec_dirs, family):
    teacher = _teacher(codec_dirs[family])
    good = _clips((9_000, 5))  # 5 samples: shorter than a frame, still one frame of codes
    out = teacher.encode([good[0], np.zeros(0, np.float32), np.full(800, np.nan), good[1]])
    assert "non-empty" in out[1].error and "NaN" in out[2].error
    assert out[1].codes is None and out[2].latents is None
    np.testing.assert_array_equal(out[0].codes, teacher.encode([good[0]])[0].codes)
    assert out[3].error is None and out[3].codes.shape == (2, 1)


def test_fewer_codebooks_are_a_prefix_and_latents_optional(codec_dirs):
    full = _teacher(codec_dirs["dac"]).encode(_clips())
    one = _teacher(codec_dirs["dac"], codebooks=1, codec_latents=False)
    assert one.n_q == 1 and one.bitrate == 300.0  # 6 bits at 50 Hz
    for a, b in zip(full, one.encode(_clips()), strict=True):
        np.testing.assert_array_equal(b.codes, a.codes[:1])
        assert b.latents is None
    with pytest.raises(ValueError, match=r"teacher.codebooks must be in 1..2"):
        _teacher(codec_dirs["dac"], codebooks=3)


def test_loading_errors_name_the_model(tmp_path):
    with pytest.raises(ValueError, match="needs a transformers codec directory"):
        build_teacher(TeacherOptions(backend="codec"))
    with pytest.raises(FileNotFoundError, match="no-such-dir: not a transformers codec"):
        _teacher(tmp_path / "no-such-dir")
    with pytest.raises(FileNotFoundError, match="'nobody/no-such-codec': no such directory"):
        _teacher("nobody/no-such-codec")  # a hub id that is not cached: no download
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16)).save_pretrained(
        tmp_path / "gpt2"
    )
    with pytest.raises(ValueError, match="GPT2Model is not a supported codec"):
        _teacher(tmp_path / "gpt2")


@pytest.mark.integration
def test_pseudo_label_job_stores_codes_once_per_id_and_resumes(codec_dirs, tmp_path):
    """The real Ray job with a codec teacher: a row per id, codes readable, rerun skips."""
    import ray

    from audiodistill.data.audio import save_wav
    from audiodistill.data.label_store import codec_arrays, finished_shards, read_labels, shard_path
    from audiodistill.data.manifest import Utterance, write_manifest
    from audiodistill.teachers.shard_labelling import PseudoLabelOptions
    from pipelines.pseudo_label import run

    utts = []
    for i, clip in enumerate(_clips((4_000, 8_000, 12_000, 16_000, 6_000))):
        save_wav(tmp_path / f"c{i}.wav", clip)
        utts.append(Utterance(f"c{i}", str(tmp_path / f"c{i}.wav")))
    (tmp_path / "junk.wav").write_bytes(b"not audio" * 50)
    utts.insert(2, Utterance("junk", str(tmp_path / "junk.wav")))
    write_manifest(utts, tmp_path / "manifest.jsonl")
    teacher = TeacherOptions(backend="codec", model=str(codec_dirs["encodec"]))
    options = PseudoLabelOptions(
        manifest=str(tmp_path / "manifest.jsonl"), out=str(tmp_path / "run"), shard_size=2,
        workers=1, teacher=teacher,
    )  # fmt: skip
    try:
        summary = run(options, progress=False)
        labels = read_labels(options.out)
        assert sorted(labels["id"]) == sorted(u.id for u in utts) and labels["id"].is_unique
        assert summary["items"] == 6 and summary["failed"] == 1 and summary["kept"] == 5
        assert summary["codec"]["bitrate"] == 900.0 and summary["audio_seconds_per_second"] > 0
        assert "wer_by_split" not in summary and summary["teacher"] == ["tiny-encodec"]
        assert "not decodable" in labels.set_index("id").loc["junk", "error"]
        for _, row in labels[labels["error"].isna()].iterrows():
            codes, latents = codec_arrays(row)
            frames = math.ceil(row["duration"] * 75)
            assert codes.shape == (2, frames) and latents.shape == (16, frames)
            assert row["frame_rate"] == 75.0 and row["n_q"] == 2 and row["codebook_size"] == 64
        shard_path(options.out, 1).unlink()
        before = {i: shard_path(options.out, i).stat().st_mtime_ns for i in (0, 2)}
        again = run(options, progress=False)
        assert again["labelled_this_run"] == 2 and finished_shards(options.out) == {0, 1, 2}
        assert {i: shard_path(options.out, i).stat().st_mtime_ns for i in before} == before
        assert read_labels(options.out)["id"].is_unique
    finally:
        ray.shutdown()
