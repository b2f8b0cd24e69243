"""One measurement for every model, teacher or student: WER/CER, RTF, size.

Training (dev WER), the quickstart report and `audiodistill eval` all call `evaluate`, so a
figure means the same thing wherever it appears. Transcription runs one utterance at a time
on a fixed thread count: RTF is the cost a single stream pays, not batch throughput.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from audiodistill.audio import SAMPLE_RATE, load_audio
from audiodistill.manifest import Utterance, read_manifest
from audiodistill.metrics import cer, corpus_wer


@dataclass
class EvalModel:
    """A loaded model as evaluation sees it: a name, a size, and a way to transcribe."""

    name: str  # what the report calls it
    kind: str  # teacher backend or student kind
    parameters: int  # trainable and frozen weights (tied weights counted once)
    size_bytes: int  # weights on disk
    transcribe: Callable[[Sequence[np.ndarray]], list[str]]


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
    parameters: int
    size_mb: float


@dataclass(frozen=True)
class EvalOptions:
    # models to compare: exported student dirs, CTranslate2 or transformers Whisper dirs, or
    # "teacher:ct2" / "teacher:hf" for the bundled tiny.en in either backend
    models: tuple[str, ...] = ("teacher:ct2",)
    # manifest (any format read_manifest accepts) with reference texts
    data: str = "data/synth/manifest.jsonl"
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


def directory_size(path: str | Path, suffixes=(".bin", ".safetensors", ".onnx")) -> int:
    """Bytes of weight files under a model directory."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.suffix in suffixes)


def _torch_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _ct2_teacher(path: str | None, name: str, threads: int, compute_type: str) -> EvalModel:
    from audiodistill.teachers import TeacherOptions, build_teacher
    from audiodistill.teachers.bundled import bundled_ct2_dir
    from audiodistill.teachers.convert import read_ct2_model

    model_dir = Path(path) if path else bundled_ct2_dir()
    teacher = build_teacher(
        TeacherOptions(backend="ct2", model=path, threads=threads, compute_type=compute_type)
    )
    _, variables = read_ct2_model(model_dir / "model.bin")
    # quantization scales are not weights; aliases (tied embeddings) count once
    arrays = {id(v): v for k, v in variables.items() if not k.endswith("_scale")}
    return EvalModel(
        name=f"{name} (ct2 {compute_type})",
        kind="teacher",
        parameters=sum(a.size for a in arrays.values()),
        size_bytes=directory_size(model_dir),
        transcribe=lambda audios: [t.text for t in teacher.transcribe(audios)],
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
        transcribe=lambda audios: [t.text for t in teacher.transcribe(audios)],
    )


def _student(path: str, threads: int) -> EvalModel:
    import torch

    from audiodistill.students.registry import load_model

    torch.set_num_threads(threads)
    student = load_model(path)
    kind = json.loads((Path(path) / "config.json").read_text())["student"]
    return EvalModel(
        name=Path(path).name if Path(path).name != "model" else Path(path).parent.name,
        kind=kind,
        parameters=_torch_parameters(getattr(student, "model", student)),
        size_bytes=directory_size(path),
        transcribe=student.transcribe,
    )


def load_eval_model(spec: str, threads: int = 1, compute_type: str = "int8") -> EvalModel:
    """A model from a spec: "teacher:ct2", "teacher:hf", or a directory of any known kind."""
    from audiodistill.teachers.bundled import BUNDLED_NAME

    if spec == "teacher:ct2":
        return _ct2_teacher(None, BUNDLED_NAME, threads, compute_type)
    if spec == "teacher:hf":
        return _hf_teacher(None, threads)
    path = Path(spec)
    if (path / "model.bin").is_file():
        return _ct2_teacher(spec, path.name, threads, compute_type)
    config = path / "config.json"
    if not config.is_file():
        raise FileNotFoundError(
            f"{spec}: not a model (want teacher:ct2, teacher:hf, or a model directory)"
        )
    if "student" in json.loads(config.read_text()):
        return _student(spec, threads)
    return _hf_teacher(spec, threads)


