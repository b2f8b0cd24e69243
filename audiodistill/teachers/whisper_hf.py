"""transformers teacher: any Hugging Face Whisper, batched, CPU or GPU, with soft targets.

Decoding matches the CTranslate2 teacher token for token (greedy, temperature 0, no
timestamps, faster-whisper's suppression, the same log-mel windows) and adds what
distillation needs: per-token top-k log-probs.

Long audio: the log-mel of the whole utterance is cut into consecutive 30 s windows, each
decoded on its own and the results joined. Without timestamps there is no finer point to
cut at; faster-whisper does the same when timestamps are off.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.decoding.whisper_alignment import SECONDS_PER_POSITION
from audiodistill.decoding.whisper_greedy import (
    Decoded,
    decoder_words,
    greedy_decode,
    previous_text_ids,
    prompt_ids,
)
from audiodistill.decoding.words import Word, shifted
from audiodistill.teachers.base import Transcript
from audiodistill.teachers.bundled import BUNDLED_NAME, revision_of
from audiodistill.teachers.whisper_ct2 import compression_ratio

DTYPES = ("float32", "float16", "bfloat16")
FILL_TAIL_SECONDS = 1.0  # silence after each window's audio when filling (as whisper-distil)


def log_mel_windows(extractor, audio: np.ndarray) -> list[np.ndarray]:
    """[n_mels, 3000] log-mel windows of one utterance, the last padded with zeros.

    The log-mel is computed on the audio alone and padded afterwards (zeros in the
    normalised log-mel domain), as OpenAI's transcribe() and faster-whisper do. Padding the
    audio with 30 s of silence first (the feature extractor's default) feeds the encoder a
    different tail: greedy transcripts then matched the CTranslate2 teacher's on 23 of the
    40 synthetic test utterances, against 40 of 40 this way (same WER either way).
    """
    # the STFT needs at least one full frame
    audio = np.pad(audio, (0, max(0, extractor.n_fft - len(audio))))
    mel = extractor(
        audio, sampling_rate=SAMPLE_RATE, padding="longest", truncation=False, return_tensors="np"
    ).input_features[0]  # [n_mels, len(audio) // hop]
    frames = extractor.nb_max_frames  # 3000: 30 s at 100 frames per second
    out = []
    for start in range(0, mel.shape[1], frames):
        window = mel[:, start : start + frames]
        out.append(np.pad(window, ((0, 0), (0, frames - window.shape[1]))))
    return out


def _no_speech_id(tokenizer) -> int | None:
    """<|nospeech|> in newer Whisper vocabularies, <|nocaptions|> in the first ones."""
    vocab = tokenizer.get_vocab()
    return next((vocab[t] for t in ("<|nospeech|>", "<|nocaptions|>") if t in vocab), None)


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or Path(model).exists()


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
        fill_window: bool = False,
    ):
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        if dtype not in DTYPES:
            raise ValueError(f"teacher.dtype must be one of {DTYPES}, got {dtype!r}")
        if device == "cpu":
            torch.set_num_threads(threads)
        source = self._resolve(model)
        self.device, self.batch_size, self.top_k = device, batch_size, top_k
        self.processor = WhisperProcessor.from_pretrained(source)
        self.model = (
            WhisperForConditionalGeneration.from_pretrained(source, dtype=getattr(torch, dtype))
            .to(device)
            .eval()
        )
        if Path(source).is_dir():
            self.revision = revision_of(source)
        else:
            self.revision = getattr(self.model.config, "_commit_hash", None) or "unknown"
        generation = self.model.generation_config
        self.prompt = prompt_ids(generation, language)
        self.eot = generation.eos_token_id
        self.no_speech_id = _no_speech_id(self.processor.tokenizer)
        self.silence = None  # [1, 1500, D] the window fill, when filling
        if fill_window:
            from audiodistill.students.whisper_distil import silence_states

            self.silence = silence_states(self.model, self.processor.feature_extractor)

    def _resolve(self, model: str | None) -> str:
        """Directory or hub id to load; sets `name`."""
        if model is None:
            from audiodistill.teachers.convert import ensure_bundled_hf

            self.name = BUNDLED_NAME
            return str(ensure_bundled_hf())
        if _looks_like_path(model):
            path = Path(model).expanduser()
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"{path} is not a transformers Whisper directory")
            self.name = path.name
            return str(path)
        self.name = model  # a hub id; needs a network or the local hub cache
        return model

    def transcribe(
        self, audios: Sequence[np.ndarray], prompt: str | None = None
    ) -> list[Transcript]:
        """`prompt`: earlier text that guides spelling and style (OpenAI's `prompt`)."""
        from audiodistill.students.whisper_distil import windows as audio_windows

        extractor = self.processor.feature_extractor
        windows, owners = [], []  # filling: 30 s of audio each; else [n_mels, 3000] log-mel
        for i, audio in enumerate(audios):
            audio = np.asarray(audio, dtype=np.float32)
            if self.silence is not None:
                pieces = audio_windows(audio)
            else:
                pieces = log_mel_windows(extractor, audio)
            windows.extend(pieces)
            owners.extend([i] * len(pieces))
        tokens = self._prompt_with(prompt)
        # batches of similar durations: a batch decodes until its longest text ends, so
        # mixing a 2 s clip with a 30 s one would run the short one 15x too many steps
        order = sorted(range(len(windows)), key=lambda k: len(audios[owners[k]]))
        decoded: list = [None] * len(windows)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            texts = self._decode(self._encode([windows[k] for k in batch]), tokens)
            for k, text in zip(batch, texts, strict=True):
                decoded[k] = text
        parts = [[] for _ in audios]
        for d, owner in zip(decoded, owners, strict=True):
            parts[owner].append(d)
        return [self._transcript(p) for p in parts]

    def transcribe_words(
        self, audios: Sequence[np.ndarray], prompt: str | None = None
    ) -> list[list[Word]]:
        """Each clip's words (the text `transcribe` gives), timed from the alignment heads'
        cross-attention (audiodistill.decoding.whisper_alignment). One window at a time."""
        from audiodistill.students.whisper_distil import WINDOW_SECONDS
        from audiodistill.students.whisper_distil import windows as audio_windows

        tokens, out = self._prompt_with(prompt), []
        decode = self.processor.tokenizer.decode
        for audio in audios:
            words = []
            for index, window in enumerate(audio_windows(np.asarray(audio, dtype=np.float32))):
                piece = window if self.silence is not None else self._mel(window)
                encoded = self._encode([piece])
                ids = self._decode(encoded, tokens)[0].token_ids
                positions = -(-len(window) // int(SECONDS_PER_POSITION * SAMPLE_RATE))
                timed = decoder_words(self.model, encoded, tokens, ids, positions, decode)
                words += shifted(timed, index * WINDOW_SECONDS)
            out.append(words)
        return out

    def _prompt_with(self, prompt: str | None) -> list[int]:
        """The decoder prompt: previous text (OpenAI's `prompt`, if any), then the task."""
        previous = previous_text_ids(
            self.processor.tokenizer, prompt, self.model.config.max_target_positions
        )
        return previous + self.prompt

    def _mel(self, window: np.ndarray) -> np.ndarray:
        """[n_mels, 3000] log-mel of at most 30 s of audio."""
        return log_mel_windows(self.processor.feature_extractor, window)[0]

    def _encode(self, windows: list[np.ndarray]) -> torch.Tensor:
        """[B, 1500, D] encoder output of log-mel windows [n_mels, 3000], or, filling, of
        audio windows (each plus a 1 s tail, then filled with the silence states)."""
        from audiodistill.students.whisper_distil import encode, fill, log_mel

        with torch.inference_mode():
            if self.silence is None:
                inputs = torch.from_numpy(np.stack(windows)).to(self.device, self.model.dtype)
                return self.model.model.encoder(inputs).last_hidden_state
            features = log_mel(self.processor.feature_extractor, windows, FILL_TAIL_SECONDS)
            encoded = encode(self.model, features.to(self.device, self.model.dtype))
            return fill(encoded, self.silence)

    def _decode(self, encoded: torch.Tensor, tokens: list[int]) -> list[Decoded]:
        """Greedy results for a batch of encoded windows [B, 1500, D] (`_encode`) after
        the decoder prompt `tokens`."""
        generation = self.model.generation_config
        return greedy_decode(
            self.model,
            encoded,
            prompt=tokens,
            eot=self.eot,
            # OpenAI's sample_len: half the decoder's context; only repetition loops reach it
            max_new_tokens=self.model.config.max_target_positions // 2,
            top_k=self.top_k,
            suppress=generation.suppress_tokens or (),
            suppress_begin=generation.begin_suppress_tokens or (),
            no_speech_id=self.no_speech_id,
        )

    def _transcript(self, parts: list[Decoded]) -> Transcript:
        """One utterance's windows joined: tokens and soft targets concatenated."""
        tokens = [t for p in parts for t in p.token_ids]
        text = " ".join(
            self.processor.tokenizer.decode(p.token_ids, skip_special_tokens=True).strip()
            for p in parts
        ).strip()
        # one end-of-text row per window; keep only the last so rows = tokens + 1
        topk_ids = [row for p in parts[:-1] for row in p.topk_ids[: len(p.token_ids)]]
        topk_lp = [row for p in parts[:-1] for row in p.topk_logprobs[: len(p.token_ids)]]
        return Transcript(
            text=text,
            token_ids=tokens,
            avg_logprob=sum(p.sum_logprob for p in parts) / max(sum(p.steps for p in parts), 1),
            # the utterance holds speech if any window does
            no_speech_prob=min(p.no_speech_prob for p in parts),
            compression_ratio=compression_ratio(text),
            topk_ids=topk_ids + parts[-1].topk_ids,
            topk_logprobs=topk_lp + parts[-1].topk_logprobs,
        )
