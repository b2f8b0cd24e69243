"""Teachers behind one interface: CTranslate2 and transformers Whisper, neural audio codecs,
and a fake for tests.

`build_teacher(TeacherOptions(...))` is the only constructor the pipelines use, so a config
switches backends without any code knowing which one runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from audiodistill.teachers.base import CodecEncoding, CodecTeacher, Teacher, Transcript

__all__ = [
    "CodecEncoding",
    "CodecTeacher",
    "Teacher",
    "TeacherOptions",
    "Transcript",
    "build_teacher",
]


@dataclass(frozen=True)
class TeacherOptions:
    # ct2: faster-whisper (fast on CPU, no soft targets); hf: transformers (top-k soft
    # targets, batched, GPU fp16); codec: a transformers neural audio codec (EnCodec, DAC,
    # Mimi) giving codes and latents instead of text; fake: deterministic stand-in for tests
    backend: Literal["ct2", "hf", "codec", "fake"] = "ct2"
    # model directory (CT2 dir for ct2; HF dir or hub id for hf and codec); None: the bundled
    # tiny.en (ASR backends; a codec teacher has no bundled default)
    model: str | None = None
    # "cpu" or "cuda"
    device: str = "cpu"
    # CTranslate2 weight type (int8 on CPU, float16 on GPU)
    compute_type: str = "int8"
    # transformers weight type (float32 on CPU, float16 on GPU)
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    # utterances per forward pass (hf backend; codec backend where the codec is causal)
    batch_size: int = 8
    # soft targets kept per generated token (hf backend)
    top_k: int = 8
    # CPU threads per teacher (and Ray CPUs per actor)
    threads: int = 1
    # ct2 backend: batches run at once, each called from its own thread (faster-whisper's
    # num_workers); the server uses 2, so a short request runs beside a long file's segment
    workers: int = 1
    # 1: greedy, the pseudo-label is a deterministic function of the audio
    beam_size: int = 1
    # hf backend: encode each window's audio plus a 1 s tail and fill the encoder output to
    # the 30 s window with the encoder's output for silence (students/whisper_distil.py):
    # the same decoder input at the encoder cost of the speech alone
    fill_window: bool = False
    # language token for multilingual models; ignored by English-only ones
    language: str | None = "en"
    # codec backend: residual codebooks kept (n_q, sets the bitrate); None: all of them
    codebooks: int | None = None
    # codec backend: also store the continuous latents (D floats per frame: large)
    codec_latents: bool = True
    # fake backend only: seconds spent per utterance (tests that kill workers mid-run)
    fake_seconds_per_item: float = 0.0


def build_teacher(options: TeacherOptions) -> Teacher | CodecTeacher:
    """Load the teacher an options block describes (heavy imports happen here, not at import)."""
    if options.backend == "fake":
        from audiodistill.teachers.fake_teacher import FakeTeacher

        return FakeTeacher(options.fake_seconds_per_item, options.top_k)
    if options.backend == "ct2":
        from audiodistill.teachers.whisper_ct2 import CT2WhisperTeacher

        return CT2WhisperTeacher(
            options.model,
            device=options.device,
            compute_type=options.compute_type,
            threads=options.threads,
            beam_size=options.beam_size,
            language=options.language,
            workers=options.workers,
        )
    if options.backend == "hf":
        from audiodistill.teachers.whisper_hf import HFWhisperTeacher

        return HFWhisperTeacher(
            options.model,
            device=options.device,
            dtype=options.dtype,
            batch_size=options.batch_size,
            top_k=options.top_k,
            threads=options.threads,
            language=options.language,
            fill_window=options.fill_window,
        )
    if options.backend == "codec":
        from audiodistill.teachers.transformers_codec import HFCodecTeacher

        return HFCodecTeacher(
            options.model,
            device=options.device,
            dtype=options.dtype,
            batch_size=options.batch_size,
            threads=options.threads,
            codebooks=options.codebooks,
            latents=options.codec_latents,
        )
    raise ValueError(f"teacher.backend: unknown backend {options.backend!r}")
