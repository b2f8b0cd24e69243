"""One measurement for every model, teacher or student: WER/CER, RTF, latency, size, memory.

Training (dev WER), the quickstart report and `audiodistill eval` all call `evaluate`, so a
figure means the same thing wherever it appears. Transcription runs one utterance at a time
on a fixed thread count: RTF is the cost a single stream pays, not batch throughput.

`run` scores each model in a fresh process, so its peak memory is that model's alone;
`pipelines.evaluate` does the same on Ray actors and splits the utterances over several.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from audiodistill.config import ConfigError
from audiodistill.data.audio import SAMPLE_RATE, load_audio
from audiodistill.data.manifest import Utterance, read_manifest
from audiodistill.decoding.words import Word
from audiodistill.errors import DataError, ModelError
from audiodistill.evaluation.wer import cer, corpus_wer, paired_wer_difference
from audiodistill.progress import Progress

AGREEMENT = "agreement_wer"  # ModelReport.metric of scores against the first model
# config.json "student" of `audiodistill export` directories (edge/recognizer.py, edge/whisper.py)
ONNX_STREAMING, ONNX_WHISPER = "streaming-onnx", "whisper-distil-onnx"
ONNX_CAUSAL = "whisper-causal-onnx"


@dataclass
class EvalModel:
    """A loaded model as evaluation sees it: a name, a size, and a way to transcribe."""

    name: str  # what the report calls it
    kind: str  # teacher backend or student kind
    parameters: int  # trainable and frozen weights (tied weights counted once)
    size_bytes: int  # weights on disk
    # (audios) -> texts, and (audios, prompt=text) where takes_prompt
    transcribe: Callable[..., list[str]]
    takes_prompt: bool = False  # conditions on an OpenAI-style text prompt (Whisper-type)
    # streaming models: a fresh StreamingRecognizer (accept/finalize), else None
    recognizer: Callable[[], Any] | None = None
    # streaming models: audio per accept() call, the chunk the model was exported for
    chunk_ms: int = 0
    # Whisper-type models: (audios, prompt=None) -> each clip's timed words (streaming
    # students time theirs from the frames a live stream gives: serving.ServedModel)
    transcribe_words: Callable[..., list[list[Word]]] | None = None

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(self.name, self.kind, self.parameters, self.size_bytes)


@dataclass(frozen=True)
class ModelInfo:
    """What a report says about a model besides its measurements (picklable, unlike EvalModel)."""

    name: str
    kind: str
    parameters: int
    size_bytes: int


@dataclass
class Measurements:
    """Raw timings and hypotheses of one model over utterances in manifest order."""

    hypotheses: list[str]
    seconds: list[float]  # processing time of each utterance, transcribed alone
    audio_seconds: float
    peak_rss_mb: float  # high-water mark of the measuring process (MiB)
    chunk_latencies_s: list[float] | None = None  # streaming: each accept() of one chunk
    final_latencies_s: list[float] | None = None  # streaming: finalize() after the last audio


@dataclass
class ModelReport:
    name: str
    kind: str
    utterances: int
    audio_seconds: float
    wer: float
    cer: float
    substitutions: int
    insertions: int
    deletions: int
    rtf: float  # processing seconds per audio second, one utterance at a time
    latency_p50_s: float  # per-utterance processing time
    latency_p95_s: float
    latency_p99_s: float
    parameters: int
    size_mb: float
    peak_rss_mb: float  # peak RSS of a process that loaded only this model (MiB)
    # streaming models only (None otherwise): one accept() call per chunk of audio
    chunk_latency_p50_s: float | None = None
    chunk_latency_p95_s: float | None = None
    # streaming models only: end of audio to final text (the finalize() call)
    final_latency_p50_s: float | None = None
    final_latency_p95_s: float | None = None
    # the raw samples behind the streaming percentiles, for a CDF
    chunk_latencies_s: list[float] | None = None
    final_latencies_s: list[float] | None = None
    # the command that reproduces this row
    command: str = ""
    # WER minus the first model's on the same utterances (the teacher, listed first), with a
    # 95% paired bootstrap interval over utterances (metrics.paired_wer_difference); None on
    # the first model's row
    wer_delta: float | None = None
    wer_delta_low: float | None = None
    wer_delta_high: float | None = None
    # what `wer` and `cer` measure: "wer" against the manifest's transcripts, or
    # "agreement_wer" against `reference_model`'s transcripts (recordings without any)
    metric: str = "wer"
    reference_model: str | None = None
    # eval words=true: word-boundary errors on the known-boundary clips
    # (word_timing.WordTiming as a dict); None otherwise
    word_timing: dict | None = None


@dataclass(frozen=True)
class EvalOptions:
    # models to compare: exported student dirs, CTranslate2 or transformers Whisper dirs, or
    # "teacher:ct2" / "teacher:hf" for the bundled tiny.en in either backend
    # ("teacher:hf-fill": transformers with whisper-distil's window fill); or codec
    # directories (all of them then; the first is the reference, see codec/codec_report.py)
    models: tuple[str, ...] = ("teacher:ct2",)
    # manifest (any format read_manifest accepts), with or without reference texts
    data: str = "data/synth/manifest.jsonl"
    # what hypotheses are scored against: "text" (the manifest's transcripts, on every row),
    # "first_model" (the first model's transcripts: agreement WER, for recordings nobody
    # transcribed; list the teacher first), or "auto" (text when every row has one)
    reference: Literal["auto", "text", "first_model"] = "auto"
    # split to score (None: every utterance)
    split: str | None = "test"
    # score only the first N utterances (None: all)
    limit: int | None = None
    # CPU threads per model: 1 is the edge figure the targets are quoted at
    threads: int = 1
    # what the data is, printed on every table ("auto": synthetic when the manifest says so)
    data_label: str = "auto"
    # report.json and report.md go here
    out: str = "runs/eval"
    # ct2 weight type for CTranslate2 teachers
    compute_type: str = "int8"
    # Ray actors per model, each scoring a contiguous share of the utterances (1: no Ray,
    # one fresh process per model; > 1 needs pipelines.evaluate, which `audiodistill eval` uses)
    workers: int = 1
    # also time words: each model's word-boundary errors on TTS clips whose word times are
    # known (audiodistill.evaluation.word_timing), not on `data`; runs here, so workers must be 1
    words: bool = False

    def __post_init__(self) -> None:
        if self.words and self.workers > 1:
            raise ValueError("words=true runs without Ray: set workers=1")


def directory_size(
    path: str | Path, suffixes=(".bin", ".safetensors", ".onnx", ".arpa")
) -> int:
    """Bytes of weight files under a model directory, and of the LM a decoder reads."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.suffix in suffixes)


