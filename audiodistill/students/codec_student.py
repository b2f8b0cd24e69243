"""The `codec` student: a smaller neural audio codec distilled from a codec teacher.

The student is a transformers codec of the teacher's family with fewer channels and layers
(a named size per family, applied to the teacher's config), so its export is an ordinary
`save_pretrained` directory that `from_pretrained` (and the codec teacher) load as they are.
Families: EnCodec, DAC and Mimi (codec/families.py). An EnCodec student starts by default
from the teacher's strongest channels (students/codec_pruning.py): measured on the embedded
teacher, an xs student started so had a dev mel distance of 1.81 after 200 steps, one
started from random weights 3.34 (docs/lab_notebook.md). DAC and Mimi students start from
random weights (`init: random`).

Training signals, per batch of pseudo-label rows (the teacher's codes and latents):

- latent MSE: student encoder output vs the teacher's pre-quantization latents, through a
  learned linear projection when the student's latent size differs (the projection is a
  training-only head; it is not exported);
- code cross-entropy per codebook (EnCodec, Mimi): distance logits of the student's latents
  against its own residual quantizer (see codec/losses.py), on the teacher's
  code ids. With the
  teacher's latent size (the default), the student's quantizer *is* a copy of the teacher's
  codebooks, so matching ids means the student's codes are the teacher's codes: the teacher's
  decoder can decode them (`decode_with_teacher`, reported at every dev evaluation). EnCodec
  keeps codebooks as buffers updated by k-means EMA, which transformers does not train, so
  they stay fixed here: the encoder learns to land on them. DAC and Mimi students get the
  teacher's quantizer, frozen, for the same reason;
- multi-resolution log-STFT + log-mel L1 between the student's reconstruction (its own
  decoder on its own quantized latents, straight-through so the encoder gets this gradient
  too) and the teacher's decoded audio (what the teacher's codes sound like; the student
  learns to sound like the teacher, not better).

Teacher audio costs one teacher decoder pass per clip. It is computed at collate time and
kept in memory per worker (`cache_teacher_audio`): the first epoch pays it (about as much
as a student step for an EnCodec-sized teacher on CPU), later epochs read it back; memory is
4 bytes per output sample (96 kB per second of 24 kHz audio). The teacher is loaded from
`teacher` on every worker; the labels must come from that same teacher (name and revision).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from audiodistill.codec import losses, quality
from audiodistill.codec.families import CodecFamily, family_of
from audiodistill.data.audio import SAMPLE_RATE, resample

STUDENT_KIND = "codec"


@dataclass(frozen=True)
class CodecOptions:
    # directory of the codec teacher the labels came from (a transformers codec)
    teacher: str = "runs/codec_teacher/model"
    # student size (codec/families.py): EnCodec "s", "xs", "xxs" (EnCodec 24 kHz:
    # 32 filters, 2 LSTM layers; the embedded teacher: 16 filters, 1 LSTM layer); DAC "s";
    # Mimi "s"; "tiny" for tests on tiny random-init teachers
    size: Literal["s", "xs", "xxs", "tiny"] = "s"
    # student latent size (None: the teacher's, so its codebooks and codes are drop-in;
    # EnCodec only)
    latent_dim: int | None = None
    # starting weights: "pruned" keeps the teacher's strongest channels of every layer
    # (students/codec_pruning.py; EnCodec only), "random" starts from scratch
    init: Literal["pruned", "random"] = "pruned"
    # weight of the latent MSE to the teacher's latents
    latent_weight: float = 1.0
    # weight of the per-codebook cross-entropy on the teacher's codes (EnCodec, Mimi)
    code_weight: float = 1.0
    # weight of the multi-resolution spectral loss against the teacher's decoded audio
    reconstruction_weight: float = 1.0
    # at dev evaluation, also decode the student's codes with the teacher's decoder
    decode_with_teacher: bool = True
    # keep each clip's teacher-decoded audio in worker memory after its first decode
    cache_teacher_audio: bool = True


class CodecStudent(nn.Module):
    """A student codec plus the training-only projection of its latents to the teacher's."""

    def __init__(self, family: CodecFamily, config, teacher_dim: int):
        super().__init__()
        self.family = family
        self.codec = family.model(config)
        dim = config.hidden_size
        self.proj = nn.Identity() if dim == teacher_dim else nn.Linear(dim, teacher_dim)

    def encode(self, audio: torch.Tensor, n_q: int) -> tuple[torch.Tensor, torch.Tensor]:
        """([B, D, T] latents, [B, n_q, T] codes) of [B, 1, N] audio at the codec's rate."""
        latents = self.family.latents(self.codec, audio)
        return latents, self.family.quantize(self.codec, latents, n_q)

    def forward(self, audio: torch.Tensor, teacher_codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Projected latents, code logits (families that have them) and the reconstruction,
        for the training losses."""
        n_q, frames = teacher_codes.shape[1], teacher_codes.shape[2]
        latents, codes = self.encode(audio, n_q)
        latents, codes = latents[..., :frames], codes[..., :frames]
        quantized = self.family.dequantize(self.codec, codes)
        straight_through = latents + (quantized - latents).detach()
        out = {
            "latents": self.proj(latents.transpose(1, 2)).transpose(1, 2),
            "audio": self.family.decode(self.codec, straight_through),
        }
        if self.family.has_code_logits:
            out["logits"] = self.family.code_logits(self.codec, latents, teacher_codes)
        return out


class CodecTask:
    """Everything the training loop needs to build, train, evaluate and export this student."""

    kind = STUDENT_KIND
    dev_metric = "dev_mel_distance"  # the dev score: lower is better

    def __init__(self, options: CodecOptions = CodecOptions()):
        self.options = options
        self._teacher_audio: dict[str, torch.Tensor] = {}

    @cached_property
    def teacher(self):
        """The codec teacher, loaded on first use (a config can be checked without it)."""
        from audiodistill.teachers.transformers_codec import HFCodecTeacher

        return HFCodecTeacher(self.options.teacher, threads=torch.get_num_threads())

    @cached_property
    def family(self) -> CodecFamily:
        """The teacher's codec family (and the student's); refuses families without students."""
        try:
            return family_of(self.teacher.model)
        except ValueError as err:
            raise ValueError(f"codec.teacher={self.options.teacher}: {err}") from err

    @property
    def teacher_dim(self) -> int:
        return int(self.teacher.model.config.hidden_size)

    @cached_property
    def config(self):
        """The student's config: the teacher's at `options.size`."""
        options = self.options
        if options.latent_dim is not None and options.latent_dim > self.teacher_dim:
            raise ValueError(
                f"codec.latent_dim={options.latent_dim}: at most the teacher's {self.teacher_dim}"
            )
        if options.code_weight > 0 and not self.family.has_code_logits:
            raise ValueError(
                f"codec.code_weight={options.code_weight}: the code cross-entropy is not "
                f"implemented for {self.family.name} students; set it to 0"
            )
        return self.family.student_config(
            self.teacher.model.config, options.size, options.latent_dim
        )

    def build(self) -> nn.Module:
        model = CodecStudent(self.family, self.config, self.teacher_dim)
        self.family.init_student(self.teacher.model, model.codec, self.options.init)
        return model

    def check(self, labels) -> None:
        if "codes" not in labels.columns:
            raise ValueError("the codec student trains on codec pseudo-labels (a `codes` column)")
        ok = labels[labels["error"].isna()]
        names = set(ok["teacher"]) | {None}
        revisions = set(ok["teacher_revision"])
        revision = self.teacher.revision
        if names - {None} != {self.teacher.name} or revisions != {revision}:
            raise ValueError(
                f"labels come from {sorted(n for n in names if n)} (revisions "
                f"{sorted(revisions)}), not from codec.teacher={self.options.teacher} "
                f"({self.teacher.name}, {revision})"
            )
        if ok["latents"].isna().any() and self.options.latent_weight > 0:
            raise ValueError("labels lack latents (codec_latents=false): set codec.latent_weight=0")

    def collate(self, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
        """Codec-rate audio [B, 1, N], teacher codes [B, n_q, T], latents [B, D, T], teacher
        audio [B, N], and frame / sample masks; all zero-padded to whole frames."""
        hop = self.teacher.hop
        frames = [len(r["codes"][0]) for r in rows]
        longest = max(frames)
        batch = {
            "audio": torch.zeros(len(rows), 1, longest * hop),
            "teacher_audio": torch.zeros(len(rows), longest * hop),
            "sample_mask": torch.zeros(len(rows), longest * hop, dtype=torch.bool),
            "codes": torch.zeros(len(rows), len(rows[0]["codes"]), longest, dtype=torch.long),
            "latents": torch.zeros(len(rows), self.teacher_dim, longest),
            "frame_mask": torch.zeros(len(rows), longest, dtype=torch.bool),
        }
        for i, (row, n) in enumerate(zip(rows, frames, strict=True)):
            audio = at_codec_rate(row["audio"], self.teacher.sampling_rate, hop)[: n * hop]
            batch["audio"][i, 0, : len(audio)] = torch.from_numpy(audio)
            batch["teacher_audio"][i, : n * hop] = self._decoded(row)[: n * hop]
            batch["sample_mask"][i, : n * hop] = True
            batch["codes"][i, :, :n] = torch.as_tensor(np.stack(row["codes"]))
            if row.get("latents") is not None:
                batch["latents"][i, :, :n] = torch.as_tensor(np.stack(row["latents"]))
            batch["frame_mask"][i, :n] = True
        return batch

    def _decoded(self, row: dict) -> torch.Tensor:
        """The teacher's decoding of this row's codes (cached per id when enabled)."""
        if row["id"] in self._teacher_audio:
            return self._teacher_audio[row["id"]]
        codes = torch.as_tensor(np.stack(row["codes"]), dtype=torch.long)[None]
        audio = decode_codes(self.teacher.model, codes)[0]
        if self.options.cache_teacher_audio:
            self._teacher_audio[row["id"]] = audio
        return audio

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        out = model(batch["audio"], batch["codes"])
        mask = batch["frame_mask"]
        parts = {
            "latent_mse": losses.latent_mse(out["latents"], batch["latents"], mask),
            "spectral": losses.multi_resolution_spectral_loss(
                out["audio"], batch["teacher_audio"], batch["sample_mask"],
                self.teacher.sampling_rate,
            ),
        }  # fmt: skip
        if "logits" in out:  # families with a code cross-entropy
            parts["code_ce"] = losses.code_cross_entropy(out["logits"], batch["codes"], mask)
        o = self.options
        weights = {
            "latent_mse": o.latent_weight,
            "code_ce": o.code_weight,
            "spectral": o.reconstruction_weight,
        }
        total = sum(weights[name] * value for name, value in parts.items())
        return total, {k: float(v.detach()) for k, v in parts.items()}

    def evaluate(self, model: nn.Module, rows: Sequence[dict]) -> dict[str, float]:
        """Dev metrics against the original audio: mel distance of the student's round trip
        (the dev score), code agreement with the teacher, and with `decode_with_teacher` the
        mel distance of the student's codes decoded by the teacher's decoder."""
        module = getattr(model, "module", model).eval()
        start = time.perf_counter()
        student = CodecModel(module.codec, self.teacher.sampling_rate)
        teacher = CodecModel(self.teacher.model, self.teacher.sampling_rate)
        sums = {"dev_mel_distance": 0.0, "dev_code_agreement": 0.0}
        if self.options.decode_with_teacher:
            sums["dev_teacher_decoded_mel_distance"] = 0.0
        for row in rows:
            reference = np.stack(row["codes"])
            codes = student.encode(row["audio"], n_q=len(reference))
            original = row["audio"]
            sums["dev_mel_distance"] += quality.mel_distance(original, student.decode(codes))
            sums["dev_code_agreement"] += quality.code_agreement(codes, reference)
            if self.options.decode_with_teacher:
                through_teacher = teacher.decode(codes)
                sums["dev_teacher_decoded_mel_distance"] += quality.mel_distance(
                    original, through_teacher
                )
        out = {k: v / max(len(rows), 1) for k, v in sums.items()}
        seconds = time.perf_counter() - start
        return out | {"dev_utterances": float(len(rows)), "dev_seconds": seconds}

    def save(self, model: nn.Module, out_dir: Path) -> None:
        module = getattr(model, "module", model)
        save_student(module.codec, out_dir, teacher=self.teacher.name)

    def finish_export(self, out_dir: Path, train) -> None:
        """Nothing beyond the weights: the export is complete."""


def at_codec_rate(audio: np.ndarray, rate: int, hop: int) -> np.ndarray:
    """16 kHz audio resampled to `rate` and zero-padded to whole frames, as the teacher does."""
    audio = resample(np.asarray(audio, np.float32), SAMPLE_RATE, rate)
    frames = max(1, math.ceil(len(audio) / hop))
    return np.pad(audio, (0, frames * hop - len(audio)))


def decode_codes(codec, codes: torch.Tensor) -> torch.Tensor:
    """[B, N] audio (codec rate) of [B, n_q, T] codes, through a codec's own decoder."""
    family = family_of(codec)
    with torch.no_grad():
        return family.decode(codec, family.dequantize(codec, codes)).float()


