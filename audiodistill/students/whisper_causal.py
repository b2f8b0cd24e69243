"""The `whisper-causal` student: the teacher's encoder made causal in chunks, read by the
teacher's own decoder.

The streaming CTC student (`streaming`, encoder `whisper`) must learn spelling and words
from its training audio, and with 39 minutes of recordings it agrees with the teacher to
only ~57% WER on held-out recordings. The teacher's decoder already knows English. Untrained,
the teacher's encoder under a 320 ms chunk mask (causal_whisper.py) read by the teacher's
full decoder agreed with the teacher to 35.5% WER on the 21 dev recordings
(docs/lab_notebook.md), where the CTC student reached 74% after 28 minutes of training. This
student keeps both halves and trains the decoder to read chunked states: cross-entropy on
the pseudo-labels plus KL to the teacher's whole distribution, computed online by the
teacher's decoder reading the same encoder with full context (the teacher's own states,
while the encoder is the teacher's).

Streaming: a frame's encoder state depends only on audio up to the end of its chunk, so the
encoder runs chunk by chunk as audio arrives (edge/causal.py `CausalRecognizer`, over this
module's `TorchEngine` or the ONNX export) and nothing it has
computed changes later. At the end of audio one chunk and one decoder pass remain. The
decoder reads a 30 s window: the states so far, then a short silent tail, then the encoder's
states for silence (whisper_distil.py's window fill), as in training.

What it costs: the decoder is the teacher's, so transcribing is not faster than the teacher
with the window fill; its use is streaming (bounded encoder work per chunk, a final right
after the audio ends), not speed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.decoding.whisper_greedy import (
    accepted_draft,
    decoder_words,
    generation_greedy,
    previous_text_ids,
    prompt_ids,
)
from audiodistill.decoding.words import Word
from audiodistill.edge.causal import (
    PAD_SAMPLES,
    SILENCE_SAMPLES,
    CausalRecognizer,
    piece_samples,
    stream_clips,
)
from audiodistill.students import causal_whisper
from audiodistill.students.causal_whisper import CausalWhisperEncoder
from audiodistill.students.log_mel import FRAMES_PER_SECOND, FeatureStreamer, log_mel
from audiodistill.students.streaming import chunk_queue
from audiodistill.students.whisper_distil import (
    WhisperTeacherFiles,
    check_tokenizer,
    frozen_teacher,
    pad_targets,
    shrink_decoder,
)
from audiodistill.training.kd_losses import WhisperDistillationLoss

STUDENT_KIND = "whisper-causal"
MS_PER_FEATURE_FRAME = 1000 // FRAMES_PER_SECOND


@dataclass(frozen=True)
class WhisperCausalOptions:
    # teacher in transformers format (local dir); None: the bundled tiny.en
    teacher: str | None = None
    # decoder layers kept from the teacher, maximally spaced (all by default: the decoder's
    # knowledge of English is what this student is for)
    decoder_layers: int = 4
    # chunk sizes drawn at random per training batch (ms, multiples of 20)
    chunk_ms: tuple[int, ...] = (320,)
    # chunk size for dev scores and the export's inference (ms)
    eval_chunk_ms: int = 320
    # chunks of left context each encoder frame attends to besides its own (16 x 320 ms)
    left_chunks: int = 16
    # which decoder weights train: "cross_attention" (the blocks that read the encoder and
    # their layer norms; the rest, the decoder's language knowledge, stays fixed) or "all".
    # On 21 dev recordings after 100 steps: 17.5% agreement at lr 3e-4 against 18.5% for
    # all weights at lr 3e-5 (docs/lab_notebook.md)
    decoder_trains: Literal["all", "cross_attention"] = "cross_attention"
    # the encoder's learning rate as a fraction of train.lr (0: the teacher's encoder stays
    # fixed, with no encoder backward); trained gently it meets the decoder halfway: 16.0%
    # dev agreement after 50 steps against 18.0% with it fixed
    encoder_lr: float = 0.1
    # seconds of silence encoded after the audio before the decoder reads it; a stream
    # encodes them after its last sample, so they add to the time to the final text
    tail_seconds: float = 1.0
    # weight of cross-entropy on the pseudo-label tokens
    alpha_ce: float = 1.0
    # weight of KL to the teacher's whole distribution (online; 0: cross-entropy only)
    beta_kd: float = 1.0
    # distillation temperature
    temperature: float = 2.0
    # language token for multilingual teachers (English-only ones have none)
    language: str = "en"
    # longest transcript decoded per window
    max_new_tokens: int = 128

    def __post_init__(self) -> None:
        for ms in (*self.chunk_ms, self.eval_chunk_ms):
            if ms <= 0 or ms % (MS_PER_FEATURE_FRAME * causal_whisper.SUBSAMPLING):
                raise ValueError(f"whisper_causal: a chunk of {ms} ms is not a multiple of 20 ms")
        if min(self.left_chunks, self.encoder_lr, self.tail_seconds) < 0:
            raise ValueError("whisper_causal: left_chunks, encoder_lr, tail_seconds must be >= 0")
        if not 0 <= self.tail_seconds <= 5:
            raise ValueError("whisper_causal.tail_seconds must be in 0..5")


def chunk_frames(chunk_ms: int) -> int:
    """10 ms feature frames per chunk."""
    return chunk_ms // MS_PER_FEATURE_FRAME


class CausalWhisper(nn.Module):
    """The student: a chunk-causal encoder and a transformers Whisper whose decoder reads it.

    That Whisper's own encoder never runs; `export_weights` copies the causal encoder into
    it, so a saved student is a plain transformers Whisper directory.
    """

    def __init__(self, encoder: CausalWhisperEncoder, whisper: nn.Module):
        super().__init__()
        self.encoder, self.whisper = encoder, whisper
        encoder.head.requires_grad_(False)  # the encoder's CTC head is not used here
        whisper.model.encoder.requires_grad_(False)

    def window(
        self, features: torch.Tensor, lengths: torch.Tensor, chunk: int | None,
        silence: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        """[B, 1500, D] what the decoder reads: each utterance's states (chunk feature
        frames; None: full context), then `silence` [1, 1500, D] from its end on."""
        states, out_lengths = self.encoder.encode(features, lengths, chunk)  # [B, T, D]
        t = states.shape[1]
        speech = torch.arange(t, device=states.device)[None, :] < out_lengths[:, None]
        head = torch.where(speech[..., None], states, silence[:, :t].to(states))
        return torch.cat([head, silence[:, t:].to(states).expand(len(states), -1, -1)], dim=1)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, chunk: int,
        silence: torch.Tensor, decoder_input_ids: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        """Teacher-forced logits [B, L, V] (one call, so DDP sees the whole step)."""
        window = self.window(features, lengths, chunk, silence)
        return self.whisper(encoder_outputs=(window,), decoder_input_ids=decoder_input_ids).logits

    @torch.no_grad()
    def silence(self, chunk: int | None) -> torch.Tensor:
        """[1, 1500, D] the encoder's states for a silent window."""
        features = log_mel(torch.zeros(PAD_SAMPLES + SILENCE_SAMPLES, device=self.encoder.device))
        lengths = torch.tensor([len(features)], device=features.device)
        return self.encoder.encode(features[None], lengths, chunk)[0]

    def export_weights(self) -> None:
        """Copy the causal encoder into the Whisper's encoder (same names, no CTC head)."""
        weights = {
            f"model.encoder.{name}": value
            for name, value in self.encoder.state_dict().items()
            if not name.startswith("head.")
        }
        _, unexpected = self.whisper.load_state_dict(weights, strict=False)
        if unexpected:
            raise RuntimeError(f"export_weights: unexpected {unexpected}")


