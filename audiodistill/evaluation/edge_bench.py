"""`audiodistill bench`: the edge benchmark of a student on one backend.

Audio is fed the way a microphone delivers it and the work is timed. A streaming student
takes one chunk's worth of samples per call; a whisper-distil export (onnx only) runs as
`audiodistill transcribe --model` runs it: energy VAD cuts utterances at pauses and each is
transcribed once it ends. Figures (all on `threads` CPU threads, one stream):

- rtf: processing seconds per audio second over a whole pass (median of `runs` passes);
- latency p50/p95/p99 (`chunk_latency_*`): streaming, the time of one call that runs one
  chunk step (features, model, decode), pooled over the passes (the first call of a pass
  only fills the 25 ms feature window and runs no step, so it is left out); whisper-distil,
  the time of one utterance's transcription, i.e. from its end to its text;
- end_to_final_ms: from the end of the audio (the last piece accepted) to the final text:
  the `finalize` call that runs the last, shorter chunk, or the last utterance's
  transcription (median over passes);
- load: importing the backend and loading the model; peak RSS of the process; model size
  (both graphs of a whisper-distil export).

The onnx backend imports only numpy, onnxruntime and this package's edge runtime, so it runs
on an `audiodistill[edge]` install. Without --audio the clip is built in (`bench_audio`):
deterministic, made with numpy, so every device measures the same input. The streaming
model's cost per chunk does not depend on what is said, so it times like speech; a
whisper-distil student's cost grows with the text it writes, so time it on a recording
with --audio. Either way a recording shows a real transcript as well.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from audiodistill.config import ConfigError
from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.errors import DataError
from audiodistill.progress import Progress

if TYPE_CHECKING:
    from audiodistill.edge.whisper import OnnxWhisper

BENCH_SECONDS = 10.0  # length of the built-in clip
BENCH_SEED = 0
TONE_SECONDS = 0.06  # the built-in clip changes every 60 ms, about a phone's length


@dataclass(frozen=True)
class BenchOptions:
    # onnx: a directory written by `audiodistill export` (a streaming, whisper-distil or
    # whisper-causal student); torch: a saved streaming student
    model: str
    # runtime to measure: onnx (ONNX Runtime, no torch needed) or torch (PyTorch eager)
    backend: Literal["torch", "onnx"] = "onnx"
    # onnx only: run the export's int8 graphs instead of the fp32 ones
    int8: bool = False
    # CPU threads for the backend's operators; 1 is the edge figure the targets are set at
    threads: int = 1
    # audio file to stream (any rate, resampled to 16 kHz); None: the built-in clip
    audio: str | None = None
    # timed passes over the clip, after one untimed warm-up pass
    runs: int = 3
    # also write the JSON report here
    out: str | None = None


class Recognizer(Protocol):
    def accept(self, pcm: np.ndarray) -> str: ...

    def finalize(self) -> str: ...


@dataclass
class Pass:
    """One timed pass over the clip."""

    latencies: list[float]  # seconds of each chunk step (streaming) or utterance
    final_s: float  # from the end of the audio to the final text
    total_s: float  # processing time of the whole pass
    text: str


@dataclass
class LoadedModel:
    timed_pass: Callable[[np.ndarray], Pass]
    kind: str  # streaming, whisper-distil or whisper-causal
    chunk_ms: int | None  # audio per streaming step (None: whisper-distil, no chunks)
    model_files: list[Path]  # the weights files the backend reads
    import_s: float  # importing the backend (0 when this process already had it)
    load_s: float  # reading the model into a ready recognizer


def bench_audio(seconds: float = BENCH_SECONDS, seed: int = BENCH_SEED) -> np.ndarray:
    """Deterministic 16 kHz clip: 60 ms pieces of random tones or silence over light noise."""
    rng = np.random.default_rng(seed)
    n, piece = int(seconds * SAMPLE_RATE), int(TONE_SECONDS * SAMPLE_RATE)
    t = np.arange(piece) / SAMPLE_RATE
    pieces = [
        rng.choice([0.0, rng.uniform(0.05, 0.5)]) * np.sin(2 * np.pi * rng.uniform(100, 4000) * t)
        for _ in range(n // piece + 1)
    ]
    audio = np.concatenate(pieces)[:n] + 0.005 * rng.standard_normal(n)
    return audio.astype(np.float32)


def _load_onnx(options: BenchOptions) -> LoadedModel:
    start = time.perf_counter()
    from audiodistill.edge.causal import OnnxCausalWhisper
    from audiodistill.edge.transcribe import load_export
    from audiodistill.edge.whisper import OnnxWhisper

    imported = time.perf_counter()
    model = load_export(options.model, options.int8, options.threads)
    if isinstance(model, OnnxWhisper):
        timed_pass, kind, chunk_ms = partial(_utterance_pass, model), "whisper-distil", None
        files = model.model_files
    elif isinstance(model, OnnxCausalWhisper):
        chunk_ms, kind, files = model.chunk_ms, "whisper-causal", model.model_files
        timed_pass = partial(_chunk_pass, model.recognizer(), chunk_ms)
    else:
        chunk_ms, kind, files = int(model.config["chunk_ms"]), "streaming", [model.model_path]
        timed_pass = partial(_chunk_pass, model.recognizer(), chunk_ms)
    loaded = time.perf_counter()
    return LoadedModel(timed_pass, kind, chunk_ms, files, imported - start, loaded - imported)


def _load_torch(options: BenchOptions) -> LoadedModel:
    if options.int8:
        raise ConfigError("int8 is an ONNX export; use --backend onnx --int8")
    start = time.perf_counter()
    import torch

    from audiodistill.students.streaming import WEIGHTS_FILE, load_student

    imported = time.perf_counter()
    torch.set_num_threads(options.threads)
    student = load_student(options.model)
    chunk_ms = student.model.config.chunk_ms
    timed_pass = partial(_chunk_pass, student.recognizer(), chunk_ms)
    loaded = time.perf_counter()
    files = [Path(options.model) / WEIGHTS_FILE]
    return LoadedModel(
        timed_pass, "streaming", chunk_ms, files, imported - start, loaded - imported
    )


def _chunk_pass(recognizer: Recognizer, chunk_ms: int, audio: np.ndarray) -> Pass:
    """One stream over `audio` in calls of one chunk's samples."""
    calls, piece = [], chunk_ms * SAMPLE_RATE // 1000
    for start in range(0, len(audio), piece):
        begin = time.perf_counter()
        recognizer.accept(audio[start : start + piece])
        calls.append(time.perf_counter() - begin)
    begin = time.perf_counter()
    text = recognizer.finalize()
    final = time.perf_counter() - begin
    return Pass(calls[1:], final, sum(calls[1:]) + final, text)


