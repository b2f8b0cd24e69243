"""The `whisper-distil` student: the teacher's encoder plus a few of its decoder layers.

Built as distil-whisper builds its students: copy the encoder whole and K decoder layers,
maximally spaced and always including the last, then train on the teacher's pseudo-labels
(cross-entropy) and soft targets (top-k KL at a temperature).

One departure from Whisper: with `tail_seconds` set, the encoder runs on the utterance plus
a short silent tail instead of a 30 s padded window (Moonshine's insight: cost should follow
the audio's length). A 4 s utterance with a 1 s tail then costs 250 encoder positions
instead of 1500. A bare tail is not enough: Whisper's decoder always saw 1500 positions,
and on fewer it often does not stop (it repeats the sentence). With a bare 5 s tail the
unmodified tiny.en looped on 3 of data/synth's 40 test utterances (61.0% WER against
20.9%); training teaches a student to stop, at a cost in recognition (docs/lab_notebook.md).

`fill_window` (the default) removes that cost: the encoder output of the utterance and its tail is
extended to Whisper's 1500 positions with the encoder's output for a silent window
(computed once per model; `silence_states`). The decoder then sees the window it was
trained on, at the encoder cost of the speech alone. Untrained, tiny.en so filled after a
1 s tail scored 17.9% WER on the 400 utterances of data/synth against its own 18.5%, 2.7x
faster (docs/lab_notebook.md), where a bare 5 s tail looped (73.6%).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.decoding.repetition import LOOP_REPEATS
from audiodistill.decoding.whisper_greedy import (
    decoder_words,
    generation_greedy,
    previous_text_ids,
    prompt_ids,
)
from audiodistill.decoding.words import Word, shifted
from audiodistill.training.kd_losses import TokenCrossEntropyLoss, WhisperDistillationLoss

# Whisper's log-mel runs at 100 frames/s (hop 160 at 16 kHz); its conv stem halves that,
# so one encoder position covers 20 ms and 30 s is 1500 positions.
WINDOW_SECONDS = 30
MEL_FRAMES_PER_SECOND = SAMPLE_RATE // 160
SAMPLES_PER_POSITION = 320  # audio samples per encoder position (20 ms)
STUDENT_KIND = "whisper-distil"
# extra silence encoded for the encoder cache, so a cached output also serves later batches
# whose longest utterance is up to this much longer (buckets group similar lengths)
CACHE_SLACK_S = 2.0
SOFT_TARGETS = ("stored", "online")


@dataclass(frozen=True)
class WhisperDistilOptions:
    # teacher in transformers format (local dir or hub id); None: the bundled tiny.en
    teacher: str | None = None
    # decoder layers kept from the teacher, maximally spaced, the last always included
    decoder_layers: int = 2
    # keep the teacher's encoder weights fixed: no encoder backward pass, and the teacher's
    # encoder already works on tail-padded input (see the module docstring)
    freeze_encoder: bool = True
    # keep the decoder's token and position embeddings fixed: they hold 20M of tiny.en's 37M
    # weights (the vocabulary, tied to the output layer), so a step is ~20% cheaper; off by
    # default because the one short run with them fixed recovered far more slowly (dev WER
    # 1.09 after 80 steps at lr 1e-4, vs 0.53 after 50 at lr 3e-4 with them trained; the
    # two runs also differ in learning rate, so the cause is not yet separated)
    freeze_embeddings: bool = False
    # seconds of silence after the audio instead of padding to 30 s (null: Whisper's 30 s
    # window); the encoder's cost follows the audio's length
    tail_seconds: float | None = 1.0
    # extend the encoder output to the 30 s window with the encoder's output for silence
    # (module docstring): on the same labels and steps, the main job's 2-layer student
    # scored 44.4% test WER with it and a 1 s tail, 66.9% with a bare 5 s tail
    fill_window: bool = True
    # weight of cross-entropy on the pseudo-label tokens
    alpha_ce: float = 1.0
    # weight of KL to the teacher's top-k soft targets (0 turns soft targets off)
    beta_kd: float = 1.0
    # distillation temperature
    temperature: float = 2.0
    # soft targets used per token (labels storing fewer are padded with zero mass)
    top_k: int = 8
    # where the soft targets come from: "stored" (the pseudo-labels' top-k log-probs) or
    # "online" (the teacher's decoder run on the same encoder output at every step, its whole
    # distribution over the vocabulary; needs freeze_encoder, which keeps the encoder the
    # teacher's own, so one encoder pass serves both)
    soft_targets: str = "stored"
    # language token for multilingual teachers (English-only ones have none)
    language: str = "en"
    # longest transcript decoded per 30 s window
    max_new_tokens: int = 128
    # with the encoder frozen, keep each utterance's encoder output (float16) after its first
    # batch so later epochs skip the encoder, most of a CPU step; costs about 0.5 MB of host
    # memory (not GPU memory) per utterance of 5 s per worker
    cache_encoder: bool = True

    def __post_init__(self) -> None:
        if self.soft_targets not in SOFT_TARGETS:
            raise ValueError(
                f"whisper_distil.soft_targets must be one of {SOFT_TARGETS}, "
                f"got {self.soft_targets!r}"
            )
        if self.soft_targets == "online" and not self.freeze_encoder:
            raise ValueError(
                "whisper_distil.soft_targets=online needs whisper_distil.freeze_encoder=true: "
                "the teacher's decoder reads the student's encoder output, which is the "
                "teacher's own only while frozen"
            )


def kept_layer_ids(teacher_layers: int, keep: int) -> list[int]:
    """Maximally spaced decoder layers, first and last included when keep >= 2."""
    if not 1 <= keep <= teacher_layers:
        raise ValueError(f"decoder_layers must be in 1..{teacher_layers}, got {keep}")
    if keep == 1:
        return [teacher_layers - 1]
    return [round(i * (teacher_layers - 1) / (keep - 1)) for i in range(keep)]


def shrink_decoder(teacher: nn.Module, keep: int) -> nn.Module:
    """A copy of a WhisperForConditionalGeneration with only `keep` decoder layers."""
    from transformers import WhisperForConditionalGeneration

    ids = kept_layer_ids(teacher.config.decoder_layers, keep)
    config = copy.deepcopy(teacher.config)
    config.decoder_layers = keep
    student = WhisperForConditionalGeneration(config)
    state = {}
    for name, value in teacher.state_dict().items():
        prefix = "model.decoder.layers."
        if name.startswith(prefix):
            index, rest = name[len(prefix) :].split(".", 1)
            if int(index) not in ids:
                continue
            name = f"{prefix}{ids.index(int(index))}.{rest}"
        state[name] = value
    missing, unexpected = student.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "proj_out.weight"]  # tied to the token embedding
    if missing or unexpected:
        raise RuntimeError(f"shrink_decoder: missing {missing}, unexpected {unexpected}")
    student.generation_config = copy.deepcopy(teacher.generation_config)
    # word times read the teacher's alignment heads: renumber those in kept layers (none
    # kept: whisper_alignment.alignment_heads falls back to all heads of the upper layers)
    heads = getattr(teacher.generation_config, "alignment_heads", None) or []
    kept = [[ids.index(layer), head] for layer, head in heads if layer in ids]
    student.generation_config.alignment_heads = kept or None
    student.config.teacher_layers = ids  # says the heads are renumbered (model_alignment_heads)
    return student


def encode(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Whisper's encoder on any number of mel frames up to 30 s.

    features: [B, n_mels, F] -> [B, ceil(F / 2), D]. transformers' own forward insists on
    exactly 3000 frames; this is the same computation with the positions sliced to fit.
    """
    encoder = model.model.encoder
    x = nn.functional.gelu(encoder.conv1(features))
    x = nn.functional.gelu(encoder.conv2(x))  # [B, D, T]
    x = x.permute(0, 2, 1)  # [B, T, D]
    x = x + encoder.embed_positions.weight[: x.shape[1]]
    x = nn.functional.dropout(x, p=encoder.dropout, training=encoder.training)
    for layer in encoder.layers:
        x = layer(x, None)
    return encoder.layer_norm(x)