def features_of(audios: Sequence[np.ndarray], tail_seconds: float, device=None):
    """features [B, F, n_mels] (zero-padded) and lengths [B] of each clip with the front
    end's leading zeros and a silent tail."""
    pad = np.zeros(PAD_SAMPLES, np.float32)
    tail = np.zeros(int(tail_seconds * SAMPLE_RATE), np.float32)
    feats = [
        log_mel(torch.from_numpy(np.concatenate([pad, np.asarray(a, np.float32), tail])))
        for a in audios
    ]
    lengths = torch.tensor([len(f) for f in feats], device=device)
    return nn.utils.rnn.pad_sequence(feats, batch_first=True).to(device), lengths


def build(teacher_dir: str, options: WhisperCausalOptions) -> CausalWhisper:
    """The untrained student: the teacher's encoder under a chunk mask and K of its decoder
    layers."""
    from transformers import WhisperForConditionalGeneration

    teacher = WhisperForConditionalGeneration.from_pretrained(teacher_dir)
    whisper = shrink_decoder(teacher, options.decoder_layers)
    encoder = causal_whisper.from_teacher(
        teacher_dir, None, options.left_chunks, tuple(options.chunk_ms), options.eval_chunk_ms
    )
    if not options.encoder_lr:
        encoder.requires_grad_(False)
    if options.decoder_trains == "cross_attention":
        whisper.requires_grad_(False)
        for layer in whisper.model.decoder.layers:
            layer.encoder_attn.requires_grad_(True)
            layer.encoder_attn_layer_norm.requires_grad_(True)
    return CausalWhisper(encoder, whisper)


