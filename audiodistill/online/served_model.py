"""A model loaded for serving: whole-clip transcription for every kind, and chunk steps for
streaming students. Plain Python (no Ray): the Serve deployment in `serve/` wraps one.

`step` takes and returns each stream's state as arrays, so the object holds no per-stream
state and many streams share one forward pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from audiodistill.data.audio import HOP_LENGTH, SAMPLE_RATE
from audiodistill.decoding.words import Word, snap_to_speech
from audiodistill.edge.features import FRAMES_PER_SECOND


@dataclass(frozen=True)
class ModelInfo:
    """What a client (and the gateway) needs to know about a served model."""

    id: str  # the name requests use
    kind: str  # teacher backend or student kind
    streaming: bool  # decodes natively chunk by chunk (else LocalAgreement over a buffer)
    parameters: int
    chunk_frames: int = 0  # streaming: 10 ms feature frames per chunk
    takes_prompt: bool = False  # uses HTTP `prompt` (Whisper-type); others ignore it
    word_times: bool = True  # can time its words (uploads' word timestamps, stream finals)
    language: str = "en"  # the only language the bundled models know

    def to_dict(self) -> dict:
        return asdict(self)


def model_id(spec: str) -> str:
    """The name a model is served under: "teacher:ct2" -> "teacher-ct2"; a directory -> its
    name (its parent's, for an export saved as .../model)."""
    if spec.startswith("teacher:"):
        return spec.replace(":", "-")
    path = Path(spec.rstrip("/"))
    return path.parent.name if path.name == "model" else path.name


STREAMING_KINDS = ("streaming", "streaming-onnx")  # a saved student, or its ONNX export
# whisper-causal, saved or exported: streams natively through its own recognizer
CAUSAL_KINDS = ("whisper-causal", "whisper-causal-onnx")
# whole-clip calls a served model runs at once: short requests, and long files' segments in
# a lane of their own beside them (serve/app.py), so a long file never holds a short one up
LANES = 2


def streams_natively(spec: str) -> bool:
    """Whether `spec` decodes a live stream chunk by chunk, keeping its encoder state (a
    CTC streaming student or whisper-causal), rather than by LocalAgreement."""
    return _kind(spec) in STREAMING_KINDS + CAUSAL_KINDS


class ServedModel:
    """One model, loaded once per replica, with `threads` CPU threads for inference.

    A streaming student runs on the replica's GPU when it has one (an ONNX export on CPU, its
    int8 graph when it has one); Whisper-type models load through evaluation's loaders, on
    CPU. For CTC streaming students `decoder`, `chunk_queue()` and `pad_samples` are what a
    live session needs beside `step`; whisper-causal gives a `recognizer` per stream.
    """

    def __init__(self, spec: str, threads: int = 1, chunk_ms: int | None = None):
        import torch

        torch.set_num_threads(threads)
        self.takes_prompt, self._onnx, self._torch = False, None, None
        self._transcribe_words = None  # Whisper-type models' (streaming students': frames)
        self.recognizer = None  # whisper-causal: (words=False) -> a fresh recognizer for a stream
        kind = _kind(spec)
        if kind == "streaming-onnx":
            parameters = self._load_onnx(spec, threads, chunk_ms)
        elif kind == "streaming":
            parameters = self._load_torch(spec, chunk_ms)
        else:
            from audiodistill.evaluation.measurement import load_eval_model

            loaded = load_eval_model(spec, threads=threads, workers=LANES)
            self.chunk_frames, self._transcribe = 0, loaded.transcribe
            self._transcribe_words = loaded.transcribe_words
            parameters = loaded.parameters
            self.takes_prompt = loaded.takes_prompt
            if kind in CAUSAL_KINDS:
                self._use_recognizer(spec, loaded.recognizer, loaded.chunk_ms, chunk_ms)
        ctc = self._onnx is not None or self._torch is not None
        self.info = ModelInfo(
            id=model_id(spec),
            kind="streaming" if ctc else loaded.kind,
            streaming=ctc or self.recognizer is not None,
            parameters=parameters,
            chunk_frames=self.chunk_frames,
            takes_prompt=self.takes_prompt,
            word_times=ctc or self._transcribe_words is not None,
        )

    def _use_recognizer(self, spec: str, recognizer, model_ms: int, chunk_ms: int | None):
        if chunk_ms is not None and chunk_ms != model_ms:
            raise ValueError(
                f"{spec}: whisper-causal streams in the chunks it was trained for "
                f"({model_ms} ms), not {chunk_ms} ms"
            )
        self.recognizer = recognizer
        self.chunk_frames = model_ms * FRAMES_PER_SECOND // 1000

    def _load_torch(self, spec: str, chunk_ms: int | None) -> int:
        import torch

        from audiodistill.students.streaming import frames_per_chunk, load_student

        device = "cuda" if torch.cuda.is_available() else "cpu"  # a replica with num_gpus
        self._torch = load_student(spec, device)
        config = self._torch.model.config
        self.chunk_frames = frames_per_chunk(config, chunk_ms)
        self.decoder, self.pad_samples = self._torch.decoder, config.feature_pad_samples
        self.subsampling = config.subsampling
        self._transcribe = self._torch.transcribe
        return sum(p.numel() for p in self._torch.model.parameters())

    def _load_onnx(self, spec: str, threads: int, chunk_ms: int | None) -> int:
        from audiodistill.edge.recognizer import load_onnx_model
        from audiodistill.evaluation.measurement import onnx_parameters

        config = json.loads((Path(spec) / "config.json").read_text())
        if chunk_ms is not None and chunk_ms != config["chunk_ms"]:
            raise ValueError(
                f"{spec}: an ONNX export runs the chunk it was exported for "
                f"({config['chunk_ms']} ms), not {chunk_ms} ms"
            )
        self._onnx = load_onnx_model(spec, int8="int8" in config["models"], threads=threads)
        self.chunk_frames = self._onnx.chunk_frames
        self.decoder = self._onnx.decoder
        self.pad_samples = int(config.get("feature_pad_samples", 0))
        self.subsampling = self._onnx.subsampling
        self._transcribe = self._onnx.transcribe
        return onnx_parameters(self._onnx.model_path)

    def chunk_queue(self):
        """A fresh step planner for one live stream (streaming students only)."""
        if self._onnx is not None:
            return self._onnx.chunk_queue()
        from audiodistill.students.streaming import chunk_queue

        return chunk_queue(self._torch.model.config, self.chunk_frames)

    def transcribe(self, audios: Sequence[np.ndarray], prompt: str | None = None) -> list[str]:
        """Texts of whole 16 kHz clips (batched where the model batches).

        `prompt` guides Whisper-type models; a CTC student has nothing to condition on it,
        so it is ignored there (as `info.takes_prompt` says).
        """
        if prompt and self.takes_prompt:
            return [t.strip() for t in self._transcribe(list(audios), prompt=prompt)]
        return [t.strip() for t in self._transcribe(list(audios))]

    def transcribe_words(
        self, audios: Sequence[np.ndarray], prompt: str | None = None, snap: bool = True
    ) -> list[list[Word]]:
        """The timed words of whole 16 kHz clips (times from each clip's start).

        A streaming student streams each clip as a live stream would and aligns its final
        text to the frames (decoding/ctc_alignment.py); Whisper-type models align with their
        decoder's cross-attention (audiodistill.decoding.whisper_alignment). Then, unless `snap` is
        off (the alignment's own times, which the evaluation reports beside), the edges are
        moved onto the speech (`words.snap_to_speech`).
        """
        if self._onnx is not None or self._torch is not None:
            timed = [self._stream_words(np.asarray(a, dtype=np.float32)) for a in audios]
        elif self._transcribe_words is None:
            raise ValueError(f"{self.info.id} gives no word times")
        elif prompt and self.takes_prompt:
            timed = self._transcribe_words(list(audios), prompt=prompt)
        else:
            timed = self._transcribe_words(list(audios))
        if not snap:
            return timed
        return [snap_to_speech(w, a) for w, a in zip(timed, audios, strict=True)]

    def _stream_words(self, audio: np.ndarray) -> list[Word]:
        """One clip through the live path (features, planned steps, decoder), its final text
        aligned to the frames it was decoded from."""
        from audiodistill.decoding.ctc_alignment import ctc_words
        from audiodistill.decoding.ctc_decoder import decode
        from audiodistill.students.log_mel import FeatureStreamer

        queue, state, frames = self.chunk_queue(), None, []
        steps = queue.push(FeatureStreamer(self.pad_samples).accept(audio).numpy())
        for step in [*steps, queue.flush()]:
            if step is None:  # no whole encoder frame left at the end
                continue
            if step.restart is not None:  # a fresh state primed with the left context
                state = None
                for features in step.restart:
                    _, state = self.step([features], [state])[0]
            logprobs, state = self.step([step.features], [state])[0]
            frames.append(logprobs)
        if not frames:
            return []
        logprobs = np.concatenate(frames)
        seconds = self.subsampling * HOP_LENGTH / SAMPLE_RATE  # one CTC frame
        text = decode(self.decoder, logprobs)
        return ctc_words(logprobs, text, self.decoder.symbols, self.decoder.blank, seconds)

    def transcribe_prompted(
        self, audios: Sequence[np.ndarray], prompts: Sequence[str | None], words: bool = False
    ) -> list:
        """A batch of requests, each with its own prompt: one call per distinct prompt
        (usually one, for no prompt at all). Texts, or with `words` each clip's words."""
        results: list = [None] * len(audios)
        run = self.transcribe_words if words else self.transcribe
        for prompt in dict.fromkeys(prompts):
            rows = [i for i, p in enumerate(prompts) if p == prompt]
            out = run([audios[i] for i in rows], prompt)
            for i, result in zip(rows, out, strict=True):
                results[i] = result
        return results

    def step(
        self, chunks: Sequence[np.ndarray], states: Sequence[dict | None]
    ) -> list[tuple[np.ndarray, dict]]:
        """One step input of each of several streams (streaming students only): each stream's
        CTC log-probs and next state. None starts a stream. An ONNX export steps them one at
        a time (its graph takes one stream)."""
        if self._onnx is not None:
            from audiodistill.decoding.ctc_decoder import log_softmax

            out = []
            for features, state in zip(chunks, states, strict=True):
                logits, new = self._onnx.step(features, state or self._onnx.init_state())
                out.append((log_softmax(logits), new))
            return out
        if self._torch is None:
            raise ValueError(f"{self.info.id} is not a CTC streaming model")
        from audiodistill.students.streaming import step_streams

        return step_streams(self._torch.model, chunks, states, self.chunk_frames)


def _kind(spec: str) -> str | None:
    """A student directory's kind (config.json "student"); None for anything else."""
    config = Path(spec) / "config.json"
    if spec.startswith("teacher:") or not config.is_file():
        return None
    return json.loads(config.read_text()).get("student")
