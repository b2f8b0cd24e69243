"""The `streaming` student as a StudentTask: CTC on the characters of the pseudo-label text.

The encoder is the teacher's own made causal in chunks (`encoder: whisper`, the default:
built from the teacher's weights, which then learn at `encoder_lr` x the head's rate) or a
Conformer from scratch (`encoder: conformer`).

The tokenizer is the fixed English character set of tokenizer.py (blank, space, a-z,
apostrophe), not one learned from the labels: every Ray worker, and every export, then holds
the identical vocabulary without anything being passed around. `check` runs on the driver
before any worker starts and rejects labels whose letters that set cannot spell.

The loss is CTC on the pseudo-label text, plus, with `feature_matching` > 0, the cosine
distance between the student's final states and the teacher's encoder states for the same
audio (streaming.feature_matching_loss): for the whisper encoder, its own starting point
with every teacher layer and full context on the same features; for the Conformer, the
teacher's Whisper encoder on its own features, reached through a linear projection trained
beside the student and not exported. The pseudo-label shards do not store encoder states (a
few hundred KB per utterance), so each worker computes them on the batch as it trains. The
teacher's text also reaches the export a second way: a character n-gram fitted on it (and on
an English word list, decoding/lexicon.py) scores the export's beam search
(decoding/ctc_decoder.py).
"""

from __future__ import annotations

import dataclasses
import random
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from audiodistill.decoding.ctc_decoder import DecodingOptions, fit_char_lm
from audiodistill.decoding.lexicon import lexicon_texts
from audiodistill.students import causal_whisper
from audiodistill.students.streaming import (
    STUDENT_KIND,
    SpecAugmentOptions,
    StreamingConfig,
    StreamingEncoder,
    collate,
    ctc_loss,
    feature_matching_loss,
    sample_chunk_frames,
    save_student,
    set_decoding,
    spec_augment,
    streaming_s,
    streaming_xs,
    transcribe,
)
from audiodistill.students.tokenizer import CharTokenizer

SIZES = {"xs": streaming_xs, "s": streaming_s}  # named model builders
# labels may hold a few letters outside a-z (a foreign name); above this share of all their
# letters they are in another script or language and the character set cannot learn them
MAX_UNCOVERED_LETTERS = 0.01


@dataclass(frozen=True)
class StreamingOptions:
    # "whisper": the teacher's own encoder made causal in chunks (causal_whisper.py), which
    # inherits the teacher's acoustics; "conformer": a chunked Conformer from scratch, which
    # learns only the voices it trains on (100% WER on recorded speech after the main job)
    encoder: Literal["whisper", "conformer"] = "whisper"
    # conformer size: "xs" (1.65M parameters, minutes on CPU) or "s" (9.2M)
    size: Literal["xs", "s"] = "xs"
    # whisper: teacher encoder layers kept, maximally spaced (null: all; 4 of 32 for a
    # large-v3 teacher is the same recipe at tiny's cost)
    encoder_layers: int | None = None
    # whisper: chunks of left context each frame attends to besides its own (16 x 320 ms =
    # 5.1 s); the conformer sizes fix their own (8)
    left_chunks: int = 16
    # whisper: learning rate of the weights copied from the teacher, as a fraction of
    # train.lr (the new CTC head learns at train.lr): slow enough to keep what they know
    encoder_lr: float = 0.1
    # whisper: teacher layers kept fixed, from the bottom, with the convolutional front end
    # when > 0 (0: everything trains; encoder_layers or more: only the head)
    frozen_layers: int = 0
    # chunk sizes drawn at random per training batch (ms; multiples of 40 for the conformer,
    # 20 for whisper): one model serves every latency among them
    chunk_ms: tuple[int, ...] = (160, 320, 640)
    # chunk size for dev WER and the export's default inference chunk (ms)
    eval_chunk_ms: int = 320
    # conformer: dropout in feed-forward, attention and convolution modules; whisper:
    # on attention weights and block outputs
    dropout: float = 0.1
    # how the export decodes: prefix beam search scored by a character n-gram fitted on the
    # training text ("greedy": the best path, no LM; dev WER during training is always greedy)
    decoding: DecodingOptions = DecodingOptions()
    # order of that character n-gram (8: about a word and a half of context); 0: no LM
    lm_order: int = 8
    # English words beside the training text in that n-gram (decoding/lexicon.py: the N most
    # frequent words of the wordfreq list), so the beam spells words the transcripts never held; 0:
    # the training text only
    lm_lexicon_words: int = 0
    # weight of frame-level matching to the teacher's encoder states next to CTC (cosine
    # distance; the conformer's states go through a trained projection, not exported); for
    # whisper the teacher sees the whole utterance, the student only its chunks; 0: CTC only,
    # and no teacher is loaded
    feature_matching: float = 0.0
    # SpecAugment on the training features (off by default): masks of mel bands and of
    # time spans, the standard regulariser of CTC fine-tuning on little data
    spec_augment: SpecAugmentOptions = SpecAugmentOptions()
    # the Whisper teacher (transformers dir) the whisper encoder starts from and whose
    # encoder states are matched; None: the bundled tiny.en
    teacher: str | None = None

    def __post_init__(self) -> None:
        if self.lm_order < 0 or self.feature_matching < 0 or self.lm_lexicon_words < 0:
            raise ValueError("lm_order, lm_lexicon_words and feature_matching must be >= 0")
        if min(self.frozen_layers, self.left_chunks, self.encoder_lr) < 0:
            raise ValueError("frozen_layers, left_chunks and encoder_lr must be >= 0")


