"""`audiodistill train-codec-teacher`: a small EnCodec trained from scratch on a corpus.

No pretrained codec can be downloaded here, so this is the embedded default codec teacher.
It is a transformers `EncodecModel` of a named size, saved with `save_pretrained`, so the
codec teacher, the codec student and `audiodistill eval` load it like any
checkpoint (facebook/encodec_24khz, descript/dac_16khz or kyutai/mimi work the same way).

It trains through the project's one training loop (`training.loop.fit`, in this process with
checkpoints under `<out>/checkpoints/`) as a `CodecTeacherTask`: batches of random crops of
the corpus clips, the loop's AdamW with warm-up and cosine decay, a dev evaluation and a
checkpoint every `eval_every` steps, and the best checkpoint by dev mel distance exported.
A rerun with the same `out` resumes from the latest checkpoint.

The quantizer is trained as EnCodec trains it: each residual stage's codebook is a
k-means-EMA buffer, a commitment loss pulls the encoder's latents towards their entries, and
gradients pass the quantizer straight through. One change: entries nobody picked are
re-seeded from the current batch *before* it is assigned, not after. From scratch on CPU, a
small encoder's latents move further per step than they spread across frames, so entries
re-seeded from the previous batch are already stale and one EMA entry wins every frame
(measured on the tiny size: 1 of 1024 codes in use within 3 steps, with decay 0.99 and
with 0.8). The cost: frames that match an entry re-seeded from themselves are quantized
without error in training, so the decoder sees less quantization noise there than at
inference; the dev metrics always use the inference path (transformers' own encode and
decode). The codebooks are buffers, updated inside the loss under no_grad; checkpoints
carry them with the weights.

The reconstruction loss is the multi-resolution log-STFT + log-mel L1 the codec student also
uses. Left out: EnCodec's adversarial and feature-matching losses and its bandwidth
dropout. They matter for how natural it sounds, and cost far more than a CPU budget of
minutes; without them the codec sounds muffled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiodistill.codec import losses, quality
from audiodistill.data.audio import SAMPLE_RATE, load_audio
from audiodistill.data.manifest import read_manifest
from audiodistill.errors import DataError
from audiodistill.training.distill_options import TrainOptions
from audiodistill.training.local_run import LocalContext
from audiodistill.training.loop import export_checkpoint, fit

logger = logging.getLogger(__name__)

# 16 kHz like the corpus; strides 2*4*5*8 = 320 samples per frame, so 50 frames/s
UPSAMPLING_RATIOS = (8, 5, 4, 2)
# 1024 entries = 10 bits per code, the unit EncodecConfig's bandwidths assume
CODEBOOK_SIZE = 1024
GRAD_CLIP = 10.0  # gradient norm clip: early steps of a from-scratch codec spike


@dataclass(frozen=True)
class CodecTeacherOptions:
    # corpus to train on (any manifest audiodistill reads)
    manifest: str = "data/synth/manifest.jsonl"
    # output directory: model/ (the codec), checkpoints/ (the latest and the best by dev mel
    # distance; a rerun resumes from the latest), metrics.jsonl, config.yaml
    out: str = "runs/codec_teacher"
    # named size: "s" (2.7M parameters, the default teacher) or "tiny" (tests)
    size: Literal["s", "tiny"] = "s"
    # residual codebooks: each adds 0.5 kbps (10 bits at 50 frames/s)
    codebooks: int = 4
    # split trained on (None: every utterance)
    train_split: str | None = "train"
    # split for dev metrics (None: none; then the latest checkpoint is exported)
    dev_split: str | None = "dev"
    # optimizer steps in all; a resumed run continues up to this, and the learning rate
    # decays towards it
    max_steps: int = 3000
    # wall-clock budget of one invocation in minutes (None: none); checked at each
    # checkpoint, so a run stops up to eval_every steps past it; a rerun continues
    max_minutes: float | None = 30.0
    # clips per batch
    batch_size: int = 8
    # each clip of a batch is a random crop of this many seconds (short clips zero-padded)
    segment_seconds: float = 1.0
    # peak learning rate (the training loop's AdamW, here without weight decay)
    lr: float = 1e-3
    # steps of linear warm-up from 0 to lr; a cosine decay to lr / 10 at max_steps follows
    warmup_steps: int = 100
    # weight of the commitment loss (encoder latents to their codebook entries)
    commitment_weight: float = 1.0
    # EMA decay of the codebook statistics
    ema_decay: float = 0.99
    # an entry whose EMA usage falls below this many frames per batch is re-seeded
    dead_code_threshold: float = 0.5
    # steps between dev evaluations, each with a checkpoint (the last step has both too)
    eval_every: int = 250
    # dev clips scored at each evaluation
    dev_limit: int = 16
    # torch CPU threads
    threads: int = 2
    # seeds the weights, the batch order and the crops
    seed: int = 0

    def __post_init__(self):
        if min(self.codebooks, self.batch_size, self.max_steps, self.eval_every) < 1:
            raise ValueError("codebooks, batch_size, max_steps and eval_every must be at least 1")
        if self.segment_seconds * SAMPLE_RATE < 4 * np.prod(UPSAMPLING_RATIOS):
            raise ValueError("segment_seconds: need at least 4 codec frames (0.08 s)")


# literal sizes: first conv channels (doubled at each downsampling), latent size, LSTM layers
SIZES = {
    "s": {"num_filters": 16, "hidden_size": 64, "num_lstm_layers": 1},
    "tiny": {"num_filters": 2, "hidden_size": 16, "num_lstm_layers": 1},
}


def teacher_config(size: str, codebooks: int):
    """The EnCodec config of a named size: 16 kHz, 50 frames/s, `codebooks` x 10 bits."""
    from transformers import EncodecConfig

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    values = SIZES[size]
    return EncodecConfig(
        sampling_rate=SAMPLE_RATE,
        upsampling_ratios=list(UPSAMPLING_RATIOS),
        codebook_size=CODEBOOK_SIZE,
        codebook_dim=values["hidden_size"],
        target_bandwidths=[codebooks * 0.5],  # kbps: 10 bits x 50 frames/s per codebook
        **values,
    )


def quantize(
    quantizer: nn.Module, latents: torch.Tensor, n_q: int, decay: float | None, dead: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(quantized [B, D, T] straight-through, codes [B, n_q, T], commitment loss).

    Residual stages in order, each quantizing what the earlier ones left. With `decay`
    (training) entries used less than `dead` times per batch (EMA) are first re-seeded from
    the batch, then every entry moves by EMA towards the mean of the latents it was chosen
    for. (EnCodec's codebooks start all zero: the first training batch seeds them all.)
    """
    frames = latents.transpose(1, 2).reshape(-1, latents.shape[1])  # [B*T, D]
    residual, total, codes = frames.detach(), torch.zeros_like(frames), []
    for layer in quantizer.layers[:n_q]:
        book = layer.codebook
        if decay is not None:
            # before assigning: a re-seeded entry is a frame of this very batch, so it wins
            # at least that frame even while the encoder's latents still move fast
            _seed_entries(book, residual, book.cluster_size < dead, dead)
        ids = book.quantize(residual)  # [B*T]
        if decay is not None:
            _ema_update(book, residual, ids, decay)
        chosen = book.embed[ids]
        total = total + chosen
        residual = residual - chosen
        codes.append(ids)
    commitment = F.mse_loss(frames, total.detach())
    quantized = frames + (total - frames).detach()  # straight through to the encoder
    batch, dim, steps = latents.shape
    quantized = quantized.reshape(batch, steps, dim).transpose(1, 2)
    return quantized, torch.stack(codes).reshape(n_q, batch, steps).transpose(0, 1), commitment


