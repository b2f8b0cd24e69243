"""The teacher's own Whisper encoder made causal in chunks: the `streaming` student's default.

A student that starts from the teacher inherits its acoustics; a from-scratch encoder cannot
learn real voices from hours of TTS (the chunked Conformer in streaming.py: 100% WER on
recorded speech). This module copies the teacher's convolutional front end and K of its N
transformer layers, unchanged, and changes only what streaming requires:

- Attention is block-causal: a frame sees its own chunk and `left_chunks` chunks before it,
  as the Conformer does. With `chunk=None` (full context) and every layer kept, the module
  computes exactly the teacher's encoder (tests/test_causal_whisper.py).
- Positions are Whisper's 1500, and stay so: the teacher's states depend on absolute
  position so much that shifting a clip by 30 s changes them almost entirely (cosine
  distance 0.95). A stream that would pass position 1500 restarts its state primed with its
  last left context (edge.features.ChunkQueue), at the cost of encoding that context again
  once every ~25 s; a frame never sees further back than its left context, so nothing it
  could see is lost. Positions are computed (`sinusoids`) rather than read from a table.
- The front end is the project's frame-local log-mel (edge/features.py) on audio preceded by
  N_FFT / 2 zero samples, which puts frame i's window centre at sample 160 i as Whisper's
  centred STFT does; halved, it is Whisper's log-mel up to Whisper's utterance-level floor
  (correlation > 0.99 on recorded speech). Whisper's own front end looks at the whole
  utterance (its floor is the utterance maximum minus 8), which a stream cannot.
- The two convolutions each look one frame ahead, so a chunk's last encoder frame needs one
  feature frame past the chunk (`LOOKAHEAD_FRAMES`, 10 ms): runtimes hand each step its
  chunk plus that frame and keep the frame for the next chunk. The step carries the last
  two feature frames before the chunk (the left context of the convolutions) in the state.

The streaming state has the fields of the Conformer's (`StreamingState`), so export, the edge
runtime and the server run either encoder through the same code: `conv` holds the cached
feature frames here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiodistill.data.audio import N_FFT
from audiodistill.students.log_mel import FRAMES_PER_SECOND, N_MELS
from audiodistill.students.streaming import (
    StreamingState,
    chunk_mask,
    frames_per_chunk,
    keep_last,
)
from audiodistill.students.tokenizer import SYMBOLS

ARCHITECTURE = "whisper"
SUBSAMPLING = 2  # Whisper's second convolution has stride 2: 20 ms encoder frames
# Feature frames a step needs past its chunk: each 3-wide convolution looks one input ahead,
# so encoder frame j reads feature frames up to 2j + 2, one past its own two.
LOOKAHEAD_FRAMES = 1
STEM_CONTEXT = 2  # feature frames before a chunk its first encoder frame reads (2j - 2, 2j - 1)
# zero samples before the audio: frame i's 400-sample window then centres on sample 160 i
FEATURE_PAD_SAMPLES = N_FFT // 2
# The project's log-mel is (log10(mel) + 4) / 2 (edge/features.py); Whisper's is
# (log10(mel) + 4) / 4: one factor, no offset, so the convolutions' zero padding stays zero.
FEATURE_SCALE = 0.5
MAX_TIMESCALE = 10_000  # of Whisper's sinusoidal positions
# Positions Whisper was trained on (its 30 s window): the student's states change beyond them
# (cosine distance 0.95 to the teacher's at an offset of 1500), so a stream restarts its
# positions before it gets there (edge.features.ChunkQueue)
MAX_POSITIONS = 1500


@dataclass(frozen=True)
class CausalWhisperConfig:
    # log-mel bands per feature frame (Whisper: 80; large-v3: 128)
    n_mels: int = N_MELS
    # encoder width (tiny: 384, base: 512, small: 768, large: 1280)
    d_model: int = 384
    # transformer layers kept from the teacher
    n_layers: int = 4
    # attention heads
    n_heads: int = 6
    # hidden width of each feed-forward block
    ff_dim: int = 1536
    # chunks to the left each frame attends to, besides its own (16 x 320 ms = 5.1 s)
    left_chunks: int = 16
    # chunk sizes drawn at random in training, in ms (multiples of 20 ms)
    chunk_ms_choices: tuple[int, ...] = (160, 320, 640)
    # chunk size for inference when none is given, in ms
    chunk_ms: int = 320
    # output classes of the CTC head, blank included (tokenizer.SYMBOLS)
    vocab_size: int = len(SYMBOLS)
    # dropout on attention weights and after each block (Whisper trains without)
    dropout: float = 0.0
    # which of the teacher's layers these are (for the model card; weights come with them)
    teacher_layers: tuple[int, ...] = (0, 1, 2, 3)

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if self.left_chunks < 0:
            raise ValueError("left_chunks must be >= 0")
        for ms in (*self.chunk_ms_choices, self.chunk_ms):
            if ms <= 0 or ms % self.frame_ms:
                raise ValueError(f"chunk of {ms} ms is not a multiple of {self.frame_ms} ms")

    architecture = ARCHITECTURE
    max_positions = MAX_POSITIONS
    subsampling = SUBSAMPLING
    lookahead_frames = LOOKAHEAD_FRAMES
    feature_pad_samples = FEATURE_PAD_SAMPLES

    @property
    def frame_ms(self) -> int:
        """Duration of one encoder frame."""
        return 1000 // FRAMES_PER_SECOND * SUBSAMPLING


def sinusoids(positions: torch.Tensor, channels: int) -> torch.Tensor:
    """[..., channels] Whisper's positional embedding at integer positions [...].

    Half sines, half cosines at timescales 1 .. MAX_TIMESCALE: the values of Whisper's
    1500-row table (stored there in float16), without storing it.
    """
    increment = math.log(MAX_TIMESCALE) / (channels // 2 - 1)
    inverse = torch.exp(-increment * torch.arange(channels // 2, device=positions.device))
    angle = positions.float()[..., None] * inverse  # [..., channels / 2]
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


class WhisperAttention(nn.Module):
    """Whisper's self-attention (its parameter names; the key projection has no bias) over
    cached keys/values plus the current frames."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(
        self,
        x: torch.Tensor,  # [B, T, D]
        mask: torch.Tensor,  # [B, 1, T, C + T] bool, True where a query may see a key
        cached_keys: torch.Tensor,  # [B, H, C, Dh]
        cached_values: torch.Tensor,  # [B, H, C, Dh]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, d = x.shape
        heads = (b, t, self.n_heads, d // self.n_heads)
        q = self.q_proj(x).view(heads).transpose(1, 2)  # [B, H, T, Dh]
        keys = torch.cat([cached_keys, self.k_proj(x).view(heads).transpose(1, 2)], dim=2)
        values = torch.cat([cached_values, self.v_proj(x).view(heads).transpose(1, 2)], dim=2)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, dropout_p=p)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d)), keys, values