def save_student(codec, out_dir: Path, teacher: str) -> None:
    """`save_pretrained` plus the "student" marker (and provenance) in config.json."""
    out_dir = Path(out_dir)
    codec.save_pretrained(out_dir)
    family_of(codec).feature_extractor(codec.config.sampling_rate).save_pretrained(out_dir)
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text())
    config.update(student=STUDENT_KIND, distilled_from=teacher)
    config_path.write_text(json.dumps(config, indent=2))


def without_weight_norm(codec: nn.Module) -> nn.Module:
    """`codec` with every weight-norm reparametrization folded into a plain weight.

    Weight norm is a training device: at inference it recomputes each conv's weight from
    its direction and norm on every call, a per-layer cost that weighs most on small
    models. Loaded models drop it (teachers and students alike, so speed comparisons stay
    fair); training keeps it.
    """
    from torch.nn.utils import parametrize

    for module in codec.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return codec


class CodecModel:
    """A transformers codec (EnCodec, DAC, Mimi) as a 16 kHz codec:
    encode to codes, decode back, round trip."""

    def __init__(self, codec, sampling_rate: int):
        self.model, self.sampling_rate = codec.eval(), sampling_rate
        self.family = family_of(codec)
        self.hop = self.family.hop_length(codec.config)
        self.frame_rate = sampling_rate / self.hop
        self.codebook_size = int(codec.config.codebook_size)
        self.n_q = self.family.n_codebooks(codec.config)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> CodecModel:
        from transformers import AutoModel

        codec = AutoModel.from_pretrained(str(path))
        return cls(without_weight_norm(codec), int(codec.config.sampling_rate))

    def bitrate(self, n_q: int | None = None) -> float:
        return quality.bitrate(n_q or self.n_q, self.codebook_size, self.frame_rate)

    def encode(self, audio: np.ndarray, n_q: int | None = None) -> np.ndarray:
        """[n_q, T] int32 codes of 16 kHz audio."""
        audio = at_codec_rate(audio, self.sampling_rate, self.hop)
        with torch.no_grad():
            latents = self.family.latents(self.model, torch.from_numpy(audio)[None, None])
            codes = self.family.quantize(self.model, latents, n_q or self.n_q)[0]
        return codes.to(torch.int32).numpy()

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """16 kHz float32 audio of [n_q, T] codes."""
        audio = decode_codes(self.model, torch.as_tensor(codes, dtype=torch.long)[None])[0]
        return resample(audio.numpy(), self.sampling_rate, SAMPLE_RATE)

    def roundtrip(self, audio: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(audio))


def load_student(path: str | Path) -> CodecModel:
    """An exported codec student (or any EnCodec, DAC or Mimi directory) as a CodecModel."""
    return CodecModel.from_pretrained(path)