def _torch_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _ct2_teacher(
    path: str | None, name: str, threads: int, compute_type: str, workers: int = 1
) -> EvalModel:
    from audiodistill.teachers import TeacherOptions, build_teacher
    from audiodistill.teachers.bundled import bundled_ct2_dir
    from audiodistill.teachers.convert import read_ct2_model

    model_dir = Path(path) if path else bundled_ct2_dir()
    teacher = build_teacher(
        TeacherOptions(
            backend="ct2", model=path, threads=threads, compute_type=compute_type, workers=workers
        )
    )
    _, variables = read_ct2_model(model_dir / "model.bin")
    # quantization scales are not weights; aliases (tied embeddings) count once
    arrays = {id(v): v for k, v in variables.items() if not k.endswith("_scale")}
    return EvalModel(
        name=f"{name} (ct2 {compute_type})",
        kind="teacher",
        parameters=sum(a.size for a in arrays.values()),
        size_bytes=directory_size(model_dir),
        transcribe=lambda audios, prompt=None: [t.text for t in teacher.transcribe(audios, prompt)],
        takes_prompt=True,
        transcribe_words=teacher.transcribe_words,
    )


def _hf_teacher(path: str | None, threads: int) -> EvalModel:
    from audiodistill.teachers import TeacherOptions, build_teacher
    from audiodistill.teachers.convert import ensure_bundled_hf

    teacher = build_teacher(TeacherOptions(backend="hf", model=path, threads=threads, top_k=1))
    return EvalModel(
        name=f"{teacher.name} (transformers)",
        kind="teacher",
        parameters=_torch_parameters(teacher.model),
        size_bytes=directory_size(path or ensure_bundled_hf()),
        transcribe=lambda audios, prompt=None: [t.text for t in teacher.transcribe(audios, prompt)],
        takes_prompt=True,
        transcribe_words=teacher.transcribe_words,
    )