def model_config(options: StreamingOptions, vocab_size: int) -> StreamingConfig:
    """The conformer config of `options.size` with the options' chunks, dropout and
    vocabulary."""
    return dataclasses.replace(
        SIZES[options.size](),
        chunk_ms_choices=tuple(options.chunk_ms),
        chunk_ms=options.eval_chunk_ms,
        dropout=options.dropout,
        vocab_size=vocab_size,
    )


def uncovered_letters(texts: Iterable[str], tokenizer: CharTokenizer) -> tuple[Counter, int]:
    """(letters the tokenizer cannot spell with their counts, all letters) over `texts`.

    Letters are compared as spoken_form sees them: lower-cased, accents stripped (NFKD).
    """
    symbols = set(tokenizer.symbols)
    missing, letters = Counter(), 0
    for text in texts:
        plain = unicodedata.normalize("NFKD", text.lower())
        for char in plain:
            if char.isalpha():
                letters += 1
                if char not in symbols:
                    missing[char] += 1
    return missing, letters


class FeatureMatched(nn.Module):
    """The student plus the projection into the teacher's encoder space that feature
    matching trains with it; only `encoder` is exported."""

    def __init__(self, encoder: StreamingEncoder, teacher_dim: int):
        super().__init__()
        self.encoder = encoder
        self.proj = nn.Linear(encoder.config.d_model, teacher_dim)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, chunk_frames: int):
        """StreamingEncoder.forward with the states projected: [B, T, teacher_dim]."""
        logits, out_lengths, hidden = self.encoder(features, lengths, chunk_frames)
        return logits, out_lengths, self.proj(hidden)


def student_encoder(model: nn.Module) -> StreamingEncoder:
    """The exportable encoder inside a (DDP-wrapped, feature-matched) training model."""
    module = getattr(model, "module", model)
    return module.encoder if isinstance(module, FeatureMatched) else module


