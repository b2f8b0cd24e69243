"""Streaming recognition with an exported student: ONNX Runtime, numpy features, CTC decoding.

Reads a directory written by `audiodistill export` (config.json, tokenizer.json, the .onnx
step graph) and behaves like the torch `StreamingRecognizer`: PCM pieces of any size in, the
partial text after each, the final text at the end. The streaming state is a set of arrays
named in config.json, fed to each step and replaced by what the step returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from audiodistill.decoding.ctc_decoder import LM_FILE, CtcDecoder, load_decoder, log_softmax
from audiodistill.edge.ctc import load_symbols
from audiodistill.edge.features import ChunkQueue, FeatureStreamer, Step
from audiodistill.edge.sessions import checked_precision, cpu_session
from audiodistill.errors import ModelError

EXPORT_KIND = "streaming-onnx"  # config.json "student" that `audiodistill export` writes


def zero_state(config: dict) -> dict[str, np.ndarray]:
    """The zero state of a new stream of a step graph export, by input name."""
    return {s["name"]: np.zeros(s["shape"], dtype=np.dtype(s["dtype"])) for s in config["state"]}


def run_step(
    session: ort.InferenceSession, config: dict, output: str, features: np.ndarray, state: dict
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One chunk step of an export's step graph: features [n + lookahead, n_mels] and the
    stream's state -> its `output` for the chunk (batch dimension dropped), the next state."""
    feeds = {config["features_input"]: features[None].astype(np.float32), **state}
    names = [output, *(s["output"] for s in config["state"])]
    out, *new_state = session.run(names, feeds)
    return out[0], {s["name"]: a for s, a in zip(config["state"], new_state, strict=True)}


def step_planner(config: dict) -> ChunkQueue:
    """The step planner of one stream of a step graph export (exports from before the
    teacher-initialised encoder have no lookahead, padding or position limit)."""
    return ChunkQueue(
        int(config["chunk_frames"]),
        int(config.get("lookahead_frames", 0)),
        int(config["subsampling"]),
        int(config["model_config"]["n_mels"]),
        int(config.get("max_positions", 0)),
        int(config.get("context_frames", 0)),
    )


@dataclass
class OnnxStreamingModel:
    """A loaded export: one ONNX Runtime session plus what config.json says about it."""

    session: ort.InferenceSession
    config: dict
    symbols: tuple[str, ...]
    blank: int
    model_path: Path
    decoder: CtcDecoder

    @property
    def chunk_frames(self) -> int:
        return int(self.config["chunk_frames"])

    @property
    def subsampling(self) -> int:
        return int(self.config["subsampling"])

    def init_state(self) -> dict[str, np.ndarray]:
        return zero_state(self.config)

    def step(
        self, features: np.ndarray, state: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """features [n + lookahead, n_mels] (n = chunk_frames, or fewer for the last chunk,
        and at least `subsampling`) -> logits [n // subsampling, vocab] and the next state."""
        return run_step(self.session, self.config, self.config["logits_output"], features, state)

    def chunk_queue(self) -> ChunkQueue:
        return step_planner(self.config)

    def recognizer(self) -> OnnxStreamingRecognizer:
        return OnnxStreamingRecognizer(self)

    def transcribe(self, audios: list[np.ndarray]) -> list[str]:
        """Whole clips through the streaming path, one at a time (16 kHz float32)."""
        recognizer = self.recognizer()
        texts = []
        for audio in audios:
            recognizer.accept(audio)
            texts.append(recognizer.finalize())
        return texts


def load_onnx_model(path: str | Path, int8: bool = False, threads: int = 1) -> OnnxStreamingModel:
    """Load an export directory's fp32 (or int8) graph on `threads` CPU threads."""
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ModelError(f"{path}: not an export directory (no config.json)")
    config = json.loads(config_path.read_text())
    if config.get("student") != EXPORT_KIND:
        raise ModelError(
            f"{path}: not an ONNX streaming export (student {config.get('student')!r}); "
            "make one with `audiodistill export --model <student dir> --out <dir>`"
        )
    model_path = path / config["models"][checked_precision(path, config, int8)]
    session = cpu_session(model_path, threads)
    symbols, blank = load_symbols(path / config["tokenizer"])
    decoder = load_decoder(config.get("decoding"), symbols, blank, path / LM_FILE)
    return OnnxStreamingModel(session, config, symbols, blank, model_path, decoder)


class OnnxStreamingRecognizer:
    """One audio stream on an exported model; same text as the torch StreamingRecognizer.

    Chunks run as soon as enough audio has arrived; the text is the export's decoder's best
    over every frame so far.
    """

    def __init__(self, model: OnnxStreamingModel):
        self.model = model
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next `accept` starts a new utterance."""
        pad = int(self.model.config.get("feature_pad_samples", 0))
        self._features = FeatureStreamer(pad_samples=pad)
        self._chunks = self.model.chunk_queue()
        self._state = self.model.init_state()
        self._stream = self.model.decoder.stream()
        self._text = ""

    def accept(self, pcm: np.ndarray, partial: bool = True) -> str:
        """Feed 16 kHz float32 samples (any count); return the partial text so far (CTC
        decodes each step as it runs, so `partial` changes nothing)."""
        for step in self._chunks.push(self._features.accept(pcm)):
            self._run(step)
        return self._text

    def finalize(self) -> str:
        """Run the last, shorter chunk; return the final text and reset for the next stream.

        Frames short of one encoder frame at the very end are dropped, as the torch model's
        subsampling drops them, so both give the same text.
        """
        last = self._chunks.flush()
        if last is not None:
            self._run(last)
        text = self.end_segment()
        self.reset()
        return text

    def end_segment(self) -> str:
        """The text so far as final; decoding starts again but the stream goes on: its encoder
        state and pending frames carry into the next segment, as the server's sessions cut
        a live stream at pauses."""
        text = self._stream.finalize()
        self.drop()
        return text

    def drop(self) -> None:
        """Forget the open segment's text; the encoder state runs on."""
        self._stream, self._text = self.model.decoder.stream(), ""

    def _run(self, step: Step) -> None:
        if step.restart is not None:
            self._state = self.model.init_state()
            for features in step.restart:
                _, self._state = self.model.step(features, self._state)
        logits, self._state = self.model.step(step.features, self._state)
        self._text = self._stream.accept(log_softmax(logits))
