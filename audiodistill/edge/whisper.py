"""Greedy decoding of an exported whisper-distil student with ONNX Runtime (numpy only).

Runs the two graphs `audiodistill export` writes for this student (see
audiodistill/export/whisper_onnx.py): the encoder once per utterance, then the decoder one token
at a time with its self-attention cache carried as arrays. Suppression follows
`audiodistill.decoding.whisper_greedy.greedy_decode` (the config's suppress ids every step, plus the
begin-suppress ids at the first step) and both end a repetition loop the same way
(`audiodistill.decoding.repetition`), so both give the same tokens.

`whisper_log_mel` reproduces Whisper's front end (the transformers feature extractor, with the
student's silent tail instead of a 30 s window) in numpy, and `ByteBPEDecoder` turns token ids
into text from tokenizer.json, so `OnnxWhisper.transcribe` needs neither torch nor
transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from audiodistill.data.audio import HOP_LENGTH, N_FFT, SAMPLE_RATE
from audiodistill.decoding.repetition import loop_excess
from audiodistill.decoding.whisper_alignment import alignment_heads, timed_words
from audiodistill.decoding.words import Word, shifted
from audiodistill.edge.features import DFT_COS, DFT_SIN, MEL
from audiodistill.edge.sessions import checked_precision, cpu_session
from audiodistill.errors import ModelError

EXPORT_KIND = "whisper-distil-onnx"
TOKENIZER_FILE = "tokenizer.json"
WINDOW_SAMPLES = 30 * SAMPLE_RATE  # Whisper's window: the most one encoder call sees
SAMPLES_PER_POSITION = 2 * HOP_LENGTH  # audio per encoder position (20 ms)
LOG_MEL_FLOOR = 1e-10  # Whisper's floor on mel power before log10
DYNAMIC_RANGE = 8.0  # log10 units kept below the loudest frame (80 dB)


def whisper_log_mel(audio: np.ndarray, tail_seconds: float | None) -> np.ndarray:
    """[80, F] Whisper log-mel of one clip plus `tail_seconds` of silence (None: padded or cut
    to the 30 s window), F even; what whisper_distil.log_mel gives for a batch of one."""
    audio = np.asarray(audio, dtype=np.float64)
    if tail_seconds is None:
        samples = WINDOW_SAMPLES
    else:
        longest = len(audio) + int(tail_seconds * SAMPLE_RATE)
        # an even frame count keeps the encoder's stride-2 conv from dropping the last frame
        frames = -(-longest // (2 * HOP_LENGTH)) * 2
        samples = min(frames * HOP_LENGTH, WINDOW_SAMPLES)
    audio = np.pad(audio[:samples], (0, max(samples - len(audio), 0)))
    padded = np.pad(audio, N_FFT // 2, mode="reflect")  # centered windows, as Whisper's STFT
    n = 1 + (len(padded) - N_FFT) // HOP_LENGTH
    starts = np.arange(n)[:, None] * HOP_LENGTH + np.arange(N_FFT)[None, :]
    windows = padded[starts]  # [n, N_FFT]
    power = np.square(windows @ DFT_COS) + np.square(windows @ DFT_SIN)
    log_spec = np.log10(np.maximum(power @ MEL, LOG_MEL_FLOOR))[:-1].T  # [80, n - 1]
    log_spec = np.maximum(log_spec, log_spec.max() - DYNAMIC_RANGE)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: every byte as a printable character (printable Latin-1
    bytes as themselves, the rest shifted past 255) so BPE tokens are plain strings."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    mapping, shifted = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shifted)
            shifted += 1
    return mapping


class ByteBPEDecoder:
    """Token ids -> text for a byte-level BPE tokenizer.json (Whisper's, GPT-2's)."""

    def __init__(self, path: str | Path):
        payload = json.loads(Path(path).read_text())
        self.tokens = {i: t for t, i in payload["model"]["vocab"].items()}
        self.special = set()
        for added in payload.get("added_tokens", []):
            self.tokens[added["id"]] = added["content"]
            if added.get("special"):
                self.special.add(added["id"])
        self._bytes = {c: b for b, c in _bytes_to_unicode().items()}

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`, special tokens skipped, surrounding spaces stripped."""
        return self.text(ids).strip()

    def text(self, ids: list[int]) -> str:
        """Text of `ids`, special tokens skipped, spaces kept (a word's first token starts
        with one)."""
        chars = "".join(self.tokens[i] for i in ids if i not in self.special)
        raw = bytes(self._bytes[c] for c in chars if c in self._bytes)
        return raw.decode("utf-8", errors="replace")


