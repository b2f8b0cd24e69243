"""Tiny random-init transformers codecs (EnCodec, DAC, Mimi), saved like real checkpoints.

No pretrained codec can be downloaded here, so tests build these from config classes
(offline), `save_pretrained` them and load them back through the real teacher code.
Each has 2 codebooks of 64 entries and a few channels: seconds to build, milliseconds to run.
The EnCodec and Mimi ones get codebooks sampled from their own latents (random init leaves
them zero: every code would be 0).
"""

from __future__ import annotations

from pathlib import Path

FAMILIES = ("encodec", "dac", "mimi")


def tiny_codec_config(family: str):
    """A small config of one family: 2 codebooks, few channels, the usual hop sizes."""
    from transformers import DacConfig, EncodecConfig, MimiConfig

    if family == "encodec":
        # 24 kHz, hop 320 (75 Hz); 0.9 kbps = 2 codebooks of 6 bits at 75 Hz
        return EncodecConfig(
            target_bandwidths=[0.9],
            hidden_size=16,
            num_filters=4,
            num_lstm_layers=1,
            codebook_size=64,
        )
    if family == "dac":
        # 16 kHz, hop 320 (50 Hz), like descript/dac_16khz
        return DacConfig(
            encoder_hidden_size=4,
            downsampling_ratios=[2, 4, 5, 8],
            upsampling_ratios=[8, 5, 4, 2],
            decoder_hidden_size=32,
            hidden_size=16,
            n_codebooks=2,
            codebook_size=64,
            codebook_dim=4,
        )
    if family == "mimi":
        # 24 kHz, hop 1920 (12.5 Hz) with its transformer; 1 semantic + 1 acoustic codebook
        return MimiConfig(
            hidden_size=16,
            num_filters=4,
            num_hidden_layers=1,
            intermediate_size=32,
            num_attention_heads=2,
            num_key_value_heads=2,
            codebook_size=64,
            codebook_dim=8,
            vector_quantization_hidden_dimension=8,
            num_quantizers=2,
            upsample_groups=16,
        )
    raise ValueError(f"unknown codec family {family!r}; one of {FAMILIES}")


def save_tiny_codec(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build a random-init codec of `family` and save it (weights, config, feature extractor)."""
    import torch
    from transformers import AutoModel, EncodecFeatureExtractor

    config = tiny_codec_config(family)
    torch.manual_seed(seed)
    model = AutoModel.from_config(config).eval()
    if family in ("encodec", "mimi"):
        _fill_codebooks(model, seed)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    EncodecFeatureExtractor(sampling_rate=config.sampling_rate).save_pretrained(out_dir)
    return out_dir


def tone_clip(i: int, rng, seconds: float = 0.5):
    """A 16 kHz decaying tone (220 + 110 i Hz) in light noise: codec test audio."""
    import numpy as np

    from audiodistill.data.audio import SAMPLE_RATE

    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) * np.exp(-2 * t)
    return (tone + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def label_tone_clips(teacher_dir: str | Path, root: str | Path, n: int = 8, dev: int = 2) -> Path:
    """Codec pseudo-labels of `n` tone clips (the last `dev` in the dev split) by the codec
    at `teacher_dir`, written under root/labels as the labelling job writes them."""
    import numpy as np

    from audiodistill.data.audio import save_wav
    from audiodistill.data.manifest import Utterance
    from audiodistill.teachers import TeacherOptions, build_teacher
    from audiodistill.teachers.shard_labelling import label_shard

    root = Path(root)
    rng = np.random.default_rng(1)
    utterances = []
    for i in range(n):
        save_wav(root / f"c{i}.wav", tone_clip(i, rng))
        split = "dev" if i >= n - dev else "train"
        utterances.append(Utterance(f"c{i}", str(root / f"c{i}.wav"), split=split))
    teacher = build_teacher(TeacherOptions(backend="codec", model=str(teacher_dir)))
    label_shard(teacher, utterances, root / "labels", 0)
    return root / "labels"


def training_rows(labels: str | Path) -> tuple[list[dict], list[dict]]:
    """(train, dev) rows of codec labels as the training loop sees them, audio loaded."""
    from audiodistill.training.distill_options import DataOptions
    from audiodistill.training.label_rows import load_training_rows, training_row, with_audio

    train, dev = load_training_rows(DataOptions(labels=str(labels)))
    return tuple(
        with_audio([training_row(r) for r in df.to_dict(orient="records")]) for df in (train, dev)
    )


def _fill_codebooks(model, seed: int) -> None:
    """Fill each Euclidean codebook with samples of the residual it quantizes, from the
    encoder's own latents of decaying tones and noise, so codes vary with the audio as a
    trained codec's do."""
    import numpy as np
    import torch

    from audiodistill.codec.families import family_of

    rng = np.random.default_rng(seed)
    t = np.arange(model.config.sampling_rate) / model.config.sampling_rate
    clips = [0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) * np.exp(-2 * t) for i in range(8)]
    audio = np.concatenate(clips) + 0.02 * rng.standard_normal(len(clips) * len(t))
    with torch.no_grad():
        family = family_of(model)
        latents = family.latents(model, torch.from_numpy(audio).float()[None, None])
        for project, layers in family.euclidean_quantizers(model):
            residual = project(latents)[0].t()  # [T, D]
            for layer in layers:
                picks = torch.from_numpy(
                    rng.choice(len(residual), len(layer.codebook.embed), replace=False)
                )
                _set_entries(layer.codebook, residual[picks])
                residual = residual - layer.codebook.decode(layer.codebook.encode(residual))


def _set_entries(codebook, entries) -> None:
    if hasattr(codebook, "embed_sum"):  # Mimi: entries are embed_sum / cluster_usage
        codebook.embed_sum.copy_(entries)
        codebook.cluster_usage.fill_(1.0)
        codebook._embed = None
    else:
        codebook.embed.copy_(entries)