class WhisperLayer(nn.Module):
    """One pre-norm Whisper encoder layer (attention, then a GELU feed-forward block)."""

    def __init__(self, config: CausalWhisperConfig):
        super().__init__()
        d = config.d_model
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.self_attn = WhisperAttention(d, config.n_heads, config.dropout)
        self.final_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, config.ff_dim)
        self.fc2 = nn.Linear(config.ff_dim, d)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x, mask, cached_keys, cached_values):
        y, keys, values = self.self_attn(self.self_attn_layer_norm(x), mask, cached_keys,
                                         cached_values)
        x = x + self.drop(y)
        x = x + self.drop(self.fc2(F.gelu(self.fc1(self.final_layer_norm(x)))))
        return x, keys, values


class CausalWhisperEncoder(nn.Module):
    """Whisper's encoder under a chunk mask, with a CTC head over characters.

    Same interface as streaming.StreamingEncoder: `forward` for whole utterances, `init_state`
    and `step` for a stream, `head` the CTC projection.
    """

    def __init__(self, config: CausalWhisperConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.conv1 = nn.Conv1d(config.n_mels, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.layers = nn.ModuleList(WhisperLayer(config) for _ in range(config.n_layers))
        self.layer_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.vocab_size)
        self.register_buffer("_device_marker", torch.zeros(0), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._device_marker.device

    def _encoder_chunk(self, chunk_frames: int) -> int:
        if chunk_frames <= 0 or chunk_frames % SUBSAMPLING:
            raise ValueError(f"chunk_frames {chunk_frames} is not a positive multiple of 2")
        return chunk_frames // SUBSAMPLING

    def _layers(self, x: torch.Tensor, mask: torch.Tensor, state: StreamingState | None):
        """The transformer layers and final norm; with a state, its caches extend each layer's
        keys/values. Returns (states [B, T, D], keys, values per layer, untrimmed)."""
        keys, values = [], []
        heads = self.config.n_heads
        empty = x.new_zeros(x.shape[0], heads, 0, x.shape[2] // heads)  # [B, H, 0, Dh]
        for i, layer in enumerate(self.layers):
            cached = (empty, empty) if state is None else (state.keys[i], state.values[i])
            x, k, v = layer(x, mask, *cached)
            keys.append(k)
            values.append(v)
        return self.layer_norm(x), keys, values

    def encode(
        self, features: torch.Tensor, lengths: torch.Tensor, chunk_frames: int | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Final states [B, T, D] (zero on padding) and out_lengths [B] of whole utterances.

        features [B, F, n_mels] the project's log-mel, padded with zeros; lengths [B] real
        frames, of which an odd last one is not used (T = lengths // 2). chunk_frames: chunk
        size in feature frames (even); None for full context, the teacher's own view.
        """
        out_lengths = lengths // SUBSAMPLING
        used = torch.arange(features.shape[1], device=features.device)[None, :]  # [1, F]
        used = used < (out_lengths * SUBSAMPLING)[:, None]  # [B, F]
        x = (features * FEATURE_SCALE * used[..., None]).transpose(1, 2)  # [B, n_mels, F]
        # zero the first convolution past each length, as an unpadded utterance's padding is
        h = F.gelu(self.conv1(x)) * used[:, None, :]  # [B, D, F]
        h = F.gelu(self.conv2(h)).transpose(1, 2)  # [B, T, D]
        t = h.shape[1]
        if t > MAX_POSITIONS:
            raise ValueError(
                f"{t} encoder frames is more than the {MAX_POSITIONS} positions of Whisper's "
                "30 s window: stream longer audio (StreamingRecognizer)"
            )
        h = h + sinusoids(torch.arange(t, device=h.device), self.config.d_model)
        chunk = t if chunk_frames is None else self._encoder_chunk(chunk_frames)
        left = 0 if chunk_frames is None else self.config.left_chunks
        mask = chunk_mask(out_lengths, t, chunk, left)[:, None]  # [B, 1, T, T]
        states, _, _ = self._layers(h, mask, None)
        real = torch.arange(t, device=h.device)[None, :] < out_lengths[:, None]  # [B, T]
        return states * real[..., None], out_lengths

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, chunk_frames: int | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Whole utterances: logits [B, T, V], out_lengths [B], final states [B, T, D]."""
        states, out_lengths = self.encode(features, lengths, chunk_frames)
        return self.head(states), out_lengths, states

    def init_state(self, batch_size: int = 1, chunk_frames: int | None = None) -> StreamingState:
        """Empty state for `batch_size` streams at `chunk_frames` (default config.chunk_ms)."""
        c = self.config
        frames = frames_per_chunk(c) if chunk_frames is None else chunk_frames
        cached = c.left_chunks * self._encoder_chunk(frames)
        kv_shape = (c.n_layers, batch_size, c.n_heads, cached, c.d_model // c.n_heads)
        device = self.device
        return StreamingState(
            keys=torch.zeros(kv_shape, device=device),
            values=torch.zeros(kv_shape, device=device),
            conv=torch.zeros(1, batch_size, STEM_CONTEXT, c.n_mels, device=device),
            offset=torch.zeros(batch_size, dtype=torch.long, device=device),
        )

    def step(
        self, features: torch.Tensor, state: StreamingState
    ) -> tuple[torch.Tensor, StreamingState]:
        """One chunk: features [B, n + 1, n_mels] (the chunk's n frames, n even, then one
        lookahead frame; a stream's last step passes zeros as the lookahead, the padding
        the whole-utterance convolution sees) -> logits [B, n / 2, V] and the new state."""
        states, new_state = self.step_states(features, state)
        return self.head(states), new_state

    def step_states(
        self, features: torch.Tensor, state: StreamingState
    ) -> tuple[torch.Tensor, StreamingState]:
        """`step` without the CTC head: final states [B, n / 2, D] and the new state (what a
        decoder reading the encoder, students/whisper_causal.py, needs)."""
        frames = torch.cat([state.conv[0], features], dim=1)  # [B, 2 + n + 1, n_mels]
        x = frames.transpose(1, 2) * FEATURE_SCALE  # [B, n_mels, 2 + n + 1]
        h = F.gelu(F.conv1d(x, self.conv1.weight, self.conv1.bias))  # [B, D, n + 1]
        # h[..., 0] is the convolution output just before the chunk: at a stream's start
        # there is none, and the whole-utterance path pads with zero there
        started = (state.offset > 0).to(h.dtype)[:, None, None]  # [B, 1, 1]
        h = torch.cat([h[..., :1] * started, h[..., 1:]], dim=2)
        h = F.gelu(F.conv1d(h, self.conv2.weight, self.conv2.bias, stride=2))  # [B, D, n / 2]
        h = h.transpose(1, 2)  # [B, n / 2, D]
        new = h.shape[1]
        h = h + sinusoids(state.offset[:, None] + torch.arange(new, device=h.device), h.shape[2])
        cached = state.keys.shape[3]
        mask = step_mask(state.offset, new, cached)[:, None]  # [B, 1, new, cached + new]
        states, keys, values = self._layers(h, mask, state)
        new_state = StreamingState(
            keys=torch.stack([keep_last(k, cached, dim=2) for k in keys]),
            values=torch.stack([keep_last(v, cached, dim=2) for v in values]),
            conv=frames[None, :, -1 - STEM_CONTEXT : -1],  # the chunk's last two frames
            offset=state.offset + new,
        )
        return states, new_state


def step_mask(offset: torch.Tensor, new: int, cached: int) -> torch.Tensor:
    """[B, new, cached + new] bool: one chunk's queries see the whole chunk and the cache,
    except cache entries from before the stream started."""
    key_pos = torch.arange(cached + new, device=offset.device)  # cache, then the chunk
    empty = key_pos[None, :] < cached - offset[:, None].clamp(max=cached)  # [B, cached + new]
    return (~empty)[:, None, :].expand(-1, new, -1)


def kept_layers(total: int, keep: int | None) -> list[int]:
    """The teacher layers a student keeps: all, or `keep` maximally spaced, the first and last
    included (as whisper-distil keeps decoder layers)."""
    from audiodistill.students.whisper_distil import kept_layer_ids

    return list(range(total)) if keep is None else kept_layer_ids(total, keep)


def from_teacher(
    teacher_dir: str | Path,
    layers: int | None = None,
    left_chunks: int = 16,
    chunk_ms_choices: tuple[int, ...] = (160, 320, 640),
    chunk_ms: int = 320,
    vocab_size: int = len(SYMBOLS),
    dropout: float = 0.0,
) -> CausalWhisperEncoder:
    """A student holding the teacher's encoder (`layers` of its layers; None: all) and a new
    CTC head. The teacher is a transformers Whisper directory."""
    from safetensors.torch import load_file
    from transformers import WhisperConfig

    teacher = WhisperConfig.from_pretrained(teacher_dir)
    if teacher.num_mel_bins != N_MELS:
        raise ValueError(
            f"{teacher_dir}: a teacher with {teacher.num_mel_bins} mel bands (large-v3 has 128); "
            f"the streaming front end computes {N_MELS} (edge/features.py)"
        )
    ids = kept_layers(teacher.encoder_layers, layers)
    config = CausalWhisperConfig(
        n_mels=teacher.num_mel_bins,
        d_model=teacher.d_model,
        n_layers=len(ids),
        n_heads=teacher.encoder_attention_heads,
        ff_dim=teacher.encoder_ffn_dim,
        left_chunks=left_chunks,
        chunk_ms_choices=tuple(chunk_ms_choices),
        chunk_ms=chunk_ms,
        vocab_size=vocab_size,
        dropout=dropout,
        teacher_layers=tuple(ids),
    )
    student = CausalWhisperEncoder(config)
    weights = teacher_encoder_weights(load_file(str(Path(teacher_dir) / "model.safetensors")), ids)
    missing, unexpected = student.load_state_dict(weights, strict=False)
    if unexpected or set(missing) != {"head.weight", "head.bias"}:
        raise RuntimeError(f"from_teacher: missing {missing}, unexpected {unexpected}")
    return student


def teacher_encoder_weights(state: dict[str, torch.Tensor], ids: list[int]) -> dict:
    """The encoder's weights from a transformers Whisper state dict, renamed for this module:
    layer ids[i] becomes layer i; the 1500-row position table is left out (`sinusoids`)."""
    prefix, weights = "model.encoder.", {}
    for name, value in state.items():
        if not name.startswith(prefix) or name.endswith("embed_positions.weight"):
            continue
        name = name[len(prefix) :]
        if name.startswith("layers."):
            index, rest = name[len("layers.") :].split(".", 1)
            if int(index) not in ids:
                continue
            name = f"layers.{ids.index(int(index))}.{rest}"
        weights[name] = value.float()
    return weights