class OnnxWhisper:
    """An exported whisper-distil student: encoder and decoder sessions plus its config."""

    def __init__(self, path: str | Path, int8: bool = False, threads: int = 1):
        path = Path(path)
        self.config = json.loads((path / "config.json").read_text())
        parts = ("encoder", "decoder")
        self.model_files, sessions = open_graphs(path, self.config, EXPORT_KIND, parts, int8,
                                                 threads)  # fmt: skip
        self.encoder, self.decoder = sessions
        self.tokenizer = ByteBPEDecoder(path / TOKENIZER_FILE)
        # the cross-attention keys and values of a silent window, to fill each utterance's
        # to the window (students/whisper_distil.py, `fill_window`): keys and values are
        # per position, so filling them is filling the encoder output
        self.silence = None
        if self.config.get("fill_window"):
            silent = whisper_log_mel(np.zeros(1, np.float32), None)
            self.silence = self.encoder.run(None, {"features": silent[None]})[1:]

    def transcribe(self, audios: list[np.ndarray], max_new_tokens: int = 128) -> list[str]:
        """Greedy transcripts of 16 kHz clips; audio past 30 s goes window by window."""
        texts = []
        for audio in audios:
            pieces = [
                self.greedy(whisper_log_mel(window, self.config["tail_seconds"]), max_new_tokens)
                for window in _windows(np.asarray(audio, dtype=np.float32))
            ]
            texts.append(" ".join(self.tokenizer.decode(ids) for ids in pieces).strip())
        return texts

    def transcribe_words(
        self, audios: list[np.ndarray], max_new_tokens: int = 128
    ) -> list[list[Word]]:
        """Each clip's words (the text `transcribe` gives), timed from the cross-attention of
        the alignment heads config.json names (audiodistill.decoding.whisper_alignment): one more
        decoder call per window, on the prompt and every token at once."""
        if "cross_attention" not in [o.name for o in self.decoder.get_outputs()]:
            raise ValueError(
                "this export's decoder gives no cross-attention (exported before word "
                "times existed): export the student again for word times"
            )
        out = []
        for audio in audios:
            words = []
            for index, window in enumerate(_windows(np.asarray(audio, dtype=np.float32))):
                cross = self._cross(whisper_log_mel(window, self.config["tail_seconds"]))
                ids = self._greedy(*cross, max_new_tokens)
                if ids:
                    weights = alignment_weights(self.decoder, self.config, *cross, ids)
                    positions = -(-len(window) // SAMPLES_PER_POSITION)
                    timed = timed_words(ids, self.tokenizer.text, weights, positions)
                    words += shifted(timed, index * WINDOW_SAMPLES / SAMPLE_RATE)
            out.append(words)
        return out

    def greedy(self, features: np.ndarray, max_new_tokens: int = 128) -> list[int]:
        """Token ids (prompt and end-of-text excluded) for features [n_mels, F]."""
        return self._greedy(*self._cross(features), max_new_tokens)

    def _cross(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The decoder layers' cross-attention keys and values [layers, 1, heads, T,
        head_dim] of features [n_mels, F], filled to the window when the export fills."""
        _, cross_keys, cross_values = self.encoder.run(
            None, {"features": features[None].astype(np.float32)}
        )
        if self.silence is not None:  # [layers, 1, heads, positions, head_dim]
            positions = cross_keys.shape[3]
            keys, values = (rest[:, :, :, positions:] for rest in self.silence)
            cross_keys = np.concatenate([cross_keys, keys], axis=3)
            cross_values = np.concatenate([cross_values, values], axis=3)
        return cross_keys, cross_values

    def _greedy(
        self, cross_keys: np.ndarray, cross_values: np.ndarray, max_new_tokens: int
    ) -> list[int]:
        return greedy_tokens(self.decoder, self.config, cross_keys, cross_values, max_new_tokens)


def alignment_weights(
    decoder: ort.InferenceSession,
    config: dict,
    cross_keys: np.ndarray,
    cross_values: np.ndarray,
    ids: list[int],
) -> np.ndarray:
    """[alignment heads, len(ids) + 1, T]: the cross-attention of the steps that predicted
    each token and end-of-text, from one decoder call on prompt + ids."""
    empty = empty_cache(config)
    (weights,) = decoder.run(
        ["cross_attention"],
        {
            "input_ids": np.asarray([[*config["prompt"], *ids]], dtype=np.int64),
            "cross_keys": cross_keys,
            "cross_values": cross_values,
            "past_keys": empty,
            "past_values": empty,
        },
    )
    rows = weights[:, 0, :, len(config["prompt"]) - 1 :]  # [layers, heads, tokens + 1, T]
    layers, heads_per_layer = config["cache"]["layers"], config["cache"]["heads"]
    heads = alignment_heads(config.get("alignment_heads"), layers, heads_per_layer)
    return np.stack([rows[layer, head] for layer, head in heads])


def open_graphs(
    path: Path, config: dict, kind: str, parts: tuple[str, ...], int8: bool, threads: int
) -> tuple[list[Path], list[ort.InferenceSession]]:
    """The export's graph files for `parts` (fp32 or int8) and a CPU session on each, after
    checking the export is of `kind` and has that precision."""
    if config.get("student") != kind:
        raise ModelError(f"{path}: not a {kind.removesuffix('-onnx')} ONNX export")
    precision = checked_precision(path, config, int8)
    files = [path / config["models"][precision][part] for part in parts]
    return files, [cpu_session(f, threads) for f in files]


def greedy_tokens(
    decoder: ort.InferenceSession,
    config: dict,
    cross_keys: np.ndarray,
    cross_values: np.ndarray,
    max_new_tokens: int,
    draft: list[int] | None = None,
) -> list[int]:
    """Greedy token ids (prompt and end-of-text excluded) of an exported decoder step graph
    reading cross-attention keys and values [layers, 1, heads, T, head_dim]; `config` is
    the export's (prompt, end-of-text, suppressed ids, cache sizes). The logits may cover
    fewer ids than the tokenizer (`_masks`); greedy chooses among those.

    `draft`: an earlier hypothesis (a stream's last partial), fed with the prompt in the
    first call (speculative decoding). Its tokens count while they are greedy's own choice;
    at the first that is not, greedy's choice replaces it, the cache is cut back to the
    tokens kept, and decoding goes on a token a call, so the result is greedy's own and the
    prompt and draft pass the decoder once. Exports whose decoder gives only the last
    position's logits cannot check a draft and decode without it.
    """
    prompt = list(config["prompt"])
    limit = min(max_new_tokens, config["max_target_positions"] - len(prompt))
    every_position = len(decoder.get_outputs()[0].shape) == 3  # logits [1, n, V]
    guess = list(draft or [])[:limit] if every_position else []
    keys = values = empty_cache(config)
    vocab_mask = None
    tokens: list[int] = []
    step_input = prompt + guess
    while True:
        logits, keys, values = decoder.run(
            ["logits", "keys_out", "values_out"],
            {
                "input_ids": np.asarray([step_input], dtype=np.int64),
                "cross_keys": cross_keys,
                "cross_values": cross_values,
                "past_keys": keys,
                "past_values": values,
            },
        )
        rows = logits[0, -(len(guess) + 1) :] if every_position else logits  # [guesses + 1, V]
        if vocab_mask is None:
            vocab_mask = _masks(config, rows.shape[-1])
        for row, expected in zip(rows, [*guess, None], strict=True):
            scores = np.where(vocab_mask[min(len(tokens), 1)], -np.inf, row)
            chosen = int(scores.argmax())
            if chosen == config["eot"]:
                return tokens
            tokens.append(chosen)
            excess = loop_excess(tokens)
            if excess:
                del tokens[-excess:]
                return tokens
            if len(tokens) == limit:
                return tokens
            if chosen != expected:
                break
        # the cache holds the prompt, then every token but the last chosen (not fed yet),
        # then any guesses after the first wrong one: keep the first part
        kept = len(prompt) + len(tokens) - 1
        keys, values = keys[:, :, :, :kept], values[:, :, :, :kept]
        step_input, guess = [tokens[-1]], []


def empty_cache(config: dict) -> np.ndarray:
    """The self-attention cache before any token: [layers, 1, heads, 0, head_dim]."""
    shape = (config["cache"]["layers"], 1, config["cache"]["heads"], 0, config["head_dim"])
    return np.zeros(shape, dtype=np.float32)


def _masks(config: dict, vocab: int) -> np.ndarray:
    """[2, vocab] bool: ids suppressed at the first step, and at every later step. `vocab` is
    the logits' width, which may stop short of the tokenizer's (a whisper-causal export's
    logits end before the timestamp tokens): suppressed ids at or past it are left out."""

    def mask(ids) -> np.ndarray:
        out = np.zeros(vocab, dtype=bool)
        out[[i for i in ids if 0 <= i < vocab]] = True
        return out

    never = mask(config["suppress"])
    return np.stack([never | mask(config["suppress_begin"]), never])


def _windows(audio: np.ndarray) -> list[np.ndarray]:
    """Consecutive 30 s windows, as whisper_distil.windows cuts long-form audio."""
    return [audio[i : i + WINDOW_SAMPLES] for i in range(0, max(len(audio), 1), WINDOW_SAMPLES)]