@torch.no_grad()
def _ema_update(book, residual: torch.Tensor, ids: torch.Tensor, decay: float):
    onehot = F.one_hot(ids, len(book.embed)).type(residual.dtype)  # [N, K]
    book.cluster_size.mul_(decay).add_(onehot.sum(0), alpha=1 - decay)
    book.embed_avg.mul_(decay).add_(onehot.t() @ residual, alpha=1 - decay)
    # Laplace smoothing keeps rarely used entries from dividing by ~0
    n = book.cluster_size.sum()
    smoothed = (book.cluster_size + 1e-5) / (n + len(book.embed) * 1e-5) * n
    book.embed.copy_(book.embed_avg / smoothed[:, None])


@torch.no_grad()
def _seed_entries(book, residual: torch.Tensor, which: torch.Tensor, usage: float) -> None:
    """Set the `which` entries to random frames of this batch's residual, with EMA usage
    `usage`: the dead threshold itself, so an entry no frame picks is re-seeded next batch."""
    count = int(which.sum())
    if count == 0:
        return
    picks = torch.randint(len(residual), (count,), device=residual.device)
    book.embed[which] = residual[picks]
    book.embed_avg[which] = residual[picks] * usage
    book.cluster_size[which] = usage


def step_loss(model: nn.Module, audio: torch.Tensor, options: CodecTeacherOptions):
    """(loss, parts) of one training batch of [B, N] audio; updates the codebooks."""
    latents = model.encoder(audio[:, None])  # [B, D, T]
    n_q = model.config.num_quantizers
    quantized, codes, commitment = quantize(
        model.quantizer, latents, n_q, options.ema_decay, options.dead_code_threshold
    )
    decoded = model.decoder(quantized)[:, 0, : audio.shape[1]]  # [B, N]
    mask = torch.ones_like(audio, dtype=torch.bool)
    spectral = losses.multi_resolution_spectral_loss(decoded, audio, mask, SAMPLE_RATE)
    loss = spectral + options.commitment_weight * commitment
    used = float(torch.unique(codes[:, 0]).numel()) / CODEBOOK_SIZE
    parts = {"spectral": spectral.item(), "commitment": commitment.item(), "usage_q0": used}
    return loss, parts


