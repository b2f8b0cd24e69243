"""The main job on embedded defaults: synthesize, pseudo-label, distill two students, evaluate.

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
from audiodistill.distill import DistillOptions
from audiodistill.evaluation import EvalOptions
from audiodistill.labelling import PseudoLabelOptions
from audiodistill.synth.corpus import SynthOptions


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
    # teacher and students scored on the held-out split (models and data are filled in)
    eval: EvalOptions = field(default_factory=EvalOptions)
    # teachers scored beside the students ("teacher:ct2", "teacher:hf")
    teachers: tuple[str, ...] = ("teacher:ct2", "teacher:hf")
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
    trained = []
    for kind, student in (
        ("whisper-distil", options.whisper_distil),
        ("streaming", options.streaming),
    ):
        if student is None:
            continue
        data = replace(student.data, labels=options.pseudo_label.out)
        trained.append(_distill_once(distill, replace(student, student=kind, data=data)))
        timings[f"distill {kind}"] = _lap(start) - sum(timings.values())
    reports = _evaluate(options, [t["model"] for t in trained])
    timings["eval"] = _lap(start) - sum(timings.values())
    report = format_report(labels, trained, reports, timings)
    (out / "report.md").write_text(report)
    summary = {"pseudo_label": labels, "students": trained, "timings_s": timings}
    (out / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    print(report)
    return summary


def _lap(start: float) -> float:
    return time.perf_counter() - start


def _build_corpus_once(options: SynthOptions) -> None:
    from audiodistill.synth.corpus import build_corpus

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


def _evaluate(options: QuickstartOptions, students: list[str]):
    from audiodistill.evaluation import run as evaluate

    manifest = str(Path(options.synth.out) / "manifest.jsonl")
    eval_options = replace(
        options.eval,
        models=(*options.teachers, *students),
        data=manifest,
        out=str(Path(options.out) / "eval"),
    )
    return evaluate(eval_options)


def format_report(labels: dict, students: list[dict], reports, timings: dict) -> str:
    """Markdown: pseudo-labelling, each student's training, then teacher vs students."""
    from audiodistill.evaluation import markdown_table

    lines = [
        "# audiodistill quickstart (synthetic corpus: TTS speech, not real recordings)",
        "",
        "## Pseudo-labels",
        "",
        f"- teacher: {', '.join(labels['teacher'])}",
        f"- items: {labels['items']} ({labels['audio_hours'] * 60:.1f} min of audio), "
        f"labelled this run: {labels['labelled_this_run']}, failed: {labels['failed']}",
        f"- throughput: {labels['audio_seconds_per_second']:.1f} audio s per wall s",
        f"- kept by the pseudo-label filters: {labels['kept']}; dropped: "
        + ", ".join(f"{k} {v}" for k, v in labels["dropped"].items()),
        "- teacher WER by split: "
        + ", ".join(
            f"{split} {row['wer'] * 100:.1f}% ({row['utterances']} utt)"
            for split, row in sorted(labels["wer_by_split"].items())
        ),
        "",
        "## Students",
        "",
    ]
    for s in students:
        dev = "n/a" if s.get("best_dev_wer") is None else f"{s['best_dev_wer'] * 100:.1f}%"
        lines.append(
            f"- {s['student']}: {s['steps']} steps on {s['train_utterances']} utterances, "
            f"best dev WER {dev} at step {s['best_step']}, exported to {s['model']}"
        )
    label = "the synthetic corpus's test split (TTS speech; no test sentence is in training)"
    lines += ["", "## Held-out test split", "", markdown_table(reports, label)]
    lines += ["## Wall time", ""]
    lines += [f"- {stage}: {seconds:.0f} s" for stage, seconds in timings.items()]
    lines.append(f"- total: {sum(timings.values()):.0f} s")
    return "\n".join(lines) + "\n"
