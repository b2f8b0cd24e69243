"""The main job on embedded defaults: synthesize, pseudo-label, distill the students, evaluate.

Every stage resumes: a corpus already built with the same options is reused, finished
pseudo-label shards are skipped, and a distillation run with the same `out` continues from
its last checkpoint (a finished one is not retrained), so an interrupted quickstart picks up
where it stopped. All figures are on a synthetic corpus and the report says so.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from audiodistill.config import save_config, to_dict
from audiodistill.data.synth.corpus import SynthOptions
from audiodistill.evaluation.measurement import EvalOptions
from audiodistill.teachers.shard_labelling import PseudoLabelOptions
from audiodistill.training.distill_options import DistillOptions


@dataclass(frozen=True)
class QuickstartOptions:
    # the synthetic corpus (its `out` is where the manifest goes)
    synth: SynthOptions = field(default_factory=SynthOptions)
    # pseudo-labelling of that corpus (the hf backend: whisper-distil needs soft targets)
    pseudo_label: PseudoLabelOptions = field(default_factory=PseudoLabelOptions)
    # the whisper-distil student (its `student` and `data.labels` are set here; null: skip)
    whisper_distil: DistillOptions | None = None
    # the streaming CTC student (its `student` and `data.labels` are set here; null: skip)
    streaming: DistillOptions | None = None
    # the whisper-causal student: streams, with the teacher's decoder (null: skip)
    whisper_causal: DistillOptions | None = None
    # teacher and students scored on the held-out split (models and data are filled in)
    eval: EvalOptions = field(default_factory=EvalOptions)
    # teachers scored beside the students ("teacher:ct2", "teacher:hf"); the first is the
    # reference the students' agreement on `real` recordings is scored against
    teachers: tuple[str, ...] = ("teacher:hf", "teacher:ct2")
    # recordings of your own, without transcripts (a directory of audio files or a manifest):
    # labelled by the same teacher, their train split trained on beside the synthetic corpus,
    # their test split (held out, never trained on) scored as agreement with the teacher
    real: str | None = None
    # share of `real` held out for that score (utterances that come with a split keep it)
    real_test_fraction: float = 0.2
    # where report.md, report.json and config.yaml go
    out: str = "runs/quickstart"


def run(options: QuickstartOptions) -> dict[str, Any]:
    from pipelines.distill import run as distill
    from pipelines.pseudo_label import run as pseudo_label

    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(options, out / "config.yaml")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    _build_corpus_once(options.synth)
    timings["synth"] = _lap(start)
    labels = pseudo_label(options.pseudo_label)
    timings["pseudo_label"] = _lap(start) - sum(timings.values())
    real = _real_labels(options, pseudo_label) if options.real else None
    if real is not None:
        timings["pseudo_label real"] = _lap(start) - sum(timings.values())
    trained = []
    for kind, student in (
        ("whisper-distil", options.whisper_distil),
        ("streaming", options.streaming),
        ("whisper-causal", options.whisper_causal),
    ):
        if student is None:
            continue
        extra = (*student.data.extra_labels, *([real["output"]] if real else []))
        data = replace(student.data, labels=options.pseudo_label.out, extra_labels=extra)
        # trained on other data, so in a run dir of its own (beside the synthetic-only one)
        run_dir = f"{student.out}_real" if real else student.out
        student = replace(student, student=kind, data=data, out=run_dir)
        trained.append(_distill_once(distill, student))
        timings[f"distill {kind}"] = _lap(start) - sum(timings.values())
    models = [*options.teachers, *(t["model"] for t in trained)]
    reports = _evaluate(options, models, str(Path(options.synth.out) / "manifest.jsonl"), "eval")
    real_reports = _evaluate(options, models, _real_manifest(options), "eval_real") if real else []
    timings["eval"] = _lap(start) - sum(timings.values())
    report = format_report(labels, trained, reports, timings, real, real_reports)
    (out / "report.md").write_text(report)
    summary = {"pseudo_label": labels, "students": trained, "timings_s": timings}
    if real:
        summary["pseudo_label_real"] = real
    (out / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    print(report)
    return summary


def _real_manifest(options: QuickstartOptions) -> str:
    return str(Path(options.out) / "real" / "manifest.jsonl")


def _real_labels(options: QuickstartOptions, pseudo_label) -> dict[str, Any]:
    """List `real` with a held-out test split, then pseudo-label all of it (the test split
    too: its labels are the reference agreement is scored against, and extra label runs'
    test rows are never trained on)."""
    from audiodistill.data.manifest import ManifestOptions, split_manifest

    counts = split_manifest(
        ManifestOptions(options.real, _real_manifest(options), 0.0, options.real_test_fraction)
    )
    print(f"real recordings: {counts}")
    out = str(Path(options.out) / "pseudo_labels_real")
    return pseudo_label(replace(options.pseudo_label, manifest=_real_manifest(options), out=out))


def _lap(start: float) -> float:
    return time.perf_counter() - start


def _build_corpus_once(options: SynthOptions) -> None:
    from audiodistill.data.synth.corpus import build_corpus

    saved = Path(options.out) / "synth_config.yaml"
    manifest = Path(options.out) / "manifest.jsonl"
    if (
        manifest.exists()
        and saved.exists()
        and yaml.safe_load(saved.read_text()) == to_dict(options)
    ):
        print(f"corpus: reusing {manifest} (same options)")
        return
    build_corpus(options)


def _distill_once(distill, options: DistillOptions) -> dict[str, Any]:
    """A finished run with the same options is reused, not retrained."""
    out = Path(options.out)
    summary, config = out / "summary.json", out / "config.yaml"
    if summary.exists() and config.exists():
        if yaml.safe_load(config.read_text()) == to_dict(options):
            print(f"distill: reusing finished {options.student} run in {out}")
            return json.loads(summary.read_text())
    return distill(options)


def _evaluate(options: QuickstartOptions, models: list[str], manifest: str, name: str):
    from audiodistill.evaluation.measurement import run as evaluate

    eval_options = replace(
        options.eval, models=tuple(models), data=manifest, out=str(Path(options.out) / name)
    )
    return evaluate(eval_options)


def format_report(
    labels: dict,
    students: list[dict],
    reports,
    timings: dict,
    real: dict | None = None,
    real_reports=(),
) -> str:
    """Markdown: pseudo-labelling, each student's training, then teacher vs students."""
    from audiodistill.evaluation.measurement import markdown_table

    lines = [
        "# audiodistill quickstart (synthetic corpus: TTS speech"
        + (", and recordings of your own)" if real else ", not real recordings)"),
        "",
        "## Pseudo-labels",
        "",
        *_label_lines(labels),
    ]
    if real:
        lines += ["", "Recordings (`real`):", "", *_label_lines(real)]
    lines += ["", "## Students", ""]
    for s in students:
        dev = "n/a" if s.get("best_dev_wer") is None else f"{s['best_dev_wer'] * 100:.1f}%"
        lines.append(
            f"- {s['student']}: {s['steps']} steps on {s['train_utterances']} utterances, "
            f"best dev WER {dev} at step {s['best_step']}, exported to {s['model']}"
        )
    if real_reports:
        lines += ["", "## Teacher vs students", "", summary_table(reports, real_reports)]
    label = "the synthetic corpus's test split (TTS speech; no test sentence is in training)"
    lines += ["", "## Held-out test split", "", markdown_table(reports, label)]
    if real_reports:
        label = "the held-out test split of your recordings (never trained on)"
        lines += ["## Held-out recordings", "", markdown_table(real_reports, label)]
    lines += ["## Wall time", ""]
    lines += [f"- {stage}: {seconds:.0f} s" for stage, seconds in timings.items()]
    lines.append(f"- total: {sum(timings.values()):.0f} s")
    return "\n".join(lines) + "\n"


