"""CTranslate2 teacher (faster-whisper): the fastest way to run a Whisper teacher on CPU.

Decoding is greedy at temperature 0 without timestamps, VAD or temperature fallback, so the
pseudo-label is a deterministic function of the audio and matches the transformers backend
(a repetition loop is cut afterwards where that backend stops, `audiodistill.decoding.repetition`).
CTranslate2 exposes no per-step distributions, so `topk_*` stay empty: use the transformers
backend (`backend: hf`) when soft targets are needed.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from audiodistill.decoding.repetition import without_loop
from audiodistill.decoding.whisper_alignment import words_from_path
from audiodistill.decoding.words import Word, shifted
from audiodistill.teachers.base import Transcript
from audiodistill.teachers.bundled import BUNDLED_NAME, bundled_ct2_dir, revision_of

N_FRAMES = 3000  # log-mel frames in Whisper's 30 s window


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

    def transcribe_words(
        self, audios: Sequence[np.ndarray], prompt: str | None = None
    ) -> list[list[Word]]:
        """Each clip's words (the text `transcribe` gives), timed by CTranslate2's alignment
        of the decoded tokens (`Whisper.align`: Whisper's cross-attention method over the
        model's alignment heads, audiodistill.decoding.whisper_alignment). The encoder runs again
        for it, once per 30 s window."""
        return [self._words(np.asarray(a, dtype=np.float32), prompt) for a in audios]

    def _segments(self, audio: np.ndarray, prompt: str | None) -> list:
        """faster-whisper's segments of one clip: one per 30 s window, timestamps off."""
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
        return list(segments)

    def _words(self, audio: np.ndarray, prompt: str | None) -> list[Word]:
        from faster_whisper.audio import pad_or_trim

        segments = self._segments(audio, prompt)
        kept = len(without_loop([t for s in segments for t in s.tokens if t < self.eot]))
        features = self.model.feature_extractor(audio)
        content = features.shape[-1] - 1  # the frames faster-whisper decodes
        start, words = self._start_sequence(prompt), []
        for segment in segments:
            tokens = [t for t in segment.tokens if t < self.eot][:kept]  # loops cut as `_one`
            kept -= len(tokens)
            frames = min(content - segment.seek, N_FRAMES)
            if not tokens or frames <= 0:
                continue
            window = pad_or_trim(features[:, segment.seek : segment.seek + frames])
            aligned = self.model.model.align(self.model.encode(window), start, [tokens], frames)
            path = np.array(aligned[0].alignments).T  # (token index, frame index) per step
            timed = words_from_path(tokens, self.model.hf_tokenizer.decode, *path)
            words += shifted(timed, segment.seek * self.model.feature_extractor.time_per_frame)
        return words

    def _start_sequence(self, prompt: str | None) -> list[int]:
        """The decoder prompt `transcribe` decodes after (previous text, start of
        transcript, no timestamps), built as faster-whisper builds it."""
        from faster_whisper.tokenizer import Tokenizer

        multilingual = self.model.model.is_multilingual
        tokenizer = Tokenizer(
            self.model.hf_tokenizer, multilingual, "transcribe", self.language or "en"
        )
        previous = tokenizer.encode(" " + prompt.strip()) if prompt else []
        return self.model.get_prompt(tokenizer, previous, without_timestamps=True)

    def _one(self, audio: np.ndarray, prompt: str | None) -> Transcript:
        segments = self._segments(audio, prompt)
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