def _student(path: str, threads: int) -> EvalModel:
    import torch

    from audiodistill.students.registry import load_model

    torch.set_num_threads(threads)
    student = load_model(path)
    kind = json.loads((Path(path) / "config.json").read_text())["student"]
    streaming = kind == "streaming"
    # streams chunk by chunk (accept/finalize): the streaming students and whisper-causal
    recognizer = getattr(student, "recognizer", None)
    return EvalModel(
        name=Path(path).name if Path(path).name != "model" else Path(path).parent.name,
        kind=kind,
        # a student that holds weights it never runs counts only those it does
        parameters=getattr(student, "parameter_count", None)
        or _torch_parameters(getattr(student, "model", student)),
        size_bytes=directory_size(path),
        transcribe=student.transcribe,
        takes_prompt=not streaming,
        recognizer=recognizer,
        chunk_ms=student.model.config.chunk_ms if streaming else getattr(student, "chunk_ms", 0),
        # streaming students time words from a live stream's frames (serving.ServedModel)
        transcribe_words=None if streaming else getattr(student, "transcribe_words", None),
    )


def _filled_teacher(threads: int) -> EvalModel:
    """The bundled teacher with whisper-distil's window fill and nothing else changed: every
    decoder layer kept, the encoder run on the audio and a 1 s tail, its output filled to the
    30 s window (students/whisper_distil.py). The strongest baseline for a student that uses
    the same trick."""
    import torch

    from audiodistill.students.whisper_distil import filled_teacher_task
    from audiodistill.teachers.bundled import BUNDLED_NAME
    from audiodistill.teachers.convert import ensure_bundled_hf

    torch.set_num_threads(threads)
    task = filled_teacher_task()
    model = task.build().eval()
    return EvalModel(
        name=f"{BUNDLED_NAME} (transformers, window fill)",
        kind="teacher",
        parameters=_torch_parameters(model),
        size_bytes=directory_size(ensure_bundled_hf()),
        transcribe=lambda audios, prompt=None: task.transcribe(model, audios),
    )


