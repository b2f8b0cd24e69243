"""`audiodistill train-codec-teacher`: a small EnCodec trained from scratch on a corpus.

No pretrained codec can be downloaded here, so this is the embedded default codec teacher.
It is a transformers `EncodecModel` of a named size, saved with `save_pretrained`, so the
codec teacher, the codec student and `audiodistill eval` load it like any
checkpoint (facebook/encodec_24khz, descript/dac_16khz or kyutai/mimi work the same way).

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
decode).

The reconstruction loss is the multi-resolution log-STFT + log-mel L1 the codec student also
uses. Left out: EnCodec's adversarial and feature-matching losses and its bandwidth
dropout. They matter for how natural it sounds, and cost far more than a CPU budget of
minutes; without them the codec sounds muffled.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiodistill import codec_losses, codec_metrics
from audiodistill.audio import SAMPLE_RATE, load_audio
from audiodistill.errors import DataError
from audiodistill.manifest import read_manifest

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
    # output directory: model/ (the codec), checkpoint.pt, metrics.jsonl, config.yaml
    out: str = "runs/codec_teacher"
    # named size: "s" (2.7M parameters, the default teacher) or "tiny" (tests)
    size: Literal["s", "tiny"] = "s"
    # residual codebooks: each adds 0.5 kbps (10 bits at 50 frames/s)
    codebooks: int = 4
    # split trained on (None: every utterance) and the split for dev metrics (None: none)
    train_split: str | None = "train"
    dev_split: str | None = "dev"
    # optimizer steps, and a wall-clock budget that stops training early (None: no budget)
    max_steps: int = 3000
    max_minutes: float | None = 30.0
    # clips per batch, each a random crop of this many seconds
    batch_size: int = 8
    segment_seconds: float = 1.0
    lr: float = 1e-3
    # weight of the commitment loss (encoder latents to their codebook entries)
    commitment_weight: float = 1.0
    # EMA decay of the codebook statistics
    ema_decay: float = 0.99
    # an entry whose EMA usage falls below this many frames per batch is re-seeded
    dead_code_threshold: float = 0.5
    # dev mel distance and a checkpoint every N steps
    eval_every: int = 250
    # dev clips scored at each evaluation
    dev_limit: int = 16
    # torch CPU threads
    threads: int = 2
    seed: int = 0

    def __post_init__(self):
        if self.codebooks < 1 or self.batch_size < 1 or self.max_steps < 1:
            raise ValueError("codebooks, batch_size and max_steps must be at least 1")
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
    spectral = codec_losses.multi_resolution_spectral_loss(decoded, audio, mask, SAMPLE_RATE)
    loss = spectral + options.commitment_weight * commitment
    used = float(torch.unique(codes[:, 0]).numel()) / CODEBOOK_SIZE
    parts = {"spectral": spectral.item(), "commitment": commitment.item(), "usage_q0": used}
    return loss, parts


def random_crops(
    audios: Sequence[np.ndarray], count: int, samples: int, rng: np.random.Generator
) -> torch.Tensor:
    """[count, samples] crops at random clips and offsets (short clips zero-padded)."""
    batch = np.zeros((count, samples), np.float32)
    for row in range(count):
        clip = audios[rng.integers(len(audios))]
        start = rng.integers(max(len(clip) - samples, 0) + 1)
        piece = clip[start : start + samples]
        batch[row, : len(piece)] = piece
    return torch.from_numpy(batch)


@torch.no_grad()
def dev_metrics(model: nn.Module, audios: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean mel distance and SI-SDR of each clip's encode-decode through the real inference
    path (transformers' own encode and decode)."""
    from audiodistill.students.codec import CodecModel

    if not audios:
        return {}
    codec = CodecModel(model.eval(), SAMPLE_RATE)
    scores = [codec_metrics.quality(a, codec.roundtrip(a)) for a in audios]
    model.train()
    return {k: float(np.mean([s[k] for s in scores])) for k in ("mel_distance", "si_sdr")}


def _load_clips(options: CodecTeacherOptions, split: str | None, limit: int | None = None):
    utterances = read_manifest(options.manifest, split=split)[:limit]
    clips = []
    for u in utterances:
        try:
            clips.append(load_audio(u.source))
        except Exception as err:  # a broken file costs itself, not the run
            logger.warning("skipping %s: %s", u.id, err)
    return clips


def train(options: CodecTeacherOptions) -> Path:
    """Train (resuming from out/checkpoint.pt if there is one), then export out/model."""
    from transformers import EncodecFeatureExtractor, EncodecModel

    from audiodistill.config import save_config

    torch.set_num_threads(options.threads)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(options, out / "config.yaml")
    clips = _load_clips(options, options.train_split)
    if not clips:
        raise DataError(f"{options.manifest}: no readable audio in split {options.train_split!r}")
    dev = _load_clips(options, options.dev_split, options.dev_limit) if options.dev_split else []
    torch.manual_seed(options.seed)
    model = EncodecModel(teacher_config(options.size, options.codebooks)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr, betas=(0.5, 0.9))
    step = _resume(out / "checkpoint.pt", model, optimizer)
    rng = np.random.default_rng([options.seed, step])
    hop = int(np.prod(UPSAMPLING_RATIOS))
    samples = int(options.segment_seconds * SAMPLE_RATE) // hop * hop  # whole codec frames
    deadline = time.monotonic() + 60 * options.max_minutes if options.max_minutes else None
    started = time.monotonic()
    while step < options.max_steps and (deadline is None or time.monotonic() < deadline):
        audio = random_crops(clips, options.batch_size, samples, rng)
        loss, parts = step_loss(model, audio, options)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        step += 1
        if step % options.eval_every == 0:
            record = {"step": step, "loss": float(loss.detach()), **parts}
            _report(out, record | dev_metrics(model, dev))
            _save_checkpoint(out / "checkpoint.pt", model, optimizer, step)
    final = {"step": step, "final": True, "train_seconds": round(time.monotonic() - started, 1)}
    _report(out, final | dev_metrics(model, dev))
    _save_checkpoint(out / "checkpoint.pt", model, optimizer, step)
    model.eval().save_pretrained(out / "model")
    EncodecFeatureExtractor(sampling_rate=SAMPLE_RATE).save_pretrained(out / "model")
    return out / "model"


def _report(out: Path, metrics: dict) -> None:
    logger.info("codec teacher %s", json.dumps(metrics))
    with open(out / "metrics.jsonl", "a") as log:
        log.write(json.dumps(metrics) + "\n")


def _save_checkpoint(path: Path, model: nn.Module, optimizer, step: int) -> None:
    """Weights, codebook buffers, optimizer and step, written atomically."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def _resume(path: Path, model: nn.Module, optimizer) -> int:
    """The step to continue from: the checkpoint's, or 0 without one."""
    if not path.is_file():
        return 0
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    logger.info("codec teacher: resuming at step %d from %s", state["step"], path)
    return int(state["step"])