def _label_lines(labels: dict) -> list[str]:
    by_split = ", ".join(
        f"{split} {row['wer'] * 100:.1f}% ({row['utterances']} utt)"
        for split, row in sorted(labels["wer_by_split"].items())
    )
    return [
        f"- teacher: {', '.join(labels['teacher'])}",
        f"- items: {labels['items']} ({labels['audio_hours'] * 60:.1f} min of audio), "
        f"labelled this run: {labels['labelled_this_run']}, failed: {labels['failed']}",
        f"- throughput: {labels['audio_seconds_per_second']:.1f} audio s per wall s",
        f"- kept by the pseudo-label filters: {labels['kept']}; dropped: "
        + ", ".join(f"{k} {v}" for k, v in labels["dropped"].items()),
        f"- teacher WER by split: {by_split or 'n/a (no transcripts)'}",
    ]


def summary_table(synthetic, real) -> str:
    """One row per model: WER on the synthetic test split beside agreement with the teacher
    on held-out recordings, two columns never mixed, then speed and size."""
    lines = [
        f"| model | WER, synthetic test (TTS) | agreement WER vs {real[0].name}, held-out "
        "recordings | RTF (1 thread, recordings) | parameters | size |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, (s, r) in enumerate(zip(synthetic, real, strict=True)):
        agreement = "reference" if i == 0 else f"{r.wer * 100:.1f}%"
        lines.append(
            f"| {s.name} | {s.wer * 100:.1f}% | {agreement} | {r.rtf:.3f} | "
            f"{s.parameters / 1e6:.1f}M | {s.size_mb:.1f} MB |"
        )
    return "\n".join(lines) + "\n"