def random_crops(
    audios: Sequence[np.ndarray], samples: int, rng: np.random.Generator
) -> torch.Tensor:
    """[len(audios), samples]: one crop of each clip at a random offset (short clips
    zero-padded)."""
    batch = np.zeros((len(audios), samples), np.float32)
    for row, clip in enumerate(audios):
        start = rng.integers(max(len(clip) - samples, 0) + 1)
        piece = clip[start : start + samples]
        batch[row, : len(piece)] = piece
    return torch.from_numpy(batch)


class CodecTeacherTask:
    """The codec teacher as the training loop's StudentTask: crops in, reconstruction and
    commitment losses out, the dev mel distance of its round trip as the dev score."""

    kind = "codec-teacher"  # never written: the export is a plain transformers EnCodec
    dev_metric = "dev_mel_distance"  # the dev score: lower is better

    def __init__(self, options: CodecTeacherOptions):
        self.options = options
        hop = int(np.prod(UPSAMPLING_RATIOS))
        self.samples = int(options.segment_seconds * SAMPLE_RATE) // hop * hop  # whole frames

    def build(self) -> nn.Module:
        from transformers import EncodecModel

        return EncodecModel(teacher_config(self.options.size, self.options.codebooks)).train()

    def check(self, labels) -> None:
        """Nothing to check: the teacher trains on audio alone."""

    def collate(self, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
        # offsets from torch's generator, which the loop seeds per (seed, rank, step): a
        # resumed run draws fresh crops, reproducibly
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
        return {"audio": random_crops([r["audio"] for r in rows], self.samples, rng)}

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        return step_loss(model, batch["audio"], self.options)

    def evaluate(self, model: nn.Module, rows: Sequence[dict]) -> dict[str, float]:
        """Mean mel distance and SI-SDR of each dev clip's encode-decode through the real
        inference path (transformers' own encode and decode)."""
        from audiodistill.students.codec_student import CodecModel

        codec = CodecModel(model.eval(), SAMPLE_RATE)
        scores = [quality.quality(r["audio"], codec.roundtrip(r["audio"])) for r in rows]
        keys = ("mel_distance", "si_sdr")
        return {f"dev_{k}": float(np.mean([s[k] for s in scores])) for k in keys}

    def save(self, model: nn.Module, out_dir: Path) -> None:
        """`save_pretrained` with its feature extractor: what every codec loader reads."""
        from transformers import EncodecFeatureExtractor

        model.save_pretrained(out_dir)
        EncodecFeatureExtractor(sampling_rate=SAMPLE_RATE).save_pretrained(out_dir)

    def finish_export(self, out_dir: Path, train) -> None:
        """Nothing beyond the weights: the export is complete."""


def clip_rows(manifest: str, split: str | None, limit: int | None = None) -> list[dict]:
    """Rows (id, audio source, duration) of the split's utterances whose audio decodes.

    Each clip is decoded once here so that a broken file costs itself, not the run: the
    loop decodes it again whenever a batch draws it.
    """
    rows = []
    for u in read_manifest(manifest, split=split)[:limit]:
        try:
            samples = len(load_audio(u.source))
        except Exception as err:  # a broken file costs itself, not the run
            logger.warning("skipping %s: %s", u.id, err)
            continue
        rows.append({"id": u.id, "audio": u.source, "duration": samples / SAMPLE_RATE})
    return rows


def train_options(options: CodecTeacherOptions, evaluate: bool) -> TrainOptions:
    """The training loop's options for a run: one process, fixed-size batches, Adam without
    weight decay as EnCodec trains, a dev evaluation (when `evaluate`) and a checkpoint
    every eval_every steps."""
    return TrainOptions(
        cpus_per_worker=options.threads,
        max_steps=options.max_steps,
        batch_size=options.batch_size,
        lr=options.lr,
        warmup_steps=options.warmup_steps,
        weight_decay=0.0,
        grad_clip=GRAD_CLIP,
        eval_every=options.eval_every if evaluate else 0,
        checkpoint_every=options.eval_every,
        seed=options.seed,
    )


class BudgetSpent(Exception):
    """A run's max_minutes passed; raised right after a checkpoint was written."""


class BudgetedContext(LocalContext):
    """A LocalContext that ends the run at the first checkpoint past a monotonic deadline."""

    def __init__(self, directory: Path, keep: int, deadline: float | None):
        super().__init__(directory, keep)
        self.deadline = deadline

    def report(self, record: dict[str, Any], save: Callable[[Path], None]) -> None:
        super().report(record, save)
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise BudgetSpent(record["step"])


def train(options: CodecTeacherOptions) -> Path:
    """Train (resuming from out/checkpoints/ if a run is there) up to max_steps or the
    max_minutes budget, then export the best checkpoint by dev mel distance (without dev
    clips, the latest) to out/model; returns that directory."""
    from audiodistill.config import save_config

    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(options, out / "config.yaml")
    rows = clip_rows(options.manifest, options.train_split)
    if not rows:
        raise DataError(f"{options.manifest}: no readable audio in split {options.train_split!r}")
    dev = []
    if options.dev_split:
        dev = clip_rows(options.manifest, options.dev_split, options.dev_limit)
        if not dev:
            logger.warning("codec teacher: no readable dev audio in split %r", options.dev_split)
    task = CodecTeacherTask(options)
    loop_options = train_options(options, evaluate=bool(dev))
    deadline = time.monotonic() + 60 * options.max_minutes if options.max_minutes else None
    context = BudgetedContext(out, loop_options.keep_checkpoints, deadline)
    try:
        fit(task, loop_options, lambda: rows, dev, context, out / "metrics.jsonl")
    except BudgetSpent as stop:
        logger.info("codec teacher: max_minutes spent at step %s; a rerun continues", stop)
    export_checkpoint(task, context.best(), out / "model")
    return out / "model"