def onnx_parameters(path: str | Path) -> int:
    """Weights in an ONNX graph: every initializer's element count (int8 ones included)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return sum(int(np.prod(t.dims)) for t in graph.initializer)


def _onnx_export(path: str, threads: int) -> EvalModel:
    """An `audiodistill export` directory, run by the edge runtime: its int8 graph when it
    has one (what a release ships), else fp32."""
    from audiodistill.edge.causal import OnnxCausalWhisper
    from audiodistill.edge.recognizer import EXPORT_KIND, load_onnx_model
    from audiodistill.edge.whisper import OnnxWhisper

    config = json.loads((Path(path) / "config.json").read_text())
    int8 = "int8" in config["models"]
    graphs = config["models"]["int8" if int8 else "fp32"]
    files = graphs.values() if isinstance(graphs, dict) else [graphs]
    parameters = sum(onnx_parameters(Path(path) / f) for f in files)
    # the graphs run, and the LM a decoder reads; not the other precision's graphs
    size = sum((Path(path) / f).stat().st_size for f in [*files, "lm.arpa"]
               if (Path(path) / f).is_file())  # fmt: skip
    name = f"{Path(path).name} (onnx {'int8' if int8 else 'fp32'})"
    if config["student"] == EXPORT_KIND:
        model = load_onnx_model(path, int8=int8, threads=threads)
        return EvalModel(
            name=name,
            kind="streaming",
            parameters=parameters,
            size_bytes=size,
            transcribe=model.transcribe,
            recognizer=model.recognizer,
            chunk_ms=int(config["chunk_ms"]),
        )
    if config["student"] == ONNX_CAUSAL:
        causal = OnnxCausalWhisper(path, int8=int8, threads=threads)
        return EvalModel(name, "whisper-causal", parameters, size, causal.transcribe,
                         recognizer=causal.recognizer, chunk_ms=causal.chunk_ms,
                         transcribe_words=causal.transcribe_words)  # fmt: skip
    model = OnnxWhisper(path, int8=int8, threads=threads)
    kind, words = "whisper-distil", model.transcribe_words
    return EvalModel(name, kind, parameters, size, model.transcribe, transcribe_words=words)


def load_eval_model(
    spec: str, threads: int = 1, compute_type: str = "int8", workers: int = 1
) -> EvalModel:
    """A model from a spec: "teacher:ct2", "teacher:hf", "teacher:hf-fill" (the window fill,
    `_filled_teacher`), or a directory of any known kind. `workers`: batches a CTranslate2
    model runs at once from as many threads (the others run concurrent calls as they come)."""
    from audiodistill.teachers.bundled import BUNDLED_NAME

    if spec == "teacher:ct2":
        return _ct2_teacher(None, BUNDLED_NAME, threads, compute_type, workers)
    if spec == "teacher:hf":
        return _hf_teacher(None, threads)
    if spec == "teacher:hf-fill":
        return _filled_teacher(threads)
    path = Path(spec)
    if (path / "model.bin").is_file():
        return _ct2_teacher(spec, path.name, threads, compute_type, workers)
    config = path / "config.json"
    if not config.is_file():
        raise ModelError(
            f"{spec}: not a model (want teacher:ct2, teacher:hf, or a model directory)"
        )
    student = json.loads(config.read_text()).get("student")
    if student in (ONNX_STREAMING, ONNX_WHISPER, ONNX_CAUSAL):
        return _onnx_export(spec, threads)
    if student:
        return _student(spec, threads)
    return _hf_teacher(spec, threads)


def data_label(utterances: Sequence[Utterance], label: str) -> str:
    """'synthetic speech (TTS)' when the corpus came from `audiodistill synth`."""
    if label != "auto":
        return label
    if utterances and all("augmentation" in u.meta for u in utterances):
        return "synthetic speech (TTS, project-generated texts), not real recordings"
    return "recorded speech"


def reset_peak_rss() -> None:
    """Restart the process's memory high-water mark at its current RSS (Linux), so a reused
    worker process does not report an earlier job's peak. Elsewhere the process peak stays."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """The process's peak resident set size since start or the last reset, in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def _percentile(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(samples, q)) if len(samples) else 0.0


def _stream_latencies(model: EvalModel, audios: Sequence[np.ndarray], warmup: int):
    """Feed each utterance in chunk-sized pieces: (seconds per accept(), seconds per finalize())."""
    recognizer = model.recognizer()
    piece = model.chunk_ms * SAMPLE_RATE // 1000
    chunks, finals = [], []
    for i, audio in enumerate([*audios[:warmup], *audios]):
        calls = []
        for start in range(0, len(audio), piece):
            begin = time.perf_counter()
            recognizer.accept(audio[start : start + piece])
            calls.append(time.perf_counter() - begin)
        begin = time.perf_counter()
        recognizer.finalize()  # resets the recognizer for the next utterance
        if i >= warmup:  # warm-up passes pay first-call costs, not streaming latency
            chunks.extend(calls)
            finals.append(time.perf_counter() - begin)
    return chunks, finals