class WhisperCausalTask(WhisperTeacherFiles):
    """Everything the training loop needs to build, train, run and export this student."""

    kind = STUDENT_KIND

    def __init__(self, options: WhisperCausalOptions = WhisperCausalOptions()):
        super().__init__(options.teacher)
        self.options = options
        self._teacher: nn.Module | None = None  # frozen full teacher, for online targets
        self._teacher_encoder: CausalWhisperEncoder | None = None  # when the student's trains
        self._teacher_silence: torch.Tensor | None = None  # that encoder's, computed once
        self._silences: dict[int | None, torch.Tensor] = {}  # chunk -> a frozen encoder's

    def build(self) -> nn.Module:
        return build(self.teacher_dir(), self.options)

    def check(self, labels) -> None:
        check_tokenizer(labels, self.processor.tokenizer)

    def lr_scale(self, name: str) -> float:
        """The encoder (the teacher's weights) learns at `encoder_lr`, the decoder at train.lr."""
        return self.options.encoder_lr if name.startswith("encoder.") else 1.0

    def collate(self, rows: Sequence[dict]) -> dict:
        # drawn from torch's generator, which the loop seeds per (seed, rank, step)
        rng = random.Random(int(torch.randint(0, 2**62, ())))
        features, lengths = features_of([r["audio"] for r in rows], self.options.tail_seconds)
        generation = self.generation_config
        inputs, labels, _, _ = pad_targets(
            rows, prompt_ids(generation, self.options.language), generation.eos_token_id, None
        )
        chunk = chunk_frames(rng.choice(self.options.chunk_ms))
        return {
            "features": features,
            "feature_lengths": lengths,
            "decoder_input_ids": inputs,
            "labels": labels,
            "chunk_frames": torch.tensor(chunk),
        }

    def _silence(self, module: CausalWhisper, chunk: int | None) -> torch.Tensor:
        """The student's window fill: computed once per chunk size while its encoder is
        fixed, every step while it trains."""
        if self.options.encoder_lr:
            return module.silence(chunk)
        if chunk not in self._silences:
            self._silences[chunk] = module.silence(chunk)
        return self._silences[chunk]

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        module = getattr(model, "module", model)
        chunk = int(batch["chunk_frames"])
        features, lengths = batch["features"], batch["feature_lengths"]
        logits = model(features, lengths, chunk, self._silence(module, chunk),
                       batch["decoder_input_ids"])  # fmt: skip
        o = self.options
        criterion = WhisperDistillationLoss(o.alpha_ce, o.beta_kd, o.temperature)
        teacher_logits = None
        if o.beta_kd > 0:
            teacher_logits = self._teacher_logits(module, features, lengths,
                                                  batch["decoder_input_ids"])  # fmt: skip
        parts = criterion(logits, batch["labels"], teacher_logits=teacher_logits)
        return parts["loss"], {k: float(v.detach()) for k, v in parts.items()}

    @torch.no_grad()
    def _teacher_logits(self, module: CausalWhisper, features, lengths, decoder_input_ids):
        """[B, L, V] the whole teacher's logits, its decoder reading the full-context encoder
        (the student's own while it is fixed, else a fixed copy of the teacher's)."""
        device = features.device
        if self._teacher is None:
            self._teacher = frozen_teacher(self.teacher_dir(), device)
            if self.options.encoder_lr:
                encoder = causal_whisper.from_teacher(self.teacher_dir())
                self._teacher_encoder = encoder.eval().requires_grad_(False).to(device)
        if self._teacher_encoder is None:
            reader, silence = module, self._silence(module, None)
        else:  # a fixed copy: its silence, a full-context pass over 30 s, never changes
            reader = CausalWhisper(self._teacher_encoder, self._teacher)
            if self._teacher_silence is None:
                self._teacher_silence = reader.silence(None)
            silence = self._teacher_silence
        window = reader.window(features, lengths, None, silence)
        return self._teacher(encoder_outputs=(window,), decoder_input_ids=decoder_input_ids).logits

    def transcribe(self, model: nn.Module, audios: Sequence[np.ndarray]) -> list[str]:
        module = getattr(model, "module", model)
        chunk = chunk_frames(self.options.eval_chunk_ms)
        return transcribe(module, self.processor.tokenizer, audios, chunk,
                          self._silence(module, chunk), self.options)  # fmt: skip

    def save(self, model: nn.Module, out_dir: Path) -> None:
        module = getattr(model, "module", model)
        module.export_weights()
        whisper, o = module.whisper, self.options
        whisper.config.student = STUDENT_KIND
        whisper.config.causal = {
            "chunk_ms": o.eval_chunk_ms,
            "left_chunks": o.left_chunks,
            "tail_seconds": o.tail_seconds,
        }
        whisper.save_pretrained(out_dir)
        self.processor.save_pretrained(out_dir)

    def finish_export(self, out_dir: Path, train) -> None:
        """Nothing beyond the weights: the export is complete."""


