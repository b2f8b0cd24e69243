"""CTranslate2 teacher (faster-whisper): the fastest way to run a Whisper teacher on CPU.

Decoding is greedy at temperature 0 without timestamps, VAD or temperature fallback, so the
pseudo-label is a deterministic function of the audio and matches the transformers backend
(a repetition loop is cut afterwards where that backend stops, `audiodistill.repetition`).
CTranslate2 exposes no per-step distributions, so `topk_*` stay empty: use the transformers
backend (`backend: hf`) when soft targets are needed.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from audiodistill.repetition import without_loop
from audiodistill.teachers.base import Transcript
from audiodistill.teachers.bundled import BUNDLED_NAME, bundled_ct2_dir, revision_of


def compression_ratio(text: str) -> float:
    """Bytes over zlib-compressed bytes: repetition loops compress far better than speech."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


class CT2WhisperTeacher:
    """Whisper in CTranslate2 format through faster-whisper."""

    def __init__(
        self,
        model: str | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int = 1,
        beam_size: int = 1,
        language: str | None = "en",
        workers: int = 1,
    ):
        from faster_whisper import WhisperModel

        model_dir = Path(model) if model else bundled_ct2_dir()
        if not (model_dir / "model.bin").is_file():
            raise FileNotFoundError(f"{model_dir} is not a CTranslate2 Whisper directory")
        self.name = BUNDLED_NAME if model is None else model_dir.name
        self.revision = revision_of(model_dir)
        self.beam_size = beam_size
        self.language = language
        self.model = WhisperModel(
            str(model_dir),
            device=device,
            compute_type=compute_type,
            cpu_threads=threads,
            num_workers=workers,
        )
        # ids at and above end-of-text are special (timestamps, task, language)
        self.eot = self.model.hf_tokenizer.token_to_id("<|endoftext|>")

    def transcribe(
        self, audios: Sequence[np.ndarray], prompt: str | None = None
    ) -> list[Transcript]:
        """`prompt`: earlier text that guides spelling and style (OpenAI's `prompt`)."""
        return [self._one(np.asarray(a, dtype=np.float32), prompt) for a in audios]

    def _one(self, audio: np.ndarray, prompt: str | None) -> Transcript:
        segments, _ = self.model.transcribe(
            audio,
            language=self.language if self.model.model.is_multilingual else None,
            beam_size=self.beam_size,
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            vad_filter=False,
        )
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        tokens = [t for s in segments for t in s.tokens if t < self.eot]
        kept = without_loop(tokens)
        if len(kept) < len(tokens):  # end a repetition loop as the transformers backend does
            tokens, text = kept, self.model.hf_tokenizer.decode(kept).strip()
        # faster-whisper's avg_logprob is per segment; weight by segment length
        # (no segments at all, e.g. silence or empty audio: -inf, so confidence filters drop it)
        lengths = [max(len(s.tokens), 1) for s in segments]
        weighted = sum(s.avg_logprob * n for s, n in zip(segments, lengths, strict=True))
        avg = weighted / sum(lengths) if segments else -math.inf
        no_speech = max((s.no_speech_prob for s in segments), default=1.0)
        return Transcript(
            text=text,
            token_ids=tokens,
            avg_logprob=float(avg),
            no_speech_prob=float(no_speech),
            compression_ratio=compression_ratio(text),
        )