def measure(model: EvalModel, utterances: Sequence[Utterance], warmup: int = 1) -> Measurements:
    """Transcribe each utterance alone, timing it; streaming models are also streamed."""
    audios = [load_audio(u.source) for u in utterances]
    for audio in audios[:warmup]:
        model.transcribe([audio])  # first-call costs (allocation, lazy init) are not RTF
    hypotheses, seconds = [], []
    progress = Progress(f"eval {model.name}", len(audios))
    for audio in audios:
        start = time.perf_counter()
        hypotheses.extend(model.transcribe([audio]))
        seconds.append(time.perf_counter() - start)
        progress.step()
    chunks = finals = None
    if model.recognizer is not None:
        chunks, finals = _stream_latencies(model, audios, warmup)
    return Measurements(
        hypotheses=hypotheses,
        seconds=seconds,
        audio_seconds=sum(len(a) for a in audios) / SAMPLE_RATE,
        peak_rss_mb=peak_rss_mb(),
        chunk_latencies_s=chunks,
        final_latencies_s=finals,
    )


def merge_measurements(parts: Sequence[Measurements]) -> Measurements:
    """Shards of one model's utterances, given in manifest order, as one measurement; the
    peak memory is the largest of the shards' processes (each holds the whole model)."""

    def joined(name: str) -> list[float] | None:
        lists = [getattr(p, name) for p in parts]
        return None if lists[0] is None else [x for samples in lists for x in samples]

    return Measurements(
        hypotheses=[h for p in parts for h in p.hypotheses],
        seconds=[s for p in parts for s in p.seconds],
        audio_seconds=sum(p.audio_seconds for p in parts),
        peak_rss_mb=max(p.peak_rss_mb for p in parts),
        chunk_latencies_s=joined("chunk_latencies_s"),
        final_latencies_s=joined("final_latencies_s"),
    )


def summarize(
    info: ModelInfo,
    utterances: Sequence[Utterance],
    m: Measurements,
    command: str = "",
    baseline: Sequence[str] | None = None,
) -> ModelReport:
    """Score hypotheses against the references and reduce timings to the report's figures;
    with `baseline` (another model's hypotheses), the WER difference to it too."""
    references = [u.text or "" for u in utterances]
    counts = corpus_wer(references, m.hypotheses)
    chunks, finals = m.chunk_latencies_s, m.final_latencies_s
    delta = (None, None, None)
    if baseline is not None:
        delta = paired_wer_difference(references, baseline, m.hypotheses)
    return ModelReport(
        name=info.name,
        kind=info.kind,
        utterances=len(utterances),
        audio_seconds=m.audio_seconds,
        wer=counts.wer,
        cer=cer(" ".join(references), " ".join(m.hypotheses)),
        substitutions=counts.substitutions,
        insertions=counts.insertions,
        deletions=counts.deletions,
        rtf=sum(m.seconds) / max(m.audio_seconds, 1e-9),
        latency_p50_s=_percentile(m.seconds, 50),
        latency_p95_s=_percentile(m.seconds, 95),
        latency_p99_s=_percentile(m.seconds, 99),
        parameters=info.parameters,
        size_mb=info.size_bytes / 1e6,
        peak_rss_mb=m.peak_rss_mb,
        chunk_latency_p50_s=None if chunks is None else _percentile(chunks, 50),
        chunk_latency_p95_s=None if chunks is None else _percentile(chunks, 95),
        final_latency_p50_s=None if finals is None else _percentile(finals, 50),
        final_latency_p95_s=None if finals is None else _percentile(finals, 95),
        chunk_latencies_s=chunks,
        final_latencies_s=finals,
        command=command,
        wer_delta=delta[0],
        wer_delta_low=delta[1],
        wer_delta_high=delta[2],
    )


def evaluate(
    model: EvalModel, utterances: Sequence[Utterance], warmup: int = 1
) -> tuple[ModelReport, list[str]]:
    """Transcribe each utterance alone; score against references. Returns hypotheses too.

    Peak memory is this process's: meaningful when the process loaded only this model."""
    m = measure(model, utterances, warmup)
    return summarize(model.info, utterances, m), m.hypotheses