def _decode_from_draft(
    model: CausalWhisper, window: torch.Tensor, prompt: list[int], max_new_tokens: int,
    draft: list[int],
) -> list[int]:  # fmt: skip
    """Greedy token ids of one window [1, 1500, D], decoded on from the leading tokens of
    `draft` greedy would choose itself (`accepted_draft`)."""
    generation = model.whisper.generation_config
    suppress = generation.suppress_tokens or ()
    begin = generation.begin_suppress_tokens or ()
    kept = list(draft[: accepted_draft(model.whisper, window, prompt, draft, suppress, begin)])
    rest = generation_greedy(
        model.whisper, window, prompt + kept, max_new_tokens - len(kept), first=not kept
    )
    return kept + rest[0].token_ids


@torch.inference_mode()
def transcribe(
    model: CausalWhisper,
    tokenizer,
    audios: Sequence[np.ndarray],
    chunk: int,
    silence: torch.Tensor,
    options: WhisperCausalOptions,
    prompt: str | None = None,
    batch_size: int = 8,
) -> list[str]:
    """Greedy transcripts of whole clips, the encoder under the chunk mask a stream has;
    audio longer than one window is cut into pieces (`piece_samples`) decoded apart."""
    was_training = model.training
    model.eval()
    step = piece_samples(options.tail_seconds)
    pieces = [
        (i, start, np.asarray(a, np.float32)[start : start + step])
        for i, a in enumerate(audios)
        for start in range(0, max(len(a), 1), step)
    ]
    pieces.sort(key=lambda p: len(p[2]))  # similar lengths together: little padding
    previous = previous_text_ids(tokenizer, prompt, model.whisper.config.max_target_positions)
    tokens = prompt_ids(model.whisper.generation_config, options.language, previous)
    texts: list[list[tuple[int, str]]] = [[] for _ in audios]
    for b in range(0, len(pieces), batch_size):
        batch = pieces[b : b + batch_size]
        device = model.encoder.device
        features, lengths = features_of([p[2] for p in batch], options.tail_seconds, device)
        window = model.window(features, lengths, chunk, silence)
        decoded = generation_greedy(model.whisper, window, tokens, options.max_new_tokens)
        for (i, start, _), d in zip(batch, decoded, strict=True):
            texts[i].append((start, tokenizer.decode(d.token_ids, skip_special_tokens=True)))
    model.train(was_training)
    return [" ".join(t.strip() for _, t in sorted(parts)).strip() for parts in texts]