class StreamingTask:
    """Everything the training loop needs to build, train, run and export this student."""

    kind = STUDENT_KIND

    def __init__(self, options: StreamingOptions = StreamingOptions()):
        self.options = options
        self.tokenizer = CharTokenizer()
        self.whisper = options.encoder == causal_whisper.ARCHITECTURE
        # the chunk fields validate the chunk sizes here; a whisper encoder's widths come
        # from the teacher when it is built
        self.config = (
            causal_whisper.CausalWhisperConfig(
                left_chunks=options.left_chunks,
                chunk_ms_choices=tuple(options.chunk_ms),
                chunk_ms=options.eval_chunk_ms,
                vocab_size=self.tokenizer.vocab_size,
                dropout=options.dropout,
            )
            if self.whisper
            else model_config(options, self.tokenizer.vocab_size)
        )
        self._teacher: nn.Module | None = None  # loaded on first use, when matching
        self._teacher_dir = options.teacher  # None until the bundled one is first needed
        self._processor = None

    def build(self) -> nn.Module:
        if self.whisper:
            return self._build_whisper()
        encoder = StreamingEncoder(self.config)
        if not self.options.feature_matching:
            return encoder
        from transformers import WhisperConfig

        return FeatureMatched(encoder, WhisperConfig.from_pretrained(self.teacher_dir()).d_model)

    def _build_whisper(self) -> nn.Module:
        o, c = self.options, self.config
        student = causal_whisper.from_teacher(
            self.teacher_dir(), o.encoder_layers, c.left_chunks, c.chunk_ms_choices,
            c.chunk_ms, c.vocab_size, c.dropout,
        )  # fmt: skip
        if o.frozen_layers:
            frozen = [student.conv1, student.conv2, *student.layers[: o.frozen_layers]]
            if o.frozen_layers >= len(student.layers):
                frozen.append(student.layer_norm)
            for module in frozen:
                module.requires_grad_(False)
        return student

    def lr_scale(self, name: str) -> float:
        """Learning rate of parameter `name` as a fraction of train.lr: the teacher's weights
        in a whisper encoder learn at `encoder_lr`, its new head at the full rate."""
        if self.whisper and not name.startswith("head."):
            return self.options.encoder_lr
        return 1.0

    def teacher_dir(self) -> str:
        if self._teacher_dir is None:  # resolved once: finding the bundled one reads files
            from audiodistill.teachers.convert import ensure_bundled_hf

            self._teacher_dir = str(ensure_bundled_hf())
        return self._teacher_dir

    def check(self, labels) -> None:
        if "text" not in labels.columns:
            raise ValueError("the streaming student trains on a `text` column; the labels lack it")
        texts = labels["text"].fillna("").astype(str)
        missing, letters = uncovered_letters(texts, self.tokenizer)
        share = sum(missing.values()) / max(letters, 1)
        if share > MAX_UNCOVERED_LETTERS:
            common = "".join(c for c, _ in missing.most_common(10))
            raise ValueError(
                f"{share:.0%} of the label letters ({common!r} ...) are outside the streaming "
                f"student's character set {''.join(self.tokenizer.symbols)!r}: it cannot "
                "learn these labels"
            )
        if not any(self.tokenizer.encode(t) for t in texts):
            raise ValueError("every label text is empty after spoken-form normalization")

    def collate(self, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
        # from torch's generator, which the loop seeds per (seed, rank, step): reproducible,
        # and a resumed run does not replay the sizes it has already drawn
        rng = random.Random(int(torch.randint(0, 2**62, ())))
        batch = collate(rows, self.tokenizer, self.config.feature_pad_samples)
        batch["chunk_frames"] = torch.tensor(sample_chunk_frames(self.config, rng))
        if self.options.spec_augment != SpecAugmentOptions():
            if self.options.feature_matching and self.whisper:
                batch["clean_features"] = batch["features"]  # what the teacher hears
            batch["features"] = spec_augment(
                batch["features"], batch["feature_lengths"], self.options.spec_augment, rng
            )
        if self.options.feature_matching and not self.whisper:
            batch["teacher_features"] = self._teacher_features([r["audio"] for r in rows])
        return batch

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        chunk = int(batch["chunk_frames"])
        logits, out_lengths, hidden = model(batch["features"], batch["feature_lengths"], chunk)
        ctc = ctc_loss(logits, out_lengths, batch["targets"], batch["target_lengths"])
        if not self.options.feature_matching:
            return ctc, {"ctc": float(ctc.detach())}
        pool = 1 if self.whisper else 2  # teacher frames (20 ms) per student frame
        matching = feature_matching_loss(hidden, out_lengths, self._teacher_states(batch), pool)
        total = ctc + self.options.feature_matching * matching
        return total, {"ctc": float(ctc.detach()), "feature_matching": float(matching.detach())}

    def _teacher_features(self, audios: Sequence[np.ndarray]) -> torch.Tensor:
        """[B, n_mels, F] the teacher's log-mel of the batch, the longest item's length."""
        from audiodistill.students.whisper_distil import log_mel

        if self._processor is None:
            from transformers import WhisperFeatureExtractor

            self._processor = WhisperFeatureExtractor.from_pretrained(self.teacher_dir())
        return log_mel(self._processor, audios, tail_seconds=0.0)

    @torch.no_grad()
    def _teacher_states(self, batch: dict) -> torch.Tensor:
        """[B, T, D] the teacher's encoder states (20 ms frames) for the batch, from the
        whole utterance. A whisper student's teacher is its own starting point with every
        teacher layer and full context, on the student's features."""
        features = batch["features"]
        if self.whisper:
            if self._teacher is None:
                teacher = causal_whisper.from_teacher(self.teacher_dir())
                self._teacher = teacher.eval().requires_grad_(False).to(features.device)
            clean = batch.get("clean_features", features)
            return self._teacher.encode(clean, batch["feature_lengths"], None)[0]
        from audiodistill.students.whisper_distil import encode, frozen_teacher

        features = batch["teacher_features"]
        if self._teacher is None:
            self._teacher = frozen_teacher(self.teacher_dir(), features.device)
        return encode(self._teacher, features.to(self._teacher.dtype))

    def transcribe(self, model: nn.Module, audios: Sequence[np.ndarray]) -> list[str]:
        encoder = student_encoder(model)
        return transcribe(encoder, self.tokenizer, audios, chunk_ms=self.options.eval_chunk_ms)

    def save(self, model: nn.Module, out_dir: Path) -> None:
        save_student(student_encoder(model), self.tokenizer, out_dir)

    def finish_export(self, out_dir: Path, train: pd.DataFrame) -> None:
        """Fit the character LM on the training rows' text (and the English lexicon, with
        lm_lexicon_words); the export decodes with it."""
        decoding = self.options.decoding
        lm = None
        if decoding.method == "beam" and self.options.lm_order > 0:
            texts = [self.tokenizer.decode(self.tokenizer.encode(t)) for t in train["text"]]
            texts += lexicon_texts(self.options.lm_lexicon_words)
            lm = fit_char_lm(texts, self.options.lm_order)
        set_decoding(out_dir, decoding, lm)