def measure_spec(
    spec: str, threads: int, compute_type: str, utterances: Sequence[Utterance]
) -> tuple[ModelInfo, Measurements]:
    """Load one model and measure it; run in a process of its own for its peak memory."""
    reset_peak_rss()
    model = load_eval_model(spec, threads, compute_type)
    return model.info, measure(model, utterances)


def _in_fresh_process(fn: Callable, *args):
    # spawn, not fork: a forked child would inherit (and count) the parent's memory
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.0f} ms"


def wer_delta_text(report: dict) -> str:
    """A report row's WER difference to the first model scored, in points: "+2.4 (+0.9 to +4.1)"."""
    if report.get("wer_delta") is None:
        return "n/a"
    low, high = report["wer_delta_low"] * 100, report["wer_delta_high"] * 100
    return f"{report['wer_delta'] * 100:+.1f} ({low:+.1f} to {high:+.1f})"


def markdown_table(reports: Sequence[ModelReport], data_label: str) -> str:
    """Teacher and students side by side, labelled with the data they were measured on.

    Agreement figures (no transcripts: scored against the first model) get their own header
    and the reference model's row says so instead of a 0% WER."""
    agreement = bool(reports) and reports[0].metric == AGREEMENT
    wer = f"agreement WER vs {reports[0].name}" if agreement else "WER"
    lines = [
        f"Measured on: {data_label}",
        "",
        f"| model | kind | {wer} | WER vs first model (95% CI) | CER | RTF (1 thread) "
        "| latency p50 / p95 / p99 | peak RSS | parameters | size |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, r in enumerate(reports):
        latency = " / ".join(_ms(s) for s in (r.latency_p50_s, r.latency_p95_s, r.latency_p99_s))
        scores = f"{r.wer * 100:.1f}% | {wer_delta_text(vars(r))} | {r.cer * 100:.1f}%"
        if agreement and i == 0:
            scores = "reference | n/a | reference"
        lines.append(
            f"| {r.name} | {r.kind} | {scores} | {r.rtf:.3f} | "
            f"{latency} | {r.peak_rss_mb:.0f} MiB | {r.parameters / 1e6:.1f}M | "
            f"{r.size_mb:.1f} MB |"
        )
    streaming = [r for r in reports if r.chunk_latency_p50_s is not None]
    if streaming:
        lines += [
            "",
            "| streaming model | chunk latency p50 / p95 | end of audio to final p50 / p95 |",
            "| --- | ---: | ---: |",
        ]
        lines += [
            f"| {r.name} | {_ms(r.chunk_latency_p50_s)} / {_ms(r.chunk_latency_p95_s)} | "
            f"{_ms(r.final_latency_p50_s)} / {_ms(r.final_latency_p95_s)} |"
            for r in streaming
        ]
    timed = [(r.name, r.word_timing) for r in reports if r.word_timing is not None]
    if timed:
        from audiodistill.evaluation.word_timing import markdown_table as word_table

        lines += ["", word_table(timed)]
    return "\n".join(lines) + "\n"


def eval_command(options: EvalOptions, spec: str, reference: str | None = None) -> str:
    """The `audiodistill eval` command line that scores `spec` as `options` did; scored for
    agreement, the `reference` model it was scored against comes first."""
    models = [reference, spec] if reference and reference != spec else [spec]
    parts = ["audiodistill", "eval", *(a for m in models for a in ("--model", m))]
    parts += ["--data", options.data]
    defaults = EvalOptions()
    for f in fields(options):
        value = getattr(options, f.name)
        if f.name in ("models", "data") or value == getattr(defaults, f.name):
            continue
        plain = isinstance(value, str) and yaml.safe_load(value) == value
        parts.append(f"{f.name}={value if plain else json.dumps(value)}")
    return shlex.join(parts)


def write_reports(
    reports: Sequence[ModelReport], out: str | Path, data_label: str, **about: Any
) -> dict:
    """report.json (with `about`: manifest, split), report.md and plots/*.png under `out`."""
    from audiodistill.evaluation.plots import write_plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"data": data_label, **about, "models": [asdict(r) for r in reports]}
    (out / "report.json").write_text(json.dumps(payload, indent=2))
    (out / "report.md").write_text(markdown_table(reports, data_label))
    write_plots(payload, out / "plots")
    return payload


