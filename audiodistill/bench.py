"""`audiodistill bench`: the edge benchmark of a streaming student on one backend.

Audio is fed the way a microphone delivers it, one chunk's worth of samples per call, and
every call is timed. Figures (all on `threads` CPU threads, one stream):

- rtf: processing seconds per audio second over a whole pass (median of `runs` passes);
- chunk latency p50/p95/p99: the time of one call that runs one chunk step (features,
  model, decode), pooled over the passes. The first call of a pass only fills the 25 ms
  feature window and runs no step, so it is left out;
- end_to_final_ms: from the end of the audio (the last piece accepted) to the final text,
  i.e. the `finalize` call that runs the last, shorter chunk (median over passes);
- load: importing the backend and loading the model; peak RSS of the process; model size.

The onnx backend imports only numpy, onnxruntime and this package's edge runtime, so it runs
on an `audiodistill[edge]` install. Without --audio the clip is built in (`bench_audio`):
deterministic, made with numpy, so every device measures the same input. The streaming
model's cost per chunk does not depend on what is said, so it times like speech; pass a
recording with --audio to see a real transcript as well.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from audiodistill.audio import SAMPLE_RATE

BENCH_SECONDS = 10.0  # length of the built-in clip
BENCH_SEED = 0
TONE_SECONDS = 0.06  # the built-in clip changes every 60 ms, about a phone's length


@dataclass(frozen=True)
class BenchOptions:
    # onnx: a directory written by `audiodistill export`; torch: a saved streaming student
    model: str
    # runtime to measure: onnx (ONNX Runtime, no torch needed) or torch (PyTorch eager)
    backend: Literal["torch", "onnx"] = "onnx"
    # onnx only: run the export's model.int8.onnx instead of model.onnx
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
class LoadedModel:
    recognizer: Recognizer
    chunk_ms: int
    model_file: Path  # the weights file the backend reads
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
    from audiodistill.edge.recognizer import load_onnx_model

    imported = time.perf_counter()
    model = load_onnx_model(options.model, options.int8, options.threads)
    recognizer = model.recognizer()
    loaded = time.perf_counter()
    return LoadedModel(
        recognizer,
        int(model.config["chunk_ms"]),
        model.model_path,
        imported - start,
        loaded - imported,
    )


def _load_torch(options: BenchOptions) -> LoadedModel:
    if options.int8:
        raise ValueError("int8 is an ONNX export; use --backend onnx --int8")
    start = time.perf_counter()
    import torch

    from audiodistill.students.streaming import WEIGHTS_FILE, load_student

    imported = time.perf_counter()
    torch.set_num_threads(options.threads)
    student = load_student(options.model)
    recognizer = student.recognizer()
    loaded = time.perf_counter()
    return LoadedModel(
        recognizer,
        student.model.config.chunk_ms,
        Path(options.model) / WEIGHTS_FILE,
        imported - start,
        loaded - imported,
    )


def _timed_pass(
    recognizer: Recognizer, audio: np.ndarray, piece: int
) -> tuple[list[float], float, str]:
    """One stream over `audio` in `piece`-sample calls: (chunk call seconds, finalize
    seconds, final text)."""
    calls = []
    for start in range(0, len(audio), piece):
        begin = time.perf_counter()
        recognizer.accept(audio[start : start + piece])
        calls.append(time.perf_counter() - begin)
    begin = time.perf_counter()
    text = recognizer.finalize()
    return calls[1:], time.perf_counter() - begin, text


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def run_bench(options: BenchOptions) -> dict:
    """Measure one model on one backend; the report as a JSON-ready dict."""
    if options.runs < 1 or options.threads < 1:
        raise ValueError("runs and threads must be >= 1")
    loaded = _load_onnx(options) if options.backend == "onnx" else _load_torch(options)
    if options.audio:
        from audiodistill.audio import load_audio

        audio, source = load_audio(options.audio), options.audio
    else:
        audio = bench_audio()
        source = f"built-in: {BENCH_SECONDS:g} s of tones and noise (numpy, seed {BENCH_SEED})"
    piece = loaded.chunk_ms * SAMPLE_RATE // 1000
    audio_s = len(audio) / SAMPLE_RATE
    _timed_pass(loaded.recognizer, audio, piece)  # warm-up: allocations, lazy init
    chunk_s, final_s, rtfs = [], [], []
    for _ in range(options.runs):
        calls, final, text = _timed_pass(loaded.recognizer, audio, piece)
        chunk_s.extend(calls)
        final_s.append(final)
        rtfs.append((sum(calls) + final) / audio_s)
    chunk_ms = 1000 * np.asarray(chunk_s)
    return {
        "model": str(options.model),
        "backend": options.backend,
        "int8": options.int8,
        "threads": options.threads,
        "model_file": loaded.model_file.name,
        "size_bytes": loaded.model_file.stat().st_size,
        "audio": source,
        "audio_seconds": audio_s,
        "chunk_ms": loaded.chunk_ms,
        "runs": options.runs,
        "import_s": loaded.import_s,
        "load_s": loaded.load_s,
        "rtf": float(np.median(rtfs)),
        "chunk_latency_p50_ms": float(np.percentile(chunk_ms, 50)),
        "chunk_latency_p95_ms": float(np.percentile(chunk_ms, 95)),
        "chunk_latency_p99_ms": float(np.percentile(chunk_ms, 99)),
        "end_to_final_ms": 1000 * float(np.median(final_s)),
        "peak_rss_mb": _peak_rss_mb(),
        "text": text,
    }


def summary_line(report: dict) -> str:
    """One line for a terminal or a log."""
    backend = report["backend"] + (" int8" if report["int8"] else "")
    return (
        f"{backend}, {report['threads']} thread(s): RTF {report['rtf']:.4f}, chunk "
        f"({report['chunk_ms']} ms) p50/p95/p99 {report['chunk_latency_p50_ms']:.1f}/"
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