def encode_audio(
    model: nn.Module, feature_extractor, audios: Sequence[np.ndarray], tail_seconds: float | None
) -> torch.Tensor:
    """[B, T, D] encoder output for clips (`log_mel`, then `encode`).

    The feature extractor works in numpy and returns CPU tensors: they are moved to the
    model's device and dtype here, so a model on a GPU (or in float16) gets its own kind.
    """
    features = log_mel(feature_extractor, audios, tail_seconds)
    return encode(model, features.to(model.device, model.dtype))


def frozen_teacher(teacher_dir: str, device: torch.device) -> nn.Module:
    """The teacher loaded for producing targets online: eval mode, no gradients."""
    from transformers import WhisperForConditionalGeneration

    teacher = WhisperForConditionalGeneration.from_pretrained(teacher_dir)
    return teacher.eval().requires_grad_(False).to(device)


def silence_states(model: nn.Module, feature_extractor) -> torch.Tensor:
    """[1, 1500, D] encoder output for a silent 30 s window, the fill of `fill`."""
    with torch.no_grad():
        return encode_audio(model, feature_extractor, [np.zeros(1, np.float32)], None)


def fill(encoded: torch.Tensor, silence: torch.Tensor) -> torch.Tensor:
    """[B, T, D] encoder output -> [B, 1500, D]: positions T and later from `silence`."""
    rest = silence[:, encoded.shape[1] :].to(encoded)  # [1, 1500 - T, D], its device and dtype
    return torch.cat([encoded, rest.expand(len(encoded), -1, -1)], dim=1)


