"""Tiny random-init transformers codecs (EnCodec, DAC, Mimi), saved like real checkpoints.

No pretrained codec can be downloaded here, so tests build these from config classes
(offline), `save_pretrained` them and load them back through the real teacher code.
Each has 2 codebooks of 64 entries and a few channels: seconds to build, milliseconds to run.
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
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    EncodecFeatureExtractor(sampling_rate=config.sampling_rate).save_pretrained(out_dir)
    return out_dir
