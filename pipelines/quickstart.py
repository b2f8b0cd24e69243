"""The main job on embedded defaults: synthesize a corpus, pseudo-label it, report.

Every stage resumes: a corpus already built with the same options is reused, and finished
pseudo-label shards are skipped, so an interrupted quickstart picks up where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from audiodistill.config import to_dict
from audiodistill.labelling import PseudoLabelOptions
from audiodistill.synth.corpus import SynthOptions


@dataclass(frozen=True)
class QuickstartOptions:
    # the synthetic corpus (its `out` is where the manifest goes)
    synth: SynthOptions = field(default_factory=SynthOptions)
    # pseudo-labelling of that corpus (its `manifest` must point into synth.out)
    pseudo_label: PseudoLabelOptions = field(default_factory=PseudoLabelOptions)
    # where the report goes
    out: str = "runs/quickstart"


def run(options: QuickstartOptions) -> dict[str, Any]:
    from pipelines.pseudo_label import run as pseudo_label

    _build_corpus_once(options.synth)
    summary = pseudo_label(options.pseudo_label)
    report = format_report(summary)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(report)
    print(report)
    return summary


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


def format_report(summary: dict[str, Any]) -> str:
    """A short Markdown report of a pseudo-label run (figures are on a synthetic corpus)."""
    lines = [
        "# audiodistill quickstart (synthetic corpus: TTS speech, not real recordings)",
        "",
        f"- teacher: {', '.join(summary['teacher'])}",
        f"- items: {summary['items']} ({summary['audio_hours'] * 60:.1f} min of audio), "
        f"labelled this run: {summary['labelled_this_run']}",
        f"- throughput: {summary['audio_seconds_per_second']:.1f} audio s per wall s "
        f"({summary['wall_seconds']:.0f} s wall)",
        f"- kept for training: {summary['kept']}; failed: {summary['failed']}; "
        f"dropped: {', '.join(f'{k} {v}' for k, v in summary['dropped'].items())}",
        f"- pseudo-labels: {summary['output']}",
        "",
        "| split | utterances | teacher WER |",
        "| --- | ---: | ---: |",
    ]
    for split, row in sorted(summary["wer_by_split"].items()):
        lines.append(f"| {split} | {row['utterances']} | {row['wer'] * 100:.1f}% |")
    return "\n".join(lines) + "\n"
