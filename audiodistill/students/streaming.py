"""The `streaming` student: a chunked encoder with a character CTC head, and its runtime.

Two encoders share everything here but their modules: the teacher's own Whisper encoder made
causal in chunks (causal_whisper.py, the default) and the small chunked Conformer defined
below, trained from scratch. Both take the same features, keep their state in the same
`StreamingState` and step the same way, so `transcribe`, `StreamingRecognizer`,
`step_streams` (the server), the ONNX export and the saved format (config.json's
"architecture") serve either.

The Conformer sees audio in chunks: every frame attends to its own chunk and `left_chunks`
chunks before it, never further right, and its convolutions are causal. So the training
path (`StreamingEncoder.forward`, all chunks at once under a chunk mask) and the streaming
path (`StreamingEncoder.step`, one chunk at a time with the left context cached) compute
the same numbers. Training draws the chunk size at random (160/320/640 ms), so one model
serves several latencies.

Positions enter attention as ALiBi biases (a fixed per-head penalty proportional to the
distance between frames): relative, parameter-free, and bounded by the left context, so
the streaming state needs no position counter beyond how many frames it has seen.

The streaming state is a fixed set of tensors (`StreamingState`) so an ONNX export can take
it as explicit inputs and outputs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiodistill.config import from_dict
from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.decoding.ctc_decoder import (
    GREEDY,
    LM_FILE,
    CtcDecoder,
    DecodingOptions,
    GreedyDecoder,
    decode,
    load_decoder,
)
from audiodistill.decoding.ngram_lm import NgramLM
from audiodistill.students.log_mel import (
    FRAMES_PER_SECOND,
    N_MELS,
    ChunkQueue,
    FeatureStreamer,
    Step,
    log_mel,
)
from audiodistill.students.tokenizer import BLANK, SYMBOLS, CharTokenizer

STUDENT_KIND = "streaming"
ARCHITECTURE = "conformer"  # this module's encoder; causal_whisper.py holds the other
# `transcribe` runs longer audio chunk by chunk: the whole-utterance path's attention bias is
# [B, H, T, T], 4 x 1000^2 floats per clip at 40 s; the streaming path's memory is constant.
MAX_WHOLE_SECONDS = 40
STREAM_PIECE_SECONDS = 10  # PCM fed to the recognizer at a time on that path
FEATURE_FRAME_MS = 1000 // FRAMES_PER_SECOND  # 10 ms per log-mel frame
WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE = "model.safetensors", "config.json", "tokenizer.json"


@dataclass(frozen=True)
class StreamingConfig:
    # log-mel bands per feature frame (features.N_MELS)
    n_mels: int = N_MELS
    # feature frames stacked into one encoder frame: 4 x 10 ms -> 40 ms encoder frames
    subsampling: int = 4
    # encoder width
    d_model: int = 144
    # Conformer blocks
    n_layers: int = 4
    # attention heads (d_model must be a multiple)
    n_heads: int = 4
    # hidden width of each feed-forward module
    ff_dim: int = 576
    # causal depthwise convolution kernel, in encoder frames (15 x 40 ms = 600 ms of past)
    conv_kernel: int = 15
    # chunks to the left each frame attends to, besides its own (8 x 320 ms = 2.56 s)
    left_chunks: int = 8
    # chunk sizes drawn at random in training, in ms (multiples of 10 ms x subsampling)
    chunk_ms_choices: tuple[int, ...] = (160, 320, 640)
    # chunk size for inference when none is given, in ms
    chunk_ms: int = 320
    # output classes of the CTC head, blank included (tokenizer.SYMBOLS)
    vocab_size: int = len(SYMBOLS)
    # dropout in feed-forward, attention and convolution modules
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if self.conv_kernel < 1 or self.left_chunks < 0 or self.subsampling < 1:
            raise ValueError("conv_kernel and subsampling must be >= 1, left_chunks >= 0")
        for ms in (*self.chunk_ms_choices, self.chunk_ms):
            if ms <= 0 or ms % self.frame_ms:
                raise ValueError(f"chunk of {ms} ms is not a multiple of {self.frame_ms} ms")

    architecture = ARCHITECTURE
    max_positions = 0  # positions are relative (ALiBi): a stream never runs out of them
    lookahead_frames = 0  # feature frames a step reads past its chunk (causal_whisper.py: 1)
    feature_pad_samples = 0  # zero samples before a stream's audio (causal_whisper.py: 200)

    @property
    def frame_ms(self) -> int:
        """Duration of one encoder frame."""
        return FEATURE_FRAME_MS * self.subsampling


def streaming_xs() -> StreamingConfig:
    """1.65M parameters: trains in minutes on a 2-core CPU."""
    return StreamingConfig(d_model=144, n_layers=4, n_heads=4, ff_dim=432, conv_kernel=15)


def streaming_s() -> StreamingConfig:
    """9.2M parameters: the default serving size (<= 10M)."""
    return StreamingConfig(d_model=256, n_layers=6, n_heads=4, ff_dim=1024, conv_kernel=15)


def frames_per_chunk(config: StreamingConfig, chunk_ms: int | None = None) -> int:
    """Feature frames (10 ms) in one chunk of `chunk_ms` (default config.chunk_ms)."""
    chunk_ms = config.chunk_ms if chunk_ms is None else chunk_ms
    if chunk_ms <= 0 or chunk_ms % config.frame_ms:
        raise ValueError(f"chunk of {chunk_ms} ms is not a multiple of {config.frame_ms} ms")
    return chunk_ms // FEATURE_FRAME_MS


def sample_chunk_frames(config: StreamingConfig, rng: random.Random) -> int:
    """A training chunk size (feature frames) drawn uniformly from config.chunk_ms_choices."""
    return frames_per_chunk(config, rng.choice(config.chunk_ms_choices))


class StreamingState(NamedTuple):
    """Everything `step` carries from one chunk to the next, for a batch of B streams.

    Sizes are fixed for a given chunk size. No subsampling leftover is needed: chunks are
    whole multiples of `subsampling` feature frames (only a stream's last chunk may end in a
    remainder, which is dropped as the whole-utterance path drops it).
    """

    keys: torch.Tensor  # [n_layers, B, n_heads, left_chunks * chunk, d_head] newest last
    values: torch.Tensor  # [n_layers, B, n_heads, left_chunks * chunk, d_head]
    conv: torch.Tensor  # [n_layers, B, d_model, conv_kernel - 1] last conv inputs
    offset: torch.Tensor  # [B] int64: encoder frames seen so far


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """[n_heads] geometric slopes 2^(-8/H), 2^(-16/H), ... as in ALiBi (Press et al., 2022)."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / n_heads) for h in range(n_heads)])