class TorchEngine:
    """The torch student as a `CausalEngine` (edge/causal.py) for `CausalRecognizer`."""

    def __init__(self, student: WhisperCausalModel, chunk_ms: int):
        self.student = student
        self.chunk = chunk_frames(chunk_ms)
        self.silence = student.model.silence(self.chunk)  # [1, 1500, D]
        self.tail_seconds = student.options.tail_seconds

    def feature_streamer(self) -> FeatureStreamer:
        return FeatureStreamer(PAD_SAMPLES)

    def chunk_queue(self):
        return chunk_queue(self.student.model.encoder.config, self.chunk)

    def init_state(self):
        return self.student.model.encoder.init_state(1, self.chunk)

    @torch.inference_mode()
    def step(self, features: np.ndarray, state) -> tuple[np.ndarray, object]:
        encoder = self.student.model.encoder
        batch = torch.from_numpy(features)[None].to(encoder.device)  # [1, n + 1, n_mels]
        states, state = encoder.step_states(batch, state)  # [1, n / 2, D]
        return states[0].cpu().numpy(), state

    @torch.inference_mode()
    def decode(self, states: np.ndarray, draft: list[int]) -> list[int]:
        model, options = self.student.model, self.student.options
        prompt = prompt_ids(model.whisper.generation_config, options.language)
        return _decode_from_draft(model, self._window(states), prompt, options.max_new_tokens,
                                  draft)  # fmt: skip

    def text(self, ids: list[int]) -> str:
        return self.student.tokenizer.decode(ids, skip_special_tokens=True).strip()

    @torch.inference_mode()
    def words(self, states: np.ndarray, ids: list[int], positions: int) -> list[Word]:
        whisper, tokenizer = self.student.model.whisper, self.student.tokenizer
        prompt = prompt_ids(whisper.generation_config, self.student.options.language)
        window = self._window(states)
        return decoder_words(whisper, window, prompt, ids, positions, tokenizer.decode)

    def _window(self, states: np.ndarray) -> torch.Tensor:
        """A piece's states [T, D] filled to the window with the silence's: [1, 1500, D]."""
        head = torch.from_numpy(states)[None].to(self.silence)  # [1, T, D]
        return torch.cat([head, self.silence[:, head.shape[1] :]], dim=1)


class WhisperCausalModel:
    """An exported whisper-causal student, loaded for inference (`audiodistill.load_model`)."""

    kind = STUDENT_KIND

    def __init__(self, path: str | Path):
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        config = json.loads((Path(path) / "config.json").read_text())
        causal = config["causal"]
        self.options = WhisperCausalOptions(
            eval_chunk_ms=causal["chunk_ms"],
            chunk_ms=(causal["chunk_ms"],),
            left_chunks=causal["left_chunks"],
            tail_seconds=causal["tail_seconds"],
        )
        whisper = WhisperForConditionalGeneration.from_pretrained(path)
        encoder = causal_whisper.from_teacher(
            path, None, causal["left_chunks"], (causal["chunk_ms"],), causal["chunk_ms"]
        )
        self.model = CausalWhisper(encoder, whisper).eval()
        self.tokenizer = WhisperProcessor.from_pretrained(path).tokenizer
        self.chunk_ms = causal["chunk_ms"]
        self._silence = self.model.silence(chunk_frames(self.chunk_ms))

    @property
    def parameter_count(self) -> int:
        """Weights inference uses: the causal encoder and the decoder (the Whisper's own
        encoder copy and the unused CTC head are not run)."""
        encoder = [p for n, p in self.model.encoder.named_parameters() if not n.startswith("head.")]
        decoder = list(self.model.whisper.model.decoder.parameters())
        return sum(p.numel() for p in encoder + decoder)

    def transcribe(self, audios: Sequence[np.ndarray], prompt: str | None = None) -> list[str]:
        chunk = chunk_frames(self.chunk_ms)
        return transcribe(self.model, self.tokenizer, audios, chunk, self._silence,
                          self.options, prompt)  # fmt: skip

    def transcribe_words(
        self, audios: Sequence[np.ndarray], prompt: str | None = None
    ) -> list[list[Word]]:
        """Each clip's words, streamed as a live stream is (no prompt: a stream has none),
        timed from the cross-attention of the teacher's alignment heads."""
        recognizer = CausalRecognizer(TorchEngine(self, self.chunk_ms), 0, words=True)
        return [words for _, words in stream_clips(recognizer, list(audios))]

    def recognizer(self, chunk_ms: int | None = None, words: bool = False) -> CausalRecognizer:
        return CausalRecognizer(TorchEngine(self, chunk_ms or self.chunk_ms), words=words)
