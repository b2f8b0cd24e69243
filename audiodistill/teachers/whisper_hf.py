"""transformers teacher: any Hugging Face Whisper, batched, CPU or GPU, with soft targets.

Decoding matches the CTranslate2 teacher (greedy, temperature 0, no timestamps, the same
token suppression) and adds what distillation needs: per-token top-k log-probs. Audio longer
than Whisper's 30 s window is cut into consecutive 30 s windows, each decoded on its own and
the texts joined; without timestamps there is no finer alignment to cut at.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from audiodistill.teachers.base import Transcript
from audiodistill.teachers.bundled import BUNDLED_NAME, revision_of
from audiodistill.teachers.whisper_ct2 import compression_ratio

DTYPES = ("float32", "float16", "bfloat16")


class HFWhisperTeacher:
    """WhisperForConditionalGeneration from a local directory or a hub id."""

    def __init__(
        self,
        model: str | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 8,
        top_k: int = 8,
        threads: int = 1,
        language: str | None = "en",
    ):
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        from audiodistill.students.whisper_distil import prompt_ids

        if dtype not in DTYPES:
            raise ValueError(f"teacher.dtype must be one of {DTYPES}, got {dtype!r}")
        if device == "cpu":
            torch.set_num_threads(threads)
        if model is None:
            from audiodistill.teachers.convert import ensure_bundled_hf

            source, self.name = str(ensure_bundled_hf()), BUNDLED_NAME
        else:
            source, self.name = model, Path(model).name if Path(model).exists() else model
        self.revision = revision_of(source) if Path(source).exists() else "hub"
        self.device, self.batch_size, self.top_k = device, batch_size, top_k
        self.processor = WhisperProcessor.from_pretrained(source)
        self.model = WhisperForConditionalGeneration.from_pretrained(
            source, dtype=getattr(torch, dtype)
        ).to(device).eval()
        generation = self.model.generation_config
        self.prompt = prompt_ids(generation, language)
        self.eot = generation.eos_token_id
        self.no_speech_id = self.processor.tokenizer.convert_tokens_to_ids(
            "<|nospeech|>" if generation.is_multilingual else "<|nocaptions|>"
        )

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[Transcript]:
        from audiodistill.students.whisper_distil import windows

        pieces, owners = [], []
        for i, audio in enumerate(audios):
            for window in windows(np.asarray(audio, dtype=np.float32)):
                pieces.append(window)
                owners.append(i)
        decoded = []
        for start in range(0, len(pieces), self.batch_size):
            decoded.extend(self._decode(pieces[start : start + self.batch_size]))
        return [
            self._transcript([d for d, o in zip(decoded, owners, strict=True) if o == i])
            for i in range(len(audios))
        ]

    def _decode(self, batch: Sequence[np.ndarray]):
        import torch

        from audiodistill.whisper_decode import greedy_decode

        features = self.processor.feature_extractor(
            list(batch), sampling_rate=16_000, return_tensors="pt"
        ).input_features.to(self.device, self.model.dtype)  # [B, n_mels, 3000]
        generation = self.model.generation_config
        with torch.inference_mode():
            encoded = self.model.model.encoder(features).last_hidden_state
        return greedy_decode(
            self.model,
            encoded,
            prompt=self.prompt,
            eot=self.eot,
            max_new_tokens=self.model.config.max_target_positions // 2,
            top_k=self.top_k,
            suppress=generation.suppress_tokens or (),
            suppress_begin=generation.begin_suppress_tokens or (),
            no_speech_id=self.no_speech_id,
        )

    def _transcript(self, parts) -> Transcript:
        """One utterance's windows joined: tokens and soft targets concatenated."""
        tokens = [t for p in parts for t in p.token_ids]
        text = " ".join(
            self.processor.tokenizer.decode(p.token_ids, skip_special_tokens=True).strip()
            for p in parts
        ).strip()
        steps = sum(p.steps for p in parts)
        # one end-of-text row per window; keep only the last so rows = tokens + 1
        topk_ids = [row for p in parts[:-1] for row in p.topk_ids[: len(p.token_ids)]]
        topk_lp = [row for p in parts[:-1] for row in p.topk_logprobs[: len(p.token_ids)]]
        return Transcript(
            text=text,
            token_ids=tokens,
            avg_logprob=sum(p.sum_logprob for p in parts) / max(steps, 1),
            no_speech_prob=parts[0].no_speech_prob,
            compression_ratio=compression_ratio(text),
            topk_ids=topk_ids + parts[-1].topk_ids,
            topk_logprobs=topk_lp + parts[-1].topk_logprobs,
        )