def mel_frames(samples: int, tail_seconds: float | None) -> int:
    """Log-mel frames for `samples` of audio plus the tail (Whisper's 3000 without one)."""
    window = WINDOW_SECONDS * MEL_FRAMES_PER_SECOND
    if tail_seconds is None:
        return window
    padded = samples + int(tail_seconds * SAMPLE_RATE)
    # an even frame count keeps the stride-2 conv from dropping the last frame
    return min(-(-padded // 320) * 2, window)


def log_mel(feature_extractor, audios: Sequence[np.ndarray], tail_seconds: float | None):
    """[B, n_mels, F]: the longest item plus a silent tail, or Whisper's 30 s window."""
    if tail_seconds is not None:
        frames = mel_frames(max(len(a) for a in audios), tail_seconds)
        kwargs = {"padding": "max_length", "max_length": frames * 160, "truncation": True}
    else:
        kwargs = {"padding": "max_length", "truncation": True}
    out = feature_extractor(
        [np.asarray(a, dtype=np.float32) for a in audios],
        sampling_rate=SAMPLE_RATE,
        return_tensors="pt",
        **kwargs,
    )
    return out.input_features


def check_tokenizer(labels, tokenizer) -> None:
    """ValueError unless the labels' token ids mean their text to the student's tokenizer
    (they come from a teacher with the same vocabulary)."""
    sample = labels[labels["error"].isna()].head(20)
    agree = sum(
        tokenizer.decode(list(ids), skip_special_tokens=True).strip() == text.strip()
        for ids, text in zip(sample["token_ids"], sample["text"], strict=True)
    )
    if len(sample) and agree < len(sample) / 2:
        raise ValueError(
            f"the student's tokenizer decodes only {agree} of {len(sample)} pseudo-labels "
            "back to their text: the labels come from a teacher with another tokenizer"
        )


def pad_targets(rows: Sequence[dict], prompt: list[int], eot: int, top_k: int | None):
    """Teacher-forcing tensors from pseudo-label rows.

    Position i of the decoder input predicts position i of `labels`; the teacher's top-k rows
    (one per generated token plus end-of-text) line up with the non-ignored labels.
    """
    ignore = TokenCrossEntropyLoss.IGNORE
    seqs = [list(r["token_ids"]) for r in rows]
    length = len(prompt) + max(len(s) for s in seqs)
    inputs = torch.full((len(rows), length), eot, dtype=torch.long)
    labels = torch.full((len(rows), length), ignore, dtype=torch.long)
    k = top_k or 1
    topk_ids = torch.zeros((len(rows), length, k), dtype=torch.long)
    # -1e4, not -inf: a padded slot gets zero teacher mass without 0 * inf = nan in the KL
    topk_logprobs = torch.full((len(rows), length, k), -1e4, dtype=torch.float32)
    for b, (row, seq) in enumerate(zip(rows, seqs, strict=True)):
        tokens = prompt + seq
        inputs[b, : len(tokens)] = torch.tensor(tokens)
        start = len(prompt) - 1
        labels[b, start : start + len(seq) + 1] = torch.tensor(seq + [eot])
        if top_k:
            ids = np.asarray([list(r) for r in row["topk_ids"]], dtype=np.int64)[:, :k]
            logps = np.asarray([list(r) for r in row["topk_logprobs"]], dtype=np.float32)[:, :k]
            n, stored = ids.shape  # [tokens + 1, min(k, stored k)]
            topk_ids[b, start : start + n, :stored] = torch.from_numpy(ids)
            topk_logprobs[b, start : start + n, :stored] = torch.from_numpy(logps)
    return inputs, labels, topk_ids, topk_logprobs


class WhisperTeacherFiles:
    """A Whisper student task's teacher directory, processor and generation config, each
    resolved on first use (finding the bundled teacher reads files)."""

    def __init__(self, teacher: str | None):
        self._teacher_dir = teacher  # None until the bundled one is first needed
        self._processor = None
        self._generation = None

    def teacher_dir(self) -> str:
        if self._teacher_dir is None:
            from audiodistill.teachers.convert import ensure_bundled_hf

            self._teacher_dir = str(ensure_bundled_hf())
        return self._teacher_dir

    @property
    def processor(self):
        if self._processor is None:
            from transformers import WhisperProcessor

            self._processor = WhisperProcessor.from_pretrained(self.teacher_dir())
        return self._processor

    @property
    def generation_config(self):
        if self._generation is None:
            from transformers import GenerationConfig

            self._generation = GenerationConfig.from_pretrained(self.teacher_dir())
        return self._generation


class WhisperDistilTask(WhisperTeacherFiles):
    """Everything the training loop needs to build, train, run and export this student."""

    kind = STUDENT_KIND

    def __init__(self, options: WhisperDistilOptions):
        self.options = options
        # stored soft targets read from the labels (0: none, the KL is off or online)
        kd = options.beta_kd > 0
        self.top_k = options.top_k if kd and options.soft_targets == "stored" else 0
        self.online = kd and options.soft_targets == "online"
        self._teacher: nn.Module | None = None  # the frozen teacher when `online`
        self.language = options.language
        super().__init__(options.teacher)
        # utterance id -> [T, D] float16 frozen-encoder output, T covering at least the
        # utterance plus tail_seconds + CACHE_SLACK_S (see `collate`)
        self._encoded: dict[str, torch.Tensor] = {}
        self._frozen_silence: torch.Tensor | None = None  # `silence_states` of a frozen encoder

    def build(self) -> nn.Module:
        from transformers import WhisperForConditionalGeneration

        teacher = WhisperForConditionalGeneration.from_pretrained(self.teacher_dir())
        student = shrink_decoder(teacher, self.options.decoder_layers)
        student.config.student = STUDENT_KIND
        student.config.tail_seconds = self.options.tail_seconds
        student.config.fill_window = self.options.fill_window
        if self.options.freeze_encoder:
            student.model.encoder.requires_grad_(False)
        if self.options.freeze_embeddings:
            student.model.decoder.embed_tokens.requires_grad_(False)
            student.model.decoder.embed_positions.requires_grad_(False)
        return student

    def check(self, labels) -> None:
        if self.top_k and labels["topk_ids"].map(lambda x: x is None or len(x) == 0).all():
            raise ValueError(
                "whisper-distil with beta_kd > 0 needs soft targets: pseudo-label with the "
                "transformers backend (teacher.backend=hf), or set whisper_distil.beta_kd=0"
            )
        check_tokenizer(labels, self.processor.tokenizer)

    @property
    def caching(self) -> bool:
        return self.options.freeze_encoder and self.options.cache_encoder

    def collate(self, rows: Sequence[dict]) -> dict:
        """Teacher-forcing targets plus either log-mel features or, when every row's frozen
        encoder output is cached long enough, those outputs cut to this batch's length.

        A cached output was computed with CACHE_SLACK_S more silence than its batch needed,
        so it still covers a later batch whose longest item is up to that much longer. The
        encoder then saw a little more trailing silence than a fresh pass would: harmless,
        as inference pads batches the same way.
        """
        generation = self.generation_config
        inputs, labels, topk_ids, topk_logprobs = pad_targets(
            rows, prompt_ids(generation, self.language), generation.eos_token_id, self.top_k
        )
        batch = {
            "decoder_input_ids": inputs,
            "labels": labels,
            "topk_ids": topk_ids,
            "topk_logprobs": topk_logprobs,
        }
        audios = [r["audio"] for r in rows]
        positions = mel_frames(max(len(a) for a in audios), self.options.tail_seconds) // 2
        cached = [self._encoded.get(r["id"]) for r in rows] if self.caching else [None]
        if all(c is not None and len(c) >= positions for c in cached):
            batch["encoded"] = torch.stack([c[:positions] for c in cached]).float()
            return batch
        tail = self.options.tail_seconds
        if self.caching:  # encode with slack, cache, then cut to this batch's length
            tail = None if tail is None else tail + CACHE_SLACK_S
            batch["ids"], batch["positions"] = [r["id"] for r in rows], positions
        batch["features"] = log_mel(self.processor.feature_extractor, audios, tail)
        return batch

    def _encode(self, module: nn.Module, batch: dict) -> torch.Tensor:
        """[B, T, D] encoder output: from the cache, or computed (and cached if `ids` says)."""
        if "encoded" in batch:
            return batch["encoded"]
        encoded = encode(module, batch["features"])
        if "ids" not in batch:
            return encoded
        for row_id, row in zip(batch["ids"], encoded, strict=True):
            # held in host memory, which is larger than a GPU's; `train_step` moves the
            # batch that `collate` stacks from it back to the model's device
            self._encoded[row_id] = row.detach().to("cpu", torch.float16, copy=True)
        return encoded[:, : batch["positions"]]

    def _silence(self, module: nn.Module) -> torch.Tensor:
        """The fill for `fill_window`: computed once for a frozen encoder, else every call
        (the encoder changes; no gradient flows through the fill)."""
        if not self.options.freeze_encoder:
            return silence_states(module, self.processor.feature_extractor)
        if self._frozen_silence is None:
            self._frozen_silence = silence_states(module, self.processor.feature_extractor)
        return self._frozen_silence

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        module = getattr(model, "module", model)  # unwrap DDP for the custom encoder pass
        encoded = self._encode(module, batch)
        if self.options.fill_window:
            encoded = fill(encoded, self._silence(module))
        logits = model(encoder_outputs=(encoded,), decoder_input_ids=batch["decoder_input_ids"])
        criterion = WhisperDistillationLoss(
            self.options.alpha_ce, self.options.beta_kd, self.options.temperature
        )
        if self.online:
            teacher_logits = self._teacher_logits(encoded, batch["decoder_input_ids"])
            parts = criterion(logits.logits, batch["labels"], teacher_logits=teacher_logits)
        else:
            parts = criterion(
                logits.logits, batch["labels"], batch["topk_ids"], batch["topk_logprobs"]
            )
        return parts["loss"], {k: float(v.detach()) for k, v in parts.items()}

    @torch.no_grad()
    def _teacher_logits(self, encoded: torch.Tensor, decoder_input_ids: torch.Tensor):
        """[B, T, V] the teacher's logits, teacher-forced on the pseudo-label tokens, from the
        student's (frozen, hence the teacher's own) encoder output [B, positions, D]."""
        if self._teacher is None:
            self._teacher = frozen_teacher(self.teacher_dir(), encoded.device)
        out = self._teacher(encoder_outputs=(encoded,), decoder_input_ids=decoder_input_ids)
        return out.logits

    def transcribe(self, model: nn.Module, audios: Sequence[np.ndarray]) -> list[str]:
        module = getattr(model, "module", model)
        return transcribe(
            module,
            self.processor,
            audios,
            tail_seconds=self.options.tail_seconds,
            language=self.language,
            max_new_tokens=self.options.max_new_tokens,
            silence=self._silence(module) if self.options.fill_window else None,
        )

    def save(self, model: nn.Module, out_dir: Path) -> None:
        module = getattr(model, "module", model)
        module.save_pretrained(out_dir)
        self.processor.save_pretrained(out_dir)

    def finish_export(self, out_dir: Path, train) -> None:
        """Nothing beyond the weights: the export is complete."""


def filled_teacher_task() -> WhisperDistilTask:
    """The bundled teacher as a whisper-distil task that keeps every decoder layer and fills
    the window: its untrained `build()` is the teacher with the window fill and nothing else
    changed (eval's `teacher:hf-fill`; `audiodistill export --model teacher:hf-fill`)."""
    from transformers import WhisperConfig

    from audiodistill.teachers.convert import ensure_bundled_hf

    layers = WhisperConfig.from_pretrained(ensure_bundled_hf()).decoder_layers
    return WhisperDistilTask(WhisperDistilOptions(decoder_layers=layers, fill_window=True))


def windows(audio: np.ndarray) -> list[np.ndarray]:
    """Consecutive 30 s windows: long-form audio is decoded window by window."""
    step = WINDOW_SECONDS * SAMPLE_RATE
    return [audio[i : i + step] for i in range(0, max(len(audio), 1), step)]


@torch.inference_mode()
def transcribe(
    model: nn.Module,
    processor,
    audios: Sequence[np.ndarray],
    tail_seconds: float | None = 5.0,
    language: str = "en",
    max_new_tokens: int = 128,
    prompt: str | None = None,
    silence: torch.Tensor | None = None,
    loop_repeats: int = LOOP_REPEATS,
) -> list[str]:
    """Greedy transcripts, long audio chunked into 30 s windows decoded in one batch.

    `prompt`: earlier text that guides spelling and style (OpenAI's `prompt`).
    `silence`: `silence_states` to fill each encoder output to the window with (`fill`).
    `loop_repeats`: copies of a block that end a transcript (`repetition.loop_excess`).
    """

    was_training = model.training
    model.eval()
    pieces, owners = [], []
    for i, audio in enumerate(audios):
        for window in windows(np.asarray(audio, dtype=np.float32)):
            pieces.append(window)
            owners.append(i)
    generation = model.generation_config
    previous = previous_text_ids(processor.tokenizer, prompt, model.config.max_target_positions)
    texts = [[] for _ in audios]
    # similar lengths together keep padding (and wasted encoder frames) small
    order = sorted(range(len(pieces)), key=lambda j: len(pieces[j]))
    for start in range(0, len(order), 8):
        chunk = order[start : start + 8]
        clips = [pieces[j] for j in chunk]
        encoded = encode_audio(model, processor.feature_extractor, clips, tail_seconds)
        decoded = generation_greedy(
            model,
            encoded if silence is None else fill(encoded, silence),
            prompt_ids(generation, language, previous),
            max_new_tokens,
            loop_repeats=loop_repeats,
        )
        for j, d in zip(chunk, decoded, strict=True):
            texts[owners[j]].append((j, d.token_ids))
    model.train(was_training)
    tokenizer = processor.tokenizer
    return [
        " ".join(
            tokenizer.decode(ids, skip_special_tokens=True).strip() for _, ids in sorted(parts)
        ).strip()
        for parts in texts
    ]


class WhisperDistilModel:
    """An exported whisper-distil student, loaded for inference (`audiodistill.load_model`)."""

    kind = STUDENT_KIND

    def __init__(self, path: str | Path, language: str = "en", max_new_tokens: int = 128):
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        config = json.loads((Path(path) / "config.json").read_text())
        self.model = WhisperForConditionalGeneration.from_pretrained(path).eval()
        self.processor = WhisperProcessor.from_pretrained(path)
        self.tail_seconds = config.get("tail_seconds")
        self.silence = None  # exports from before fill_window existed have no fill
        if config.get("fill_window"):
            self.silence = silence_states(self.model, self.processor.feature_extractor)
        self.language = language
        self.max_new_tokens = max_new_tokens

    def transcribe(self, audios: Sequence[np.ndarray], prompt: str | None = None) -> list[str]:
        return transcribe(
            self.model,
            self.processor,
            audios,
            tail_seconds=self.tail_seconds,
            language=self.language,
            max_new_tokens=self.max_new_tokens,
            prompt=prompt,
            silence=self.silence,
        )

    @torch.inference_mode()
    def transcribe_words(
        self, audios: Sequence[np.ndarray], prompt: str | None = None
    ) -> list[list[Word]]:
        """Each clip's words, timed from the cross-attention of the teacher's alignment heads
        that its kept layers hold, else of every head of its upper layers
        (`whisper_decode.model_alignment_heads`). One 30 s window at a time."""
        tokenizer, generation = self.processor.tokenizer, self.model.generation_config
        max_positions = self.model.config.max_target_positions
        previous = previous_text_ids(tokenizer, prompt, max_positions)
        tokens = prompt_ids(generation, self.language, previous)
        out = []
        for audio in audios:
            words = []
            for index, window in enumerate(windows(np.asarray(audio, dtype=np.float32))):
                encoded = encode_audio(
                    self.model, self.processor.feature_extractor, [window], self.tail_seconds
                )
                encoded = encoded if self.silence is None else fill(encoded, self.silence)
                ids = self._greedy(encoded, tokens)
                positions = -(-len(window) // SAMPLES_PER_POSITION)
                timed = decoder_words(self.model, encoded, tokens, ids, positions, tokenizer.decode)
                words += shifted(timed, index * WINDOW_SECONDS)
            out.append(words)
        return out

    def _greedy(self, encoded: torch.Tensor, tokens: list[int]) -> list[int]:
        """The greedy token ids of one encoded window [1, 1500, D], as `transcribe` decodes."""
        return generation_greedy(self.model, encoded, tokens, self.max_new_tokens)[0].token_ids