def _utterance_pass(model: OnnxWhisper, audio: np.ndarray) -> Pass:
    """`audio` through the in-process transcriber, each utterance's transcription timed."""
    from audiodistill.edge.transcribe import WindowEngine, audio_pieces, run_session

    latencies, texts = [], []

    def transcribe(utterance: np.ndarray) -> str:
        begin = time.perf_counter()
        texts.append(model.transcribe([utterance])[0])
        latencies.append(time.perf_counter() - begin)
        return texts[-1]

    begin = time.perf_counter()
    run_session(WindowEngine(transcribe), audio_pieces(audio), lambda event: None)
    total = time.perf_counter() - begin
    if not latencies:
        raise DataError("no speech in the audio: nothing for whisper-distil to transcribe")
    return Pass(latencies, latencies[-1], total, " ".join(t for t in texts if t))


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def run_bench(options: BenchOptions) -> dict:
    """Measure one model on one backend; the report as a JSON-ready dict."""
    if options.runs < 1 or options.threads < 1:
        raise ConfigError("runs and threads must be >= 1")
    loaded = _load_onnx(options) if options.backend == "onnx" else _load_torch(options)
    if options.audio:
        from audiodistill.data.audio import load_audio

        audio, source = load_audio(options.audio), options.audio
    else:
        audio = bench_audio()
        source = f"built-in: {BENCH_SECONDS:g} s of tones and noise (numpy, seed {BENCH_SEED})"
    audio_s = len(audio) / SAMPLE_RATE
    loaded.timed_pass(audio)  # warm-up: allocations, lazy init
    progress = Progress(f"bench {options.model}", options.runs, unit="timed passes")
    passes = []
    for _ in range(options.runs):
        passes.append(loaded.timed_pass(audio))
        progress.step()
    latency_ms = 1000 * np.asarray([s for p in passes for s in p.latencies])
    return {
        "model": str(options.model),
        "kind": loaded.kind,
        "backend": options.backend,
        "int8": options.int8,
        "threads": options.threads,
        "model_file": " + ".join(f.name for f in loaded.model_files),
        "size_bytes": sum(f.stat().st_size for f in loaded.model_files),
        "audio": source,
        "audio_seconds": audio_s,
        "chunk_ms": loaded.chunk_ms,
        "runs": options.runs,
        "import_s": loaded.import_s,
        "load_s": loaded.load_s,
        "rtf": float(np.median([p.total_s / audio_s for p in passes])),
        "chunk_latency_p50_ms": float(np.percentile(latency_ms, 50)),
        "chunk_latency_p95_ms": float(np.percentile(latency_ms, 95)),
        "chunk_latency_p99_ms": float(np.percentile(latency_ms, 99)),
        "end_to_final_ms": 1000 * float(np.median([p.final_s for p in passes])),
        "peak_rss_mb": _peak_rss_mb(),
        "text": passes[-1].text,
    }


def summary_line(report: dict) -> str:
    """One line for a terminal or a log."""
    backend = report["backend"] + (" int8" if report["int8"] else "")
    step = f"chunk ({report['chunk_ms']} ms)" if report["chunk_ms"] else "utterance"
    return (
        f"{backend}, {report['threads']} thread(s), {report['kind']}: RTF {report['rtf']:.4f}, "
        f"{step} p50/p95/p99 {report['chunk_latency_p50_ms']:.1f}/"
        f"{report['chunk_latency_p95_ms']:.1f}/{report['chunk_latency_p99_ms']:.1f} ms, "
        f"end-of-audio to final {report['end_to_final_ms']:.1f} ms, "
        f"load {report['import_s'] + report['load_s']:.2f} s, "
        f"peak RSS {report['peak_rss_mb']:.0f} MB, "
        f"{report['model_file']} {report['size_bytes'] / 1e6:.2f} MB"
    )


def run(options: BenchOptions) -> dict:
    """The `bench` command: measure, write --out if given, return the report."""
    report = run_bench(options)
    if options.out:
        Path(options.out).parent.mkdir(parents=True, exist_ok=True)
        Path(options.out).write_text(json.dumps(report, indent=2))
    return report
