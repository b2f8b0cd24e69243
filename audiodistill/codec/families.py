"""The steps of each transformers codec family, behind one interface.

The codec teacher (teachers/transformers_codec.py) encodes with them; the codec student
(students/codec_student.py) trains, runs and exports a smaller codec of its teacher's family with
them. Every family splits the same way: an encoder to continuous latents [B, D, T], a
residual quantizer from latents to codes [B, n_q, T] and back to quantized latents, and a
decoder to audio. `CodecFamily` names those steps; each family implements them with its
own modules:

- EnCodec: SEANet encoder/decoder, a residual quantizer of plain codebooks (buffers that
  EnCodec updates by k-means EMA). Width pruning (students/codec_pruning.py) and the code
  cross-entropy (codec/losses.py residual_code_logits) are implemented for it.
- DAC: encoder/decoder with Snake activations, a residual quantizer of factorized,
  l2-normalized codebooks (each stage projects to `codebook_dim`, looks up by cosine, and
  projects back). Students start from random weights; the teacher's quantizer is copied
  and frozen, so the student's codes stay the teacher's code space (drop-in).
- Mimi: SEANet plus a transformer on each side, a 2x down/upsampling to 12.5 Hz, and a
  split quantizer: a semantic and an acoustic residual quantizer each project the same
  latents (`input_proj`) and quantize them with Euclidean codebooks; their outputs add up.
  Students keep the teacher's latent size (`hidden_size`, which the transformers also run
  at) so the teacher's quantizer, copied and frozen, fits; they shrink the SEANet filters,
  the transformer depth and its MLP. The code cross-entropy works per half, on each half's
  projection of the latents. Students start from random weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# literal student sizes per family, applied to the teacher's config. EnCodec (filters: the
# first conv layer's channels, doubled at each of the 4 downsamplings; the LSTM runs at the
# widest; compress: residual blocks narrow to channels / compress inside). At these widths
# the full-rate element-wise work (padding, ELU), which shrinks with the filters only
# linearly, sets the pace: against the embedded 16-filter teacher, xs (8) ran 2.5x faster,
# xxs (7) 3.0x (docs/lab_notebook.md). 6 filters trained no further than a random start.
ENCODEC_SIZES = {
    "s": {"num_filters": 16, "num_lstm_layers": 1},
    "xs": {"num_filters": 8, "num_lstm_layers": 1, "compress": 4},
    "xxs": {"num_filters": 7, "num_lstm_layers": 1, "compress": 4},
    "tiny": {"num_filters": 2, "num_lstm_layers": 1},
}
# DAC: encoder_hidden_size is the first conv's channels (doubled at each downsampling),
# decoder_hidden_size the first decoder conv's (halved at each upsampling). With
# transformers' DacConfig defaults (descript/dac_16khz's architecture: 64 and 1536, 76.6M
# parameters), s has 20.7M: 27%, and ran 4.7x faster (benchmarks/codec_sizes.py).
# tiny is for the tiny random-init test codecs.
DAC_SIZES = {
    "s": {"encoder_hidden_size": 32, "decoder_hidden_size": 704},
    "tiny": {"encoder_hidden_size": 2, "decoder_hidden_size": 16},
}
# Mimi: num_filters as EnCodec's; num_hidden_layers and intermediate_size: the depth and MLP
# width of the encoder's and the decoder's transformer. The latent size (hidden_size) stays
# the teacher's (module docstring). As in EnCodec, the full-rate SEANet sets the pace: with
# kyutai/mimi's config (64 filters, 8 layers, MLP 2048, 79.3M parameters), 32 filters ran
# 2.9x faster, 24 filters 3.75x (benchmarks/codec_sizes.py); s has 15.1M parameters: 19%.
MIMI_SIZES = {
    "s": {"num_filters": 24, "num_hidden_layers": 2, "intermediate_size": 1024},
    "tiny": {"num_filters": 2, "num_hidden_layers": 1, "intermediate_size": 16},
}


class CodecFamily:
    """The steps of one codec family; `codec` is a transformers model of that family."""

    name: str
    sizes: dict[str, dict]
    has_code_logits = False  # whether `code_logits` is implemented (the code cross-entropy)

    def student_config(self, teacher_config, size: str, latent_dim: int | None):
        """The teacher's config (rate, hop, codebooks) at the named smaller size."""
        if size not in self.sizes:
            raise ValueError(f"codec.size must be one of {sorted(self.sizes)}, got {size!r}")
        values = teacher_config.to_dict()
        values.update(self.sizes[size])
        if latent_dim is not None:
            values.update(self._latent_fields(latent_dim))
        return type(teacher_config)(**values)

    def _latent_fields(self, latent_dim: int) -> dict:
        raise ValueError(f"codec.latent_dim: a {self.name} student keeps its teacher's latents")

    def model(self, config) -> nn.Module:
        raise NotImplementedError

    def n_codebooks(self, config) -> int:
        """All residual codebooks the codec has."""
        raise NotImplementedError

    def hop_length(self, config) -> int:
        """Audio samples per code frame."""
        return int(config.hop_length)

    def latents(self, codec, audio: torch.Tensor) -> torch.Tensor:
        """[B, D, T] pre-quantization latents of [B, 1, N] audio at the codec's rate."""
        return codec.encoder(audio)

    def quantize(self, codec, latents: torch.Tensor, n_q: int) -> torch.Tensor:
        """[B, n_q, T] codes of [B, D, T] latents (no gradient)."""
        raise NotImplementedError

    def dequantize(self, codec, codes: torch.Tensor) -> torch.Tensor:
        """[B, D, T] quantized latents of [B, n_q, T] codes."""
        raise NotImplementedError

    def decode(self, codec, quantized: torch.Tensor) -> torch.Tensor:
        """[B, T * hop] audio of [B, D, T] quantized latents. DAC's unpadded convolutions
        return a few samples less (7,992 of 8,000 for 25 frames of the tiny test codec):
        the end is zero-filled, so audio always lines up with whole frames."""
        audio = self._decoder_audio(codec, quantized)
        length = quantized.shape[-1] * self.hop_length(codec.config)
        return nn.functional.pad(audio[:, :length], (0, max(0, length - audio.shape[-1])))

    def _decoder_audio(self, codec, quantized: torch.Tensor) -> torch.Tensor:
        """[B, about T * hop] audio of the decoder, as it comes."""
        return codec.decoder(quantized)[:, 0]

    def init_student(self, teacher, student, init: str) -> None:
        """Start `student` from `teacher` (init "pruned") or as built ("random"), with the
        teacher's quantizer on the latent channels the student keeps."""
        raise NotImplementedError

    def euclidean_quantizers(self, codec) -> list[tuple[Callable, nn.ModuleList]]:
        """(projection of the latents, codebook layers) of each residual quantizer, in code
        order, for families whose codebooks are plain Euclidean entries (`has_code_logits`)."""
        raise NotImplementedError

    def code_logits(self, codec, latents: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """[B, n_q, T, K] logits of each stage's code, teacher-forced on `codes`: each
        residual quantizer scores its share of the codes on its projection of the latents."""
        from audiodistill.codec.losses import residual_code_logits

        logits, start = [], 0
        for project, layers in self.euclidean_quantizers(codec):
            share = codes[:, start : start + len(layers)]
            start += len(layers)
            if share.shape[1] > 0:
                used = layers[: share.shape[1]]
                codebooks = torch.stack([layer.codebook.embed for layer in used])
                logits.append(residual_code_logits(project(latents), codebooks, share))
        return torch.cat(logits, dim=1)

    def feature_extractor(self, sampling_rate: int):
        from transformers import EncodecFeatureExtractor

        return EncodecFeatureExtractor(sampling_rate=sampling_rate)


class EncodecFamily(CodecFamily):
    name = "encodec"
    sizes = ENCODEC_SIZES
    has_code_logits = True

    def _latent_fields(self, latent_dim: int) -> dict:
        return {"hidden_size": latent_dim, "codebook_dim": latent_dim}

    def model(self, config) -> nn.Module:
        from transformers import EncodecModel

        return EncodecModel(config)

    def n_codebooks(self, config) -> int:
        return int(config.num_quantizers)  # those of its highest bandwidth

    def quantize(self, codec, latents: torch.Tensor, n_q: int) -> torch.Tensor:
        with torch.no_grad():
            return codec.quantizer.encode(latents)[:n_q].transpose(0, 1)

    def dequantize(self, codec, codes: torch.Tensor) -> torch.Tensor:
        return codec.quantizer.decode(codes.transpose(0, 1))

    def init_student(self, teacher, student, init: str) -> None:
        from audiodistill.students.codec_pruning import prune_into

        latents = torch.arange(student.config.hidden_size)  # teacher latent channels kept
        if init == "pruned":
            latents = prune_into(teacher, student)
        # the teacher's codebooks on the kept channels (all of them: drop-in codes); EnCodec
        # trains codebooks by EMA, which this loop does not, so they must start trained
        for mine, theirs in zip(student.quantizer.layers, teacher.quantizer.layers, strict=True):
            state = theirs.codebook.state_dict()
            state["embed"] = state["embed"][:, latents]
            state["embed_avg"] = state["embed_avg"][:, latents]
            mine.codebook.load_state_dict(state)

    def euclidean_quantizers(self, codec) -> list[tuple[Callable, nn.ModuleList]]:
        return [(nn.Identity(), codec.quantizer.layers)]


class DacFamily(CodecFamily):
    name = "dac"
    sizes = DAC_SIZES

    def model(self, config) -> nn.Module:
        from transformers import DacModel

        return DacModel(config)

    def n_codebooks(self, config) -> int:
        return int(config.n_codebooks)

    def quantize(self, codec, latents: torch.Tensor, n_q: int) -> torch.Tensor:
        # stage by stage, as DacResidualVectorQuantizer does in eval mode: its forward in
        # train mode would drop stages at random (quantizer dropout)
        codes = []
        with torch.no_grad():
            residual = latents
            for stage in codec.quantizer.quantizers[:n_q]:
                entries, ids = stage.decode_latents(stage.in_proj(residual))
                residual = residual - stage.out_proj(entries)
                codes.append(ids)
        return torch.stack(codes, dim=1)

    def dequantize(self, codec, codes: torch.Tensor) -> torch.Tensor:
        return codec.quantizer.from_codes(codes)[0]

    def init_student(self, teacher, student, init: str) -> None:
        _random_init_only(self.name, init)
        _copy_frozen_quantizer(teacher, student)

    def feature_extractor(self, sampling_rate: int):
        from transformers import DacFeatureExtractor

        return DacFeatureExtractor(sampling_rate=sampling_rate)


class MimiFamily(CodecFamily):
    name = "mimi"
    sizes = MIMI_SIZES
    has_code_logits = True

    def model(self, config) -> nn.Module:
        from transformers import MimiModel

        return MimiModel(config)

    def n_codebooks(self, config) -> int:
        return int(config.num_quantizers)

    def hop_length(self, config) -> int:
        return int(config.frame_size)  # SEANet strides times the 2x downsampling

    def latents(self, codec, audio: torch.Tensor) -> torch.Tensor:
        return codec.encoder(audio).latents

    def quantize(self, codec, latents: torch.Tensor, n_q: int) -> torch.Tensor:
        with torch.no_grad():
            return codec.quantizer.encode(latents, n_q).transpose(0, 1)

    def dequantize(self, codec, codes: torch.Tensor) -> torch.Tensor:
        return codec.quantizer.decode(codes)

    def _decoder_audio(self, codec, quantized: torch.Tensor) -> torch.Tensor:
        return codec.decoder(quantized).audio_values[:, 0]

    def init_student(self, teacher, student, init: str) -> None:
        _random_init_only(self.name, init)
        _copy_frozen_quantizer(teacher, student)
        for module in student.quantizer.modules():
            if hasattr(module, "_embed"):
                module._embed = None  # codebook entries cached from the old buffers

    def euclidean_quantizers(self, codec) -> list[tuple[Callable, nn.ModuleList]]:
        # the semantic half's codes come first; each half projects the same latents
        halves = (
            codec.quantizer.semantic_residual_vector_quantizer,
            codec.quantizer.acoustic_residual_vector_quantizer,
        )
        return [(half.input_proj or nn.Identity(), half.layers) for half in halves]


def _random_init_only(family: str, init: str) -> None:
    if init == "pruned":
        raise ValueError(
            "codec.init=pruned is implemented for EnCodec students only; "
            f"set codec.init=random for a {family} student"
        )


def _copy_frozen_quantizer(teacher, student) -> None:
    """The teacher's quantizer in the student, frozen: the student learns to land in the
    teacher's code space, so its codes are drop-in for the teacher's decoder."""
    student.quantizer.load_state_dict(teacher.quantizer.state_dict())
    student.quantizer.requires_grad_(False)


FAMILIES = {"EncodecModel": EncodecFamily(), "DacModel": DacFamily(), "MimiModel": MimiFamily()}


def family_of(codec) -> CodecFamily:
    """The family of a transformers codec model; a clear error for other models."""
    kind = type(codec).__name__
    if kind not in FAMILIES:
        raise ValueError(f"{kind} is not a supported codec ({', '.join(sorted(FAMILIES))})")
    return FAMILIES[kind]
