"""Width pruning of an EnCodec teacher into a narrower student (students/codec_pruning.py)."""

import pytest
import torch

from audiodistill.codec.families import EncodecFamily
from audiodistill.students.codec_pruning import prune_into
from audiodistill.students.codec_student import CodecOptions, CodecTask
from audiodistill.testing.codecs import tiny_codec_config


@pytest.fixture()
def teacher():
    from transformers import EncodecModel

    torch.manual_seed(0)
    return EncodecModel(tiny_codec_config("encodec")).eval()


def _round_trip(model, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        latents = model.encoder(audio)
        return latents, model.decoder(latents)


def _silence_even_channels(model) -> None:
    """Zero every even channel of every space a narrower student would prune (all but the
    latents and the waveform), so those channels carry exactly zero everywhere."""
    with torch.no_grad():
        for layers in (model.encoder.layers, model.decoder.layers):
            convs = [m for m in layers if hasattr(m, "conv")]
            for layer in layers:
                name = type(layer).__name__
                if hasattr(layer, "conv") and layer is not convs[-1]:
                    _silence_outputs(layer.conv)
                elif name == "EncodecResnetBlock":
                    for conv in (layer.block[1].conv, layer.block[3].conv, layer.shortcut.conv):
                        _silence_outputs(conv)
                elif name == "EncodecLSTM":
                    lstm = layer.lstm
                    even = torch.arange(0, lstm.hidden_size, 2)
                    rows = torch.cat([g * lstm.hidden_size + even for g in range(4)])
                    for value in lstm.parameters():
                        value[rows] = 0


def _silence_outputs(conv) -> None:
    weight_norm = conv.parametrizations.weight
    even = torch.arange(0, conv.out_channels, 2)
    if isinstance(conv, torch.nn.ConvTranspose1d):  # [in, out, k]; the norm is per input
        weight_norm.original1[:, even] = 0
    else:  # [out, in, k]; a zero magnitude zeroes the whole output channel
        weight_norm.original0[even] = 0
    conv.bias[even] = 0


def test_pruning_into_the_same_shape_copies_the_model(teacher):
    from transformers import EncodecModel

    copy = EncodecModel(teacher.config).eval()
    kept = prune_into(teacher, copy)
    audio = torch.randn(1, 1, 24000) * 0.1
    assert torch.equal(kept, torch.arange(teacher.config.hidden_size))
    for mine, theirs in zip(_round_trip(copy, audio), _round_trip(teacher, audio), strict=True):
        torch.testing.assert_close(mine, theirs)


def test_pruning_away_silent_channels_keeps_the_output_exactly(teacher):
    """Half of every channel space carries zeros: the half-width student keeps the other
    half (the strongest), with the right input slices everywhere, so nothing changes."""
    from transformers import EncodecModel

    _silence_even_channels(teacher)
    student = EncodecModel(EncodecFamily().student_config(teacher.config, "tiny", None)).eval()
    assert student.config.num_filters == teacher.config.num_filters // 2
    prune_into(teacher, student)
    audio = torch.randn(2, 1, 24000) * 0.1
    for mine, theirs in zip(_round_trip(student, audio), _round_trip(teacher, audio), strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-4)


def test_pruned_student_with_fewer_latents_gets_the_matching_codebook_slices(tmp_path):
    from audiodistill.testing.codecs import save_tiny_codec

    teacher_dir = save_tiny_codec("encodec", tmp_path / "teacher")
    task = CodecTask(CodecOptions(teacher=str(teacher_dir), size="tiny", latent_dim=8))
    student = task.build().codec
    teacher = task.teacher.model
    norms = teacher.encoder.layers[-1].conv.weight.flatten(1).norm(dim=1)
    kept = norms.topk(8).indices.sort().values
    for mine, theirs in zip(student.quantizer.layers, teacher.quantizer.layers, strict=True):
        assert torch.equal(mine.codebook.embed, theirs.codebook.embed[:, kept])
    with pytest.raises(ValueError, match="latent_dim=32: at most the teacher's 16"):
        CodecTask(CodecOptions(teacher=str(teacher_dir), size="tiny", latent_dim=32)).build()
