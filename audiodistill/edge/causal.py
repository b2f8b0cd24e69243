"""Streaming a whisper-causal student (numpy only): the recognizer, and its ONNX runtime.

The student (audiodistill/students/whisper_causal.py) is the teacher's encoder made causal in
chunks, read by the teacher's decoder. A stream runs the encoder chunk by chunk as audio
arrives and keeps its states; the decoder reads them, filled to Whisper's 30 s window with the
encoder's states for silence, after a short silent tail at the end of audio. Audio longer
than one window is cut into pieces of `piece_samples(tail)`, each decoded on its own.

`CausalRecognizer` is that logic once, over an engine (the torch student, or
`OnnxCausalWhisper` on the three graphs `audiodistill export` writes: encoder step,
cross-attention keys/values, decoder step).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

from audiodistill.data.audio import HOP_LENGTH, N_FFT, SAMPLE_RATE
from audiodistill.decoding.whisper_alignment import timed_words
from audiodistill.decoding.words import Word, shifted
from audiodistill.edge.features import FRAMES_PER_SECOND, ChunkQueue, FeatureStreamer, Step
from audiodistill.edge.recognizer import run_step, step_planner, zero_state
from audiodistill.edge.whisper import (
    SAMPLES_PER_POSITION,
    ByteBPEDecoder,
    alignment_weights,
    greedy_tokens,
    open_graphs,
)

EXPORT_KIND = "whisper-causal-onnx"  # config.json "student" of the export
WINDOW_POSITIONS = 1500  # encoder frames (20 ms) the decoder reads: Whisper's 30 s window
PAD_SAMPLES = N_FFT // 2  # zeros before the audio: frame i centres on sample 160 i
# audio samples whose log-mel has exactly 2 x WINDOW_POSITIONS frames: a silent window
SILENCE_SAMPLES = (2 * WINDOW_POSITIONS - 1) * HOP_LENGTH + N_FFT - PAD_SAMPLES


def piece_samples(tail_seconds: float) -> int:
    """Longest audio one window decodes: the window less the front end's padding and the
    tail (longer audio is cut into pieces of this length)."""
    return SILENCE_SAMPLES - int(tail_seconds * SAMPLE_RATE) - HOP_LENGTH


class CausalEngine(Protocol):
    """What a recognizer needs from a whisper-causal model (torch or ONNX)."""

    tail_seconds: float  # silence encoded after a piece's audio before it is decoded

    def feature_streamer(self) -> FeatureStreamer: ...

    def chunk_queue(self) -> ChunkQueue: ...

    def init_state(self): ...

    def step(self, features: np.ndarray, state) -> tuple[np.ndarray, object]:
        """features [n + lookahead, n_mels] -> encoder states [n / 2, D], the next state."""
        ...

    def decode(self, states: np.ndarray, draft: list[int]) -> list[int]:
        """Greedy token ids of one piece's encoder states [T, D] (T <= WINDOW_POSITIONS);
        `draft` (an earlier decode of the same piece) only makes it faster."""
        ...

    def text(self, ids: list[int]) -> str: ...

    def words(self, states: np.ndarray, ids: list[int], positions: int) -> list[Word]:
        """The words of `ids` decoded from `states` [T, D], whose first `positions` hold
        the audio, timed from the decoder's cross-attention (seconds from the piece's start)."""
        ...


class CausalRecognizer:
    """One audio stream: PCM pieces in; the encoder runs each chunk as soon as its audio
    (and 10 ms of lookahead) has arrived, and the decoder reads the states so far.

    `accept` returns the partial text, decoded again whenever `partial_seconds` of new audio
    have been encoded since the last decode (0: never). `finalize` encodes the silent tail,
    decodes and resets. Pieces are cut where the whole-clip path cuts them, so the final
    text equals that path's up to float rounding.

    Each decode passes the last one's tokens as a draft: the decoder checks them in one
    call and decodes only from where they stop being its own choice, so the final text
    after the last partial costs a few decoder steps, not one per token of the utterance.
    """

    def __init__(self, engine: CausalEngine, partial_seconds: float = 1.0, words: bool = False):
        self.engine = engine
        # encoder frames (20 ms) of new audio between partial decodes
        self.partial_frames = int(partial_seconds * FRAMES_PER_SECOND / 2)
        self.words = words  # time the final text's words (`last_words`)
        self.last_words: list[Word] = []  # the last final's, seconds from its stream's start
        self._done: list[str] = []  # text of finished pieces
        self._timed: list[Word] = []  # their words
        self._offset = 0  # stream samples before the open piece
        self._reset_piece()

    def _reset_piece(self) -> None:
        self._features = self.engine.feature_streamer()
        self._queue = self.engine.chunk_queue()
        self._state = self.engine.init_state()
        self._states: list[np.ndarray] = []  # [n, D] per step
        self._frames = self._samples = self._decoded_at = 0
        self._partial, self._draft = "", []

    def accept(self, pcm: np.ndarray, partial: bool = True) -> str:
        """Feed 16 kHz float32 samples (any count); return the partial text so far.
        `partial=False` holds the partial decode back (a server skips it until a segment
        has speech: silence never gives text, and decoding it costs the most)."""
        pcm = np.asarray(pcm, np.float32).reshape(-1)
        limit = piece_samples(self.engine.tail_seconds)
        while len(pcm):
            take = pcm[: limit - self._samples]
            pcm = pcm[len(take) :]
            self._push(take)
            if self._samples == limit:
                self._done.append(self._finish_piece())
        due = self.partial_frames and self._frames - self._decoded_at >= self.partial_frames
        if partial and due:
            self._partial, self._decoded_at = self._decode(), self._frames
        return " ".join([*self._done, self._partial]).strip()

    def finalize(self) -> str:
        """The final text of the stream (its words in `last_words` when timing them);
        resets for the next one."""
        if self._samples or not self._done:
            self._done.append(self._finish_piece())
        text = " ".join(t for t in self._done if t).strip()
        self.last_words = self._timed
        self._done, self._timed, self._offset = [], [], 0
        return text

    def end_segment(self) -> str:
        """The text so far as final (a pause ends a segment, edge/transcribe.py sessions);
        the next audio starts a fresh stream, as the silence between them would leave it."""
        return self.finalize()

    def drop(self) -> None:
        """Forget the stream without decoding it (a server drops a segment with no speech)."""
        self._done, self._timed, self._offset = [], [], 0
        self._reset_piece()

    def _push(self, pcm: np.ndarray) -> None:
        self._samples += len(pcm)
        for step in self._queue.push(np.asarray(self._features.accept(pcm))):
            self._run(step)

    def _finish_piece(self) -> str:
        audio = self._samples
        self._push(np.zeros(int(self.engine.tail_seconds * SAMPLE_RATE), np.float32))
        last = self._queue.flush()
        if last is not None:
            self._run(last)
        text = self._decode()
        if self.words and self._draft:
            positions = -(-audio // SAMPLES_PER_POSITION)  # those holding the piece's audio
            timed = self.engine.words(np.concatenate(self._states), self._draft, positions)
            self._timed += shifted(timed, self._offset / SAMPLE_RATE)
        self._offset += audio
        self._reset_piece()
        return text

    def _run(self, step: Step) -> None:
        # a piece ends before Whisper's 1500 positions, so the queue never restarts a state
        states, self._state = self.engine.step(step.features, self._state)
        self._states.append(states)
        self._frames += len(states)

    def _decode(self) -> str:
        if not self._states:
            return ""
        self._draft = self.engine.decode(np.concatenate(self._states), self._draft)
        return self.engine.text(self._draft)


def stream_clips(
    recognizer: CausalRecognizer, audios: list[np.ndarray]
) -> list[tuple[str, list[Word]]]:
    """Whole clips through a recognizer one at a time: each one's text and (when the
    recognizer times them) words."""
    out = []
    for audio in audios:
        recognizer.accept(audio)
        out.append((recognizer.finalize(), recognizer.last_words))
    return out


class OnnxCausalWhisper:
    """An exported whisper-causal student on ONNX Runtime: a `CausalEngine`, plus
    `transcribe` and `recognizer`."""

    def __init__(self, path: str | Path, int8: bool = False, threads: int = 1):
        path = Path(path)
        self.config = json.loads((path / "config.json").read_text())
        parts = ("encoder", "cross", "decoder")
        self.model_files, sessions = open_graphs(path, self.config, EXPORT_KIND, parts, int8,
                                                 threads)  # fmt: skip
        self.encoder, self.cross, self.decoder = sessions
        self.tokenizer = ByteBPEDecoder(path / self.config["tokenizer"])
        self.tail_seconds = float(self.config["tail_seconds"])
        self.chunk_ms = int(self.config["chunk_ms"])
        # the cross-attention keys and values [layers, 1, heads, 1500, head_dim] of the
        # encoder's states for a silent window: a decode computes only its speech's and takes
        # the rest of the window from these
        self.silence_cross = self.cross.run(None, {"states": self._silence()[None]})

    def feature_streamer(self) -> FeatureStreamer:
        return FeatureStreamer(pad_samples=PAD_SAMPLES)

    def chunk_queue(self) -> ChunkQueue:
        return step_planner(self.config)

    def init_state(self) -> dict[str, np.ndarray]:
        return zero_state(self.config)

    def step(self, features: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
        return run_step(self.encoder, self.config, self.config["states_output"], features, state)

    def decode(self, states: np.ndarray, draft: list[int]) -> list[int]:
        keys, values = self._cross(states)
        limit = self.config["max_new_tokens"]
        return greedy_tokens(self.decoder, self.config, keys, values, limit, draft)

    def text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids).strip()

    def words(self, states: np.ndarray, ids: list[int], positions: int) -> list[Word]:
        weights = alignment_weights(self.decoder, self.config, *self._cross(states), ids)
        return timed_words(ids, self.tokenizer.text, weights, positions)

    def recognizer(self, partial_seconds: float = 1.0, words: bool = False) -> CausalRecognizer:
        return CausalRecognizer(self, partial_seconds, words)

    def transcribe(self, audios: list[np.ndarray]) -> list[str]:
        """Whole clips through the streaming path, one at a time (16 kHz float32)."""
        return [text for text, _ in stream_clips(self.recognizer(partial_seconds=0), audios)]

    def transcribe_words(self, audios: list[np.ndarray]) -> list[list[Word]]:
        """Each clip's words (the text `transcribe` gives), timed from the cross-attention
        of the teacher's alignment heads, seconds from the clip's start."""
        recognizer = self.recognizer(partial_seconds=0, words=True)
        return [words for _, words in stream_clips(recognizer, audios)]

    def _cross(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cross-attention keys and values [layers, 1, heads, 1500, head_dim] of a piece's
        states [T, D], the rest of the window the silence's."""
        speech = self.cross.run(None, {"states": states[None].astype(np.float32)})
        keys, values = (
            np.concatenate([mine, silent[:, :, :, len(states) :]], axis=3)
            for mine, silent in zip(speech, self.silence_cross, strict=True)
        )
        return keys, values

    def _silence(self) -> np.ndarray:
        """[1500, D] the encoder's states for a silent window."""
        streamer, queue, state = self.feature_streamer(), self.chunk_queue(), self.init_state()
        steps = queue.push(streamer.accept(np.zeros(SILENCE_SAMPLES, np.float32)))
        states = []
        for step in [*steps, queue.flush()]:
            if step is not None:
                out, state = self.step(step.features, state)
                states.append(out)
        return np.concatenate(states)[:WINDOW_POSITIONS]
