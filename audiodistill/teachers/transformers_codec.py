"""Codec teacher: any transformers neural audio codec (EnCodec, DAC, Mimi), CPU or GPU.

Per utterance it returns the discrete codes `[n_q, T]` and the continuous latents `[D, T]`.
The latents are, for every family, the encoder's output *before* quantization: what a
student encoder regresses onto, and what the quantizer turns into codes (the quantized
embeddings follow from the codes and the teacher's codebooks, so they are not stored):

- EnCodec: `model.encoder(audio)`, D = `hidden_size` (128 for facebook/encodec_24khz)
- DAC: `model.encoder(audio)`, D = `hidden_size` (1024 for descript/dac_16khz)
- Mimi: `model.encoder(audio).latents` (SEANet, transformer, downsampling to 12.5 Hz), D =
  `hidden_size` (512 for kyutai/mimi)

The steps per family are in audiodistill/codec/families.py. Codes come from the model's own
residual quantizer, its first `codebooks` stages: residual quantization is sequential, so
that is exactly what encoding with fewer codebooks gives.

Every utterance is zero-padded to a whole number of frames first (as DAC's own
preprocessing does): the last frame then sees zeros, never the model's edge padding, which
is what lets a padded batch give each utterance exactly the frames it gets alone. That
needs causal convolutions that pad with zeros (Mimi): they never look into the batch
padding. DAC's convolutions look ahead; EnCodec's reflect padding reaches into the batch
padding on clips of a few frames. Those two encode one utterance at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from audiodistill.codec.families import FAMILIES, family_of
from audiodistill.data.audio import SAMPLE_RATE, resample
from audiodistill.teachers.base import CodecEncoding
from audiodistill.teachers.bundled import revision_of

DTYPES = ("float32", "float16", "bfloat16")


class HFCodecTeacher:
    """A transformers codec from a local directory or a hub id already in the local cache."""

    def __init__(
        self,
        model: str | None,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 8,
        threads: int = 1,
        codebooks: int | None = None,
        latents: bool = True,
    ):
        if dtype not in DTYPES:
            raise ValueError(f"teacher.dtype must be one of {DTYPES}, got {dtype!r}")
        if device == "cpu":
            torch.set_num_threads(threads)
        self.model, self.name, self.revision = _load(model, dtype)
        self.model = self.model.to(device).eval()
        self.family = family_of(self.model)
        config = self.model.config
        if getattr(config, "audio_channels", 1) != 1:
            raise ValueError(f"{self.name}: only mono codecs are supported")
        if self.family.name == "encodec" and (
            config.chunk_length_s is not None or config.normalize
        ):
            raise ValueError(
                f"{self.name}: chunked, normalized EnCodec (the 48 kHz model) is not supported; "
                "use a codec that encodes whole utterances (e.g. facebook/encodec_24khz)"
            )
        self.device, self.batch_size, self.keep_latents = device, batch_size, latents
        self.sampling_rate = int(config.sampling_rate)
        self.hop = self.family.hop_length(config)
        self.frame_rate = self.sampling_rate / self.hop
        all_codebooks = self.family.n_codebooks(config)
        self.n_q = all_codebooks if codebooks is None else codebooks
        if not 1 <= self.n_q <= all_codebooks:
            raise ValueError(f"teacher.codebooks must be in 1..{all_codebooks}, got {codebooks}")
        self.codebook_size = int(config.codebook_size)
        self.bitrate = self.n_q * math.log2(self.codebook_size) * self.frame_rate
        # see the module docstring (DacConfig has no causal variant)
        self.batched = getattr(config, "use_causal_conv", False) and config.pad_mode == "constant"

    def encode(self, audios: Sequence[np.ndarray]) -> list[CodecEncoding]:
        out: list[CodecEncoding | None] = [None] * len(audios)
        ready = []  # (index, audio at the codec's rate)
        for i, audio in enumerate(audios):
            try:
                ready.append((i, self._prepare(audio)))
            except ValueError as err:
                out[i] = CodecEncoding(None, None, error=str(err))
        step = self.batch_size if self.batched else 1
        for start in range(0, len(ready), step):
            chunk = ready[start : start + step]
            for (i, _), encoding in zip(chunk, self._encode_or_split(chunk), strict=True):
                out[i] = encoding
        return out

    def _prepare(self, audio: np.ndarray) -> np.ndarray:
        """16 kHz mono -> the codec's rate, at least one frame long; bad input raises."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"codec teacher: expected non-empty mono audio, got {audio.shape}")
        if not np.isfinite(audio).all():
            raise ValueError("codec teacher: audio contains NaN or infinite samples")
        audio = resample(audio, SAMPLE_RATE, self.sampling_rate)
        # whole frames (see the module docstring); very short clips still give one
        frames = max(1, math.ceil(len(audio) / self.hop))
        return np.pad(audio, (0, frames * self.hop - len(audio)))

    def _encode_or_split(self, chunk: list[tuple[int, np.ndarray]]) -> list[CodecEncoding]:
        """Encode a batch; if it fails (e.g. out of memory), each item alone, failing alone."""
        try:
            return self._encode_batch([audio for _, audio in chunk])
        except RuntimeError as err:
            if len(chunk) == 1:
                return [CodecEncoding(None, None, error=f"codec teacher: {err}")]
            return [e for item in chunk for e in self._encode_or_split([item])]

    def _encode_batch(self, audios: list[np.ndarray]) -> list[CodecEncoding]:
        longest = max(len(a) for a in audios)
        batch = np.stack([np.pad(a, (0, longest - len(a))) for a in audios])
        inputs = torch.from_numpy(batch)[:, None].to(self.device, self.model.dtype)
        with torch.inference_mode():
            latents = self.family.latents(self.model, inputs)
            codes = self.family.quantize(self.model, latents, self.n_q)
        latents = latents.float().cpu().numpy()
        codes = codes.to(torch.int32).cpu().numpy()
        out = []
        for i, audio in enumerate(audios):
            frames = len(audio) // self.hop  # inputs are whole frames (see `_prepare`)
            kept = latents[i, :, :frames] if self.keep_latents else None
            out.append(CodecEncoding(codes[i, :, :frames], kept))
        return out


def _load(model: str | None, dtype: str):
    """(model, name, revision) of a codec directory or cached hub id; clear errors otherwise."""
    from transformers import AutoModel

    if model is None:
        raise ValueError(
            "teacher.model: a codec teacher needs a transformers codec directory or hub id "
            "(none is bundled); see configs/pseudo_label/codec.yaml"
        )
    path = Path(model).expanduser()
    local = model.startswith(("/", "./", "../", "~")) or path.exists()
    if local and not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a transformers codec directory (no config.json)")
    try:
        # hub ids come from the local cache only: labelling never downloads
        loaded = AutoModel.from_pretrained(
            str(path) if local else model, dtype=getattr(torch, dtype), local_files_only=True
        )
    except OSError as err:
        raise FileNotFoundError(
            f"teacher.model={model!r}: no such directory, and not in the local hub cache "
            "(download it beforehand where there is a network, or give a directory)"
        ) from err
    if type(loaded).__name__ not in FAMILIES:
        raise ValueError(
            f"{model}: {type(loaded).__name__} is not a supported codec "
            f"({', '.join(sorted(FAMILIES))})"
        )
    if local:
        return loaded, path.name, revision_of(path)
    return loaded, model, getattr(loaded.config, "_commit_hash", None) or "unknown"