def keep_last(x: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """The last n entries along dim (x[..., -0:] would keep all of them)."""
    return x.narrow(dim, x.shape[dim] - n, n)


def chunk_mask(lengths: torch.Tensor, frames: int, chunk: int, left_chunks: int) -> torch.Tensor:
    """[B, T, T] bool, True where query t may see key s in the whole-utterance path.

    Query t may see key s when s is in t's chunk or one of `left_chunks` chunks before it,
    and s is a real frame. Every query also sees itself, so rows of padding frames are never
    empty (an all -inf row would give NaN, and NaN values leak through zero weights).
    """
    pos = torch.arange(frames, device=lengths.device)
    q_chunk, k_chunk = (pos // chunk)[:, None], (pos // chunk)[None, :]
    window = (k_chunk <= q_chunk) & (k_chunk >= q_chunk - left_chunks)  # [T, T]
    real_key = pos[None, :] < lengths[:, None]  # [B, T]
    eye = torch.eye(frames, dtype=torch.bool, device=lengths.device)
    return (window[None] & real_key[:, None, :]) | eye


def chunk_attention_bias(
    lengths: torch.Tensor, frames: int, chunk: int, left_chunks: int, slopes: torch.Tensor
) -> torch.Tensor:
    """[B, H, T, T] additive attention bias of the whole-utterance path: ALiBi distances where
    `chunk_mask` allows, -inf elsewhere."""
    allowed = chunk_mask(lengths, frames, chunk, left_chunks)
    pos = torch.arange(frames, device=lengths.device)
    distance = (pos[:, None] - pos[None, :]).abs()  # [T, T]
    bias = -slopes.to(lengths.device)[:, None, None] * distance  # [H, T, T]
    return bias[None].masked_fill(~allowed[:, None], -math.inf)  # [B, H, T, T]


def step_attention_bias(
    offset: torch.Tensor, new: int, cached: int, slopes: torch.Tensor
) -> torch.Tensor:
    """[B, H, new, cached + new] bias for one chunk: keys are the cache then the new frames.

    Cache entry j holds frame offset - cached + j; entries before frame 0 are empty.
    """
    key_pos = torch.arange(cached + new, device=offset.device)  # concat coordinates
    query_pos = cached + torch.arange(new, device=offset.device)
    distance = (query_pos[:, None] - key_pos[None, :]).abs()  # [new, cached + new]
    bias = -slopes.to(offset.device)[:, None, None] * distance  # [H, new, cached + new]
    empty = key_pos[None, :] < cached - offset[:, None].clamp(max=cached)  # [B, cached + new]
    return bias[None].masked_fill(empty[:, None, None, :], -math.inf)


class FeedForward(nn.Module):
    def __init__(self, d_model: int, ff_dim: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, ff_dim),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(ff_dim, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ChunkAttention(nn.Module):
    """Multi-head self-attention over cached keys/values plus the current frames."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        bias: torch.Tensor,
        cached_keys: torch.Tensor,
        cached_values: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, T, D], bias [B, H, T, C + T], caches [B, H, C, Dh] -> (y, keys, values).

        Returned keys/values [B, H, C + T, Dh] include the cache; the caller keeps what it needs.
        """
        b, t, d = x.shape
        qkv = self.qkv(self.norm(x)).view(b, t, 3, self.n_heads, d // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, H, T, Dh]
        keys = torch.cat([cached_keys, k], dim=2)
        values = torch.cat([cached_values, v], dim=2)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=bias, dropout_p=p)
        y = y.transpose(1, 2).reshape(b, t, d)  # [B, T, D]
        return self.drop(self.out(y)), keys, values


class CausalConvModule(nn.Module):
    """Conformer convolution module with a causal depthwise conv and LayerNorm (no BatchNorm,
    whose batch statistics would mix padding and other utterances into a frame)."""

    def __init__(self, d_model: int, kernel: int, dropout: float):
        super().__init__()
        self.kernel = kernel
        self.norm = nn.LayerNorm(d_model)
        self.expand = nn.Linear(d_model, 2 * d_model)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel, groups=d_model)
        self.conv_norm = nn.LayerNorm(d_model)
        self.project = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, D], cache [B, D, K-1] (the previous inputs of the depthwise conv)."""
        h = F.glu(self.expand(self.norm(x)), dim=-1).transpose(1, 2)  # [B, D, T]
        h = torch.cat([cache, h], dim=2)  # [B, D, K-1 + T]
        new_cache = keep_last(h, self.kernel - 1, dim=2)
        h = self.depthwise(h).transpose(1, 2)  # [B, T, D]
        h = self.project(F.silu(self.conv_norm(h)))
        return self.drop(h), new_cache


class ConformerBlock(nn.Module):
    """Macaron feed-forward halves around attention and convolution, as in Conformer."""

    def __init__(self, config: StreamingConfig):
        super().__init__()
        d, p = config.d_model, config.dropout
        self.ff1 = FeedForward(d, config.ff_dim, p)
        self.attention = ChunkAttention(d, config.n_heads, p)
        self.conv = CausalConvModule(d, config.conv_kernel, p)
        self.ff2 = FeedForward(d, config.ff_dim, p)
        self.norm = nn.LayerNorm(d)

    def forward(
        self,
        x: torch.Tensor,  # [B, T, D]
        bias: torch.Tensor,  # [B, H, T, C + T]
        cached_keys: torch.Tensor,  # [B, H, C, Dh]
        cached_values: torch.Tensor,  # [B, H, C, Dh]
        conv_cache: torch.Tensor,  # [B, D, K - 1]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = x + 0.5 * self.ff1(x)
        y, keys, values = self.attention(x, bias, cached_keys, cached_values)
        x = x + y
        y, conv_cache = self.conv(x, conv_cache)
        x = x + y
        x = self.norm(x + 0.5 * self.ff2(x))
        return x, keys, values, conv_cache


class FrameStacking(nn.Module):
    """Subsampling by stacking `s` consecutive feature frames, then a linear projection.

    Frame-local, so chunks whose length is a multiple of `s` need no carried state.
    """

    def __init__(self, config: StreamingConfig):
        super().__init__()
        self.s = config.subsampling
        self.proj = nn.Linear(config.n_mels * self.s, config.d_model)
        self.norm = nn.LayerNorm(config.d_model)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, f, m = features.shape
        t = f // self.s  # a tail shorter than s frames is dropped
        stacked = features[:, : t * self.s].reshape(b, t, self.s * m)  # [B, T, s * n_mels]
        return self.drop(self.norm(self.proj(stacked)))


class StreamingEncoder(nn.Module):
    """Chunked causal Conformer encoder with a CTC head over characters."""

    def __init__(self, config: StreamingConfig):
        super().__init__()
        self.config = config
        self.subsample = FrameStacking(config)
        self.layers = nn.ModuleList(ConformerBlock(config) for _ in range(config.n_layers))
        self.head = nn.Linear(config.d_model, config.vocab_size)
        self.register_buffer("slopes", alibi_slopes(config.n_heads), persistent=False)

    @property
    def device(self) -> torch.device:
        # from a buffer: weights may be swapped for quantized modules without a .weight tensor
        return self.slopes.device

    def _encoder_chunk(self, chunk_frames: int) -> int:
        if chunk_frames <= 0 or chunk_frames % self.config.subsampling:
            raise ValueError(
                f"chunk_frames {chunk_frames} is not a positive multiple of "
                f"subsampling {self.config.subsampling}"
            )
        return chunk_frames // self.config.subsampling

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, chunk_frames: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Whole utterances under a chunk mask (training and batch transcription).

        features [B, F, n_mels] (padded), lengths [B] real feature frames, chunk_frames: chunk
        size in feature frames (a multiple of subsampling). Returns logits [B, T, V],
        out_lengths [B] (= lengths // subsampling) and final hidden states [B, T, D], zero on
        padding frames.
        """
        chunk = self._encoder_chunk(chunk_frames)
        x = self.subsample(features)  # [B, T, D]
        out_lengths = lengths // self.config.subsampling
        b, t, d = x.shape
        bias = chunk_attention_bias(out_lengths, t, chunk, self.config.left_chunks, self.slopes)
        no_cache = x.new_zeros(b, self.config.n_heads, 0, d // self.config.n_heads)
        conv_cache = x.new_zeros(b, d, self.config.conv_kernel - 1)
        for layer in self.layers:
            x, _, _, _ = layer(x, bias, no_cache, no_cache, conv_cache)
        real = torch.arange(t, device=x.device)[None, :] < out_lengths[:, None]  # [B, T]
        x = x * real[..., None]
        return self.head(x), out_lengths, x

    def init_state(self, batch_size: int = 1, chunk_frames: int | None = None) -> StreamingState:
        """Empty state for `batch_size` streams at `chunk_frames` (default config.chunk_ms)."""
        c = self.config
        frames = frames_per_chunk(c) if chunk_frames is None else chunk_frames
        cached = c.left_chunks * self._encoder_chunk(frames)
        device = self.device
        kv_shape = (c.n_layers, batch_size, c.n_heads, cached, c.d_model // c.n_heads)
        return StreamingState(
            keys=torch.zeros(kv_shape, device=device),
            values=torch.zeros(kv_shape, device=device),
            conv=torch.zeros(c.n_layers, batch_size, c.d_model, c.conv_kernel - 1, device=device),
            offset=torch.zeros(batch_size, dtype=torch.long, device=device),
        )

    def step(
        self, features: torch.Tensor, state: StreamingState
    ) -> tuple[torch.Tensor, StreamingState]:
        """One chunk of a stream: features [B, n, n_mels] -> logits [B, n // s, V], new state.

        n must be the chunk size the state was made for, except for a stream's last chunk,
        which may be shorter (its tail under `subsampling` frames is dropped, as in forward).
        """
        x = self.subsample(features)  # [B, n', D]
        new = x.shape[1]
        if new == 0:
            return x.new_zeros(x.shape[0], 0, self.config.vocab_size), state
        cached = state.keys.shape[3]
        bias = step_attention_bias(state.offset, new, cached, self.slopes)
        keys, values, convs = [], [], []
        for i, layer in enumerate(self.layers):
            x, k, v, conv = layer(x, bias, state.keys[i], state.values[i], state.conv[i])
            keys.append(keep_last(k, cached, dim=2))
            values.append(keep_last(v, cached, dim=2))
            convs.append(conv)
        new_state = StreamingState(
            torch.stack(keys), torch.stack(values), torch.stack(convs), state.offset + new
        )
        return self.head(x), new_state


def count_parameters(model: nn.Module) -> int:
    """All parameters, trainable or not."""
    return sum(p.numel() for p in model.parameters())


def ctc_loss(
    logits: torch.Tensor,  # [B, T, V]
    out_lengths: torch.Tensor,  # [B]
    targets: torch.Tensor,  # [B, L] padded (values past target_lengths are ignored)
    target_lengths: torch.Tensor,  # [B]
) -> torch.Tensor:
    """CTC loss summed over each utterance, averaged over utterances. Utterances too short
    for their targets contribute 0 (zero_infinity) instead of an infinite loss."""
    log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # [T, B, V]
    per_utterance = F.ctc_loss(
        log_probs,
        targets,
        out_lengths,
        target_lengths,
        blank=BLANK,
        reduction="none",
        zero_infinity=True,
    )
    return per_utterance.mean()


def feature_matching_loss(
    projected: torch.Tensor,  # [B, Ts, Dt] student states projected to the teacher's width
    student_lengths: torch.Tensor,  # [B] real student frames
    teacher_hidden: torch.Tensor,  # [B, Tt, Dt] Whisper encoder states, 20 ms frames
    pool: int = 2,  # teacher frames per student frame: 40 ms / 20 ms
) -> torch.Tensor:
    """Mean cosine distance between projected student frames and average-pooled teacher frames.

    The teacher sees the whole utterance and the student only the past, so this asks the
    student to anticipate; it is a regularizer next to CTC, not a target to fit exactly.
    """
    b, tt, dt = teacher_hidden.shape
    pooled = teacher_hidden[:, : tt // pool * pool].reshape(b, tt // pool, pool, dt).mean(2)
    t = min(projected.shape[1], pooled.shape[1])
    distance = 1.0 - F.cosine_similarity(projected[:, :t], pooled[:, :t].float(), dim=-1)  # [B, t]
    real = (torch.arange(t, device=distance.device)[None, :] < student_lengths[:, None]).float()
    return (distance * real).sum() / real.sum().clamp(min=1.0)


@dataclass(frozen=True)
class SpecAugmentOptions:
    # frequency masks per clip, each over up to freq_width of the n_mels bands (0: none)
    freq_masks: int = 0
    freq_width: int = 15
    # time masks per second of audio, each over up to time_width feature frames (10 ms)
    time_masks_per_s: float = 0.0
    time_width: int = 30

    def __post_init__(self) -> None:
        if min(self.freq_masks, self.freq_width, self.time_masks_per_s, self.time_width) < 0:
            raise ValueError("spec_augment counts and widths must be >= 0")


def spec_augment(
    features: torch.Tensor,  # [B, F, n_mels] padded
    lengths: torch.Tensor,  # [B] real frames
    options: SpecAugmentOptions,
    rng: random.Random,
) -> torch.Tensor:
    """SpecAugment (Park et al., 2019) without time warping: random bands of mel channels
    and spans of frames of each clip set to that clip's mean, so the student cannot lean on
    any one band or instant; a new tensor, padding left as it was."""
    out = features.clone()
    for b, n in enumerate(lengths.tolist()):
        if n == 0:
            continue
        mean = out[b, :n].mean()
        for _ in range(options.freq_masks):
            width = rng.randint(0, options.freq_width)
            low = rng.randint(0, max(out.shape[2] - width, 0))
            out[b, :n, low : low + width] = mean
        for _ in range(round(options.time_masks_per_s * n / FRAMES_PER_SECOND)):
            width = rng.randint(0, min(options.time_width, n))
            start = rng.randint(0, n - width)
            out[b, start : start + width] = mean
    return out


def collate(
    rows: Sequence[dict], tokenizer: CharTokenizer, pad_samples: int = 0
) -> dict[str, torch.Tensor]:
    """Rows with `audio` (16 kHz float32) and `text` -> padded log-mel features and CTC targets.

    features [B, F, n_mels], feature_lengths [B], targets [B, L] (padded with blank),
    target_lengths [B]. `pad_samples` zeros go before each clip (the encoder's
    `feature_pad_samples`).
    """
    pad = np.zeros(pad_samples, dtype=np.float32)
    feats = [
        log_mel(torch.from_numpy(np.concatenate([pad, np.asarray(r["audio"], np.float32)])))
        for r in rows
    ]
    targets = [torch.tensor(tokenizer.encode(r["text"]), dtype=torch.long) for r in rows]
    return {
        "features": nn.utils.rnn.pad_sequence(feats, batch_first=True),
        "feature_lengths": torch.tensor([f.shape[0] for f in feats]),
        "targets": nn.utils.rnn.pad_sequence(targets, batch_first=True, padding_value=BLANK),
        "target_lengths": torch.tensor([len(t) for t in targets]),
    }


@torch.inference_mode()
def transcribe(
    model: StreamingEncoder,
    tokenizer: CharTokenizer,
    audios: Sequence[np.ndarray],
    chunk_ms: int | None = None,
    batch_size: int = 16,
    decoder: CtcDecoder | None = None,
) -> list[str]:
    """CTC transcripts (greedy unless `decoder` says otherwise), batched by similar length;
    audio over MAX_WHOLE_SECONDS goes through a StreamingRecognizer instead (same text,
    bounded memory)."""
    decoder = decoder or GreedyDecoder(tokenizer.symbols, BLANK)
    frames = frames_per_chunk(model.config, chunk_ms)
    device = model.device
    was_training = model.training
    model.eval()
    texts = [""] * len(audios)
    limit = whole_utterance_seconds(model.config) * SAMPLE_RATE
    order = sorted(range(len(audios)), key=lambda i: len(audios[i]))
    for i in [i for i in order if len(audios[i]) > limit]:
        texts[i] = _transcribe_streaming(model, tokenizer, audios[i], chunk_ms, decoder)
    order = [i for i in order if len(audios[i]) <= limit]
    for start in range(0, len(order), batch_size):
        ids = order[start : start + batch_size]
        rows = [{"audio": audios[i], "text": ""} for i in ids]
        batch = collate(rows, tokenizer, model.config.feature_pad_samples)
        logits, out_lengths, _ = model(
            batch["features"].to(device), batch["feature_lengths"].to(device), frames
        )
        logprobs = logits.log_softmax(-1).cpu().numpy()  # [B, T, V]
        for row, i in enumerate(ids):
            texts[i] = decode(decoder, logprobs[row, : out_lengths[row]])
    model.train(was_training)
    return texts


def whole_utterance_seconds(config) -> float:
    """Longest clip `transcribe` runs whole: MAX_WHOLE_SECONDS, or less when the encoder's
    positions end sooner (Whisper's 30 s)."""
    if not config.max_positions:
        return MAX_WHOLE_SECONDS
    return min(MAX_WHOLE_SECONDS, config.max_positions * config.frame_ms / 1000)


def chunk_queue(config, chunk_frames: int) -> ChunkQueue:
    """The step planner of a stream at `chunk_frames` on an encoder with this config."""
    return ChunkQueue(
        chunk_frames,
        config.lookahead_frames,
        config.subsampling,
        config.n_mels,
        config.max_positions,
        context=config.left_chunks * chunk_frames,
    )


def state_arrays(state: StreamingState) -> dict[str, np.ndarray]:
    """A one-stream state as plain arrays, to carry between processes (batch dim kept)."""
    return {name: t.cpu().numpy() for name, t in state._asdict().items()}


@torch.inference_mode()
def step_streams(
    model: StreamingEncoder,
    chunks: Sequence[np.ndarray],
    states: Sequence[dict[str, np.ndarray] | None],
    chunk_frames: int,
) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Advance independent streams by one chunk of features each ([n, n_mels], n =
    `chunk_frames` or a stream's shorter last chunk); None starts a stream. Returns each
    stream's CTC log-probabilities [n // subsampling, V] and new state. Chunks of one length
    run as one batch, so a server can serve many streams with one forward pass."""
    results: list = [None] * len(chunks)
    by_length: dict[int, list[int]] = {}
    for i, chunk in enumerate(chunks):
        by_length.setdefault(len(chunk), []).append(i)
    device = model.device
    for ids in by_length.values():
        parts = [_state_tensors(model, states[i], chunk_frames) for i in ids]
        batch = StreamingState(  # batch dims: 1 for the caches, 0 for the offsets
            *(torch.cat([p[k] for p in parts], dim=0 if k == 3 else 1) for k in range(4))
        )
        features = torch.from_numpy(np.stack([chunks[i] for i in ids])).float().to(device)
        logits, new = model.step(features, batch)  # logits [B, n // s, V]
        logprobs = logits.log_softmax(-1).cpu().numpy()
        for row, i in enumerate(ids):
            one = StreamingState(new.keys[:, row : row + 1], new.values[:, row : row + 1],
                                 new.conv[:, row : row + 1], new.offset[row : row + 1])
            results[i] = (logprobs[row], state_arrays(one))
    return results


def _state_tensors(model: StreamingEncoder, arrays: dict | None, chunk_frames: int):
    if arrays is None:
        return model.init_state(1, chunk_frames)
    return StreamingState(**{k: torch.from_numpy(v).to(model.device) for k, v in arrays.items()})


def _transcribe_streaming(model, tokenizer, audio: np.ndarray, chunk_ms, decoder) -> str:
    recognizer = StreamingRecognizer(model, tokenizer, chunk_ms, decoder)
    piece = STREAM_PIECE_SECONDS * SAMPLE_RATE
    for start in range(0, len(audio), piece):
        recognizer.accept(audio[start : start + piece])
    return recognizer.finalize()


class StreamingRecognizer:
    """One audio stream: PCM pieces in, partial text out after each, final text at the end.

    Puts `model` in eval mode. Chunks run as soon as enough audio has arrived; the text is
    the decoder's best over every frame so far (greedy unless `decoder` says otherwise).
    """

    def __init__(
        self,
        model: StreamingEncoder,
        tokenizer: CharTokenizer,
        chunk_ms: int | None = None,
        decoder: CtcDecoder | None = None,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.decoder = decoder or GreedyDecoder(tokenizer.symbols, BLANK)
        self.chunk_frames = frames_per_chunk(model.config, chunk_ms)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next `accept` starts a new utterance."""
        c = self.model.config
        self._features = FeatureStreamer(c.feature_pad_samples)
        self._chunks = chunk_queue(c, self.chunk_frames)
        self._state = self.model.init_state(1, self.chunk_frames)
        self._stream = self.decoder.stream()
        self._text = ""

    def accept(self, pcm: np.ndarray) -> str:
        """Feed 16 kHz float32 samples (any count); return the partial text so far."""
        for step in self._chunks.push(self._features.accept(pcm).numpy()):
            self._run(step)
        return self._text

    def finalize(self) -> str:
        """Run the last, shorter chunk; return the final text and reset for the next stream.

        Audio under one feature window or one encoder frame at the very end is not used,
        exactly as in `transcribe`, so both give the same text.
        """
        last = self._chunks.flush()
        if last is not None:
            self._run(last)
        text = self._stream.finalize()
        self.reset()
        return text

    @torch.inference_mode()
    def _run(self, step: Step) -> None:
        device = self.model.device
        if step.restart is not None:
            self._state = self.model.init_state(1, self.chunk_frames)
            for features in step.restart:
                _, self._state = self.model.step(torch.from_numpy(features)[None].to(device),
                                                 self._state)
        batch = torch.from_numpy(step.features)[None].to(device)
        logits, self._state = self.model.step(batch, self._state)
        self._text = self._stream.accept(logits[0].log_softmax(-1).cpu().numpy())


@dataclass
class StreamingStudent:
    """An exported streaming student ready for inference."""

    model: StreamingEncoder
    tokenizer: CharTokenizer
    decoder: CtcDecoder

    def transcribe(self, audios: Sequence[np.ndarray], chunk_ms: int | None = None) -> list[str]:
        return transcribe(self.model, self.tokenizer, audios, chunk_ms, decoder=self.decoder)

    def recognizer(self, chunk_ms: int | None = None) -> StreamingRecognizer:
        return StreamingRecognizer(self.model, self.tokenizer, chunk_ms, self.decoder)


def save_student(model: StreamingEncoder, tokenizer: CharTokenizer, out_dir: str | Path) -> None:
    """model.safetensors + config.json ({"student": "streaming", "config": {...},
    "decoding": {...}}) + tokenizer.json; it decodes greedily until `set_decoding`."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(weights, str(out / WEIGHTS_FILE))
    config = {
        "student": STUDENT_KIND,
        "architecture": model.config.architecture,
        "config": dataclasses.asdict(model.config),
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    tokenizer.save(out / TOKENIZER_FILE)
    set_decoding(out, GREEDY)


def set_decoding(out_dir: str | Path, decoding: DecodingOptions, lm: NgramLM | None = None):
    """Make an export decode with `decoding` (and `lm`, written as lm.arpa; None: no LM)."""
    out = Path(out_dir)
    config = json.loads((out / CONFIG_FILE).read_text())
    config["decoding"] = dataclasses.asdict(decoding)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    (out / LM_FILE).unlink(missing_ok=True)  # a file left from another model
    if lm is not None:
        lm.save_arpa(out / LM_FILE)


def build_encoder(architecture: str, config: dict) -> nn.Module:
    """An untrained encoder of either architecture from its saved config (exports written
    before the teacher-initialised encoder existed have no architecture: conformers)."""
    if architecture == ARCHITECTURE:
        return StreamingEncoder(from_dict(StreamingConfig, config))
    from audiodistill.students import causal_whisper

    if architecture == causal_whisper.ARCHITECTURE:
        return causal_whisper.CausalWhisperEncoder(
            from_dict(causal_whisper.CausalWhisperConfig, config)
        )
    raise ValueError(f"unknown streaming architecture {architecture!r}")


def load_student(path: str | Path, device: str | torch.device = "cpu") -> StreamingStudent:
    """Read what `save_student` wrote; the model comes back in eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    raw = json.loads((path / CONFIG_FILE).read_text())
    if raw.get("student") != STUDENT_KIND:
        raise ValueError(f"{path}: not a streaming student (student {raw.get('student')!r})")
    model = build_encoder(raw.get("architecture", ARCHITECTURE), raw["config"])
    model.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
    tokenizer = CharTokenizer.load(path / TOKENIZER_FILE)
    decoder = load_decoder(raw.get("decoding"), tokenizer.symbols, BLANK, path / LM_FILE)
    return StreamingStudent(model.to(device).eval(), tokenizer, decoder)
