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


@dataclass(frozen=True)
class ModelInfo:
    """What a client (and the gateway) needs to know about a served model."""

    id: str  # the name requests use
    kind: str  # teacher backend or student kind
    streaming: bool  # decodes natively chunk by chunk (else LocalAgreement over a buffer)
    parameters: int
    chunk_frames: int = 0  # streaming: 10 ms feature frames per chunk
    takes_prompt: bool = False  # uses HTTP `prompt` (Whisper-type); others ignore it
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


def is_streaming_student(spec: str) -> bool:
    """Whether `spec` is an exported streaming student directory."""
    config = Path(spec) / "config.json"
    if spec.startswith("teacher:") or not config.is_file():
        return False
    return json.loads(config.read_text()).get("student") == "streaming"


class ServedModel:
    """One model, loaded once per replica, with `threads` CPU threads for inference.

    A streaming student runs on the replica's GPU when it has one; Whisper-type models load
    through evaluation's loaders, on CPU.
    """

    def __init__(self, spec: str, threads: int = 1, chunk_ms: int | None = None):
        import torch

        torch.set_num_threads(threads)
        self.student, self.takes_prompt = None, False
        if is_streaming_student(spec):
            from audiodistill.students.streaming import frames_per_chunk, load_student

            device = "cuda" if torch.cuda.is_available() else "cpu"  # a replica with num_gpus
            self.student = load_student(spec, device)
            self.chunk_frames = frames_per_chunk(self.student.model.config, chunk_ms)
            self._transcribe = self.student.transcribe
            parameters = sum(p.numel() for p in self.student.model.parameters())
            kind = "streaming"
        else:
            from audiodistill.evaluation import load_eval_model

            loaded = load_eval_model(spec, threads=threads)
            self.chunk_frames, self._transcribe = 0, loaded.transcribe
            kind, parameters = loaded.kind, loaded.parameters
            self.takes_prompt = loaded.takes_prompt
        self.info = ModelInfo(
            id=model_id(spec),
            kind=kind,
            streaming=self.student is not None,
            parameters=parameters,
            chunk_frames=self.chunk_frames,
            takes_prompt=self.takes_prompt,
        )

    def transcribe(self, audios: Sequence[np.ndarray], prompt: str | None = None) -> list[str]:
        """Texts of whole 16 kHz clips (batched where the model batches).

        `prompt` guides Whisper-type models; a CTC student has nothing to condition on it,
        so it is ignored there (as `info.takes_prompt` says).
        """
        if prompt and self.takes_prompt:
            return [t.strip() for t in self._transcribe(list(audios), prompt=prompt)]
        return [t.strip() for t in self._transcribe(list(audios))]

    def transcribe_prompted(
        self, audios: Sequence[np.ndarray], prompts: Sequence[str | None]
    ) -> list[str]:
        """A batch of requests, each with its own prompt: one call per distinct prompt
        (usually one, for no prompt at all)."""
        texts = [""] * len(audios)
        for prompt in dict.fromkeys(prompts):
            rows = [i for i, p in enumerate(prompts) if p == prompt]
            out = self.transcribe([audios[i] for i in rows], prompt)
            for i, text in zip(rows, out, strict=True):
                texts[i] = text
        return texts

    def step(
        self, chunks: Sequence[np.ndarray], states: Sequence[dict | None]
    ) -> list[tuple[np.ndarray, dict]]:
        """One feature chunk of each of several streams (streaming students only)."""
        from audiodistill.students.streaming import step_streams

        if self.student is None:
            raise ValueError(f"{self.info.id} is not a streaming model")
        return step_streams(self.student.model, chunks, states, self.chunk_frames)
