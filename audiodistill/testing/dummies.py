"""Small untrained models saved to disk, for serving and export tests."""

from __future__ import annotations


def save_untrained_streaming_student(
    out_dir, seed: int = 0, architecture: str = "conformer"
) -> str:
    """A tiny randomly initialized streaming student saved as an export, for serving and
    export tests: a chunked Conformer, or ("whisper") a causal Whisper encoder of the same
    tiny size. Its head is scaled up so the greedy text follows the audio (a random head
    is nearly constant), which makes any mismatch between two decoding paths show."""
    import torch

    from audiodistill.students.streaming import build_encoder, save_student
    from audiodistill.students.tokenizer import CharTokenizer

    sizes = {"d_model": 32, "n_layers": 2, "n_heads": 2, "ff_dim": 64, "left_chunks": 2}
    if architecture == "conformer":
        sizes |= {"conv_kernel": 5, "dropout": 0.0}
    torch.manual_seed(seed)
    model = build_encoder(architecture, sizes).eval()
    torch.nn.init.normal_(model.head.weight, std=3.0)
    save_student(model, CharTokenizer(), out_dir)
    return str(out_dir)