def data_label(utterances: Sequence[Utterance], label: str) -> str:
    """'synthetic speech (TTS)' when the corpus came from `audiodistill synth`."""
    if label != "auto":
        return label
    if utterances and all("augmentation" in u.meta for u in utterances):
        return "synthetic speech (TTS, project-generated texts), not real recordings"
    return "recorded speech"


def evaluate(
    model: EvalModel, utterances: Sequence[Utterance], warmup: int = 1
) -> tuple[ModelReport, list[str]]:
    """Transcribe each utterance alone; score against references. Returns hypotheses too."""
    audios = [load_audio(u.audio) for u in utterances]
    for audio in audios[:warmup]:
        model.transcribe([audio])  # first-call costs (allocation, lazy init) are not RTF
    hypotheses, seconds = [], []
    for audio in audios:
        start = time.perf_counter()
        hypotheses.extend(model.transcribe([audio]))
        seconds.append(time.perf_counter() - start)
    references = [u.text or "" for u in utterances]
    counts = corpus_wer(references, hypotheses)
    audio_seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    report = ModelReport(
        name=model.name,
        kind=model.kind,
        utterances=len(utterances),
        audio_seconds=audio_seconds,
        wer=counts.wer,
        cer=cer(" ".join(references), " ".join(hypotheses)),
        substitutions=counts.substitutions,
        insertions=counts.insertions,
        deletions=counts.deletions,
        rtf=sum(seconds) / max(audio_seconds, 1e-9),
        latency_p50_s=float(np.percentile(seconds, 50)) if seconds else 0.0,
        latency_p95_s=float(np.percentile(seconds, 95)) if seconds else 0.0,
        parameters=model.parameters,
        size_mb=model.size_bytes / 1e6,
    )
    return report, hypotheses


def markdown_table(reports: Sequence[ModelReport], data_label: str) -> str:
    """Teacher and students side by side, labelled with the data they were measured on."""
    lines = [
        f"Measured on: {data_label}",
        "",
        "| model | kind | WER | CER | RTF (1 thread) | p50 latency | parameters | size |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in reports:
        lines.append(
            f"| {r.name} | {r.kind} | {r.wer * 100:.1f}% | {r.cer * 100:.1f}% | {r.rtf:.3f} | "
            f"{r.latency_p50_s * 1000:.0f} ms | {r.parameters / 1e6:.1f}M | {r.size_mb:.1f} MB |"
        )
    return "\n".join(lines) + "\n"


def write_reports(reports: Sequence[ModelReport], out: str | Path, data_label: str) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"data": data_label, "models": [asdict(r) for r in reports]}
    (out / "report.json").write_text(json.dumps(payload, indent=2))
    (out / "report.md").write_text(markdown_table(reports, data_label))


def run(options: EvalOptions) -> list[ModelReport]:
    """Score every model on the same utterances; write report.json/.md and hypotheses."""
    from audiodistill.config import save_config

    utterances = read_manifest(options.data, options.split)[: options.limit]
    if not utterances:
        raise ValueError(f"{options.data}: no utterances in split {options.split!r}")
    if any(u.text is None for u in utterances):
        raise ValueError(f"{options.data}: evaluation needs a reference text on every row")
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(options, out / "config.yaml")
    label = data_label(utterances, options.data_label)
    reports = []
    with open(out / "hypotheses.jsonl", "w") as f:
        for spec in options.models:
            report, hypotheses = evaluate(
                load_eval_model(spec, options.threads, options.compute_type), utterances
            )
            reports.append(report)
            for u, hypothesis in zip(utterances, hypotheses, strict=True):
                row = {
                    "model": report.name,
                    "id": u.id,
                    "reference": u.text,
                    "hypothesis": hypothesis,
                }
                f.write(json.dumps(row) + "\n")
    write_reports(reports, out, label)
    return reports