def load_utterances(options: EvalOptions) -> list[Utterance]:
    """The utterances to score (with a reference text on every row unless the reference is
    the first model)."""
    utterances = read_manifest(options.data, options.split)[: options.limit]
    if not utterances:
        raise DataError(f"{options.data}: no utterances in split {options.split!r}")
    if options.reference == "text" and any(u.text is None for u in utterances):
        raise DataError(
            f"{options.data}: reference=text needs a transcript on every row; "
            "reference=first_model scores agreement with the first model instead"
        )
    if scores_agreement(options, utterances) and len(options.models) < 2:
        raise ConfigError(
            f"{options.data}: without transcripts models are scored against the first one "
            "listed (agreement): list the teacher first, then the models to score"
        )
    return utterances


def scores_agreement(options: EvalOptions, utterances: Sequence[Utterance]) -> bool:
    """Whether hypotheses are scored against the first model's (agreement WER)."""
    if options.reference == "auto":
        return any(u.text is None for u in utterances)
    return options.reference == "first_model"


def write_results(
    options: EvalOptions,
    utterances: Sequence[Utterance],
    measured: Sequence[tuple[ModelInfo, Measurements]],
    word_timings: Sequence[dict] | None = None,
) -> list[ModelReport]:
    """Reports, hypotheses.jsonl and config.yaml for models measured (in order) on `utterances`
    (with `word_timings`, each model's word-boundary errors, in the same order)."""
    from audiodistill.config import save_config

    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(options, out / "config.yaml")
    agreement = scores_agreement(options, utterances)
    if agreement:  # the first model's transcripts are the references
        first = measured[0][1].hypotheses
        utterances = [replace(u, text=h) for u, h in zip(utterances, first, strict=True)]
    reports = []
    with open(out / "hypotheses.jsonl", "w") as f:
        first = measured[0][1].hypotheses  # every other model is compared with this one
        for index, (spec, (info, m)) in enumerate(zip(options.models, measured, strict=True)):
            baseline = first if index and not agreement else None
            command = eval_command(options, spec, options.models[0] if agreement else None)
            report = summarize(info, utterances, m, command, baseline)
            if agreement:
                report = replace(report, metric=AGREEMENT, reference_model=measured[0][0].name)
            if word_timings is not None:
                report = replace(report, word_timing=word_timings[index])
            reports.append(report)
            for u, hypothesis in zip(utterances, m.hypotheses, strict=True):
                row = {
                    "model": info.name,
                    "id": u.id,
                    "reference": u.text,
                    "hypothesis": hypothesis,
                }
                f.write(json.dumps(row) + "\n")
    label = data_label(utterances, options.data_label)
    if agreement:
        label += f"; no transcripts: scored against {measured[0][0].name} (agreement)"
    about = {"manifest": options.data, "split": options.split, "utterances": len(utterances)}
    write_reports(reports, out, label, **about)
    return reports


def run(options: EvalOptions) -> list[ModelReport]:
    """Score every model, each in a fresh process, on the same utterances; write the reports."""
    if options.workers > 1:
        raise ValueError("workers > 1 scores on Ray: use pipelines.evaluate.run")
    utterances = load_utterances(options)
    measured = [
        _in_fresh_process(measure_spec, spec, options.threads, options.compute_type, utterances)
        for spec in options.models
    ]
    timings = None
    if options.words:
        from audiodistill.evaluation.word_timing import measure_spec as time_words

        timings = [_in_fresh_process(time_words, spec, options.threads) for spec in options.models]
    return write_results(options, utterances, measured, timings)
