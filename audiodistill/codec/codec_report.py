"""`audiodistill eval` for neural audio codecs: quality, agreement, speed and size in one table.

    audiodistill eval --model runs/codec_teacher/model --model runs/distill/codec/model \
        --data data/synth/manifest.jsonl split=test

Every model is scored against the original audio with audiodistill/codec/quality.py
(bitrate, log-mel distance, SI-SDR, STOI, parameters); the models' encode+decode RTFs on
1 thread are timed in steady state (every clip run once first), taking turns, each its
fastest of 3 passes (`roundtrip_rtfs`). Models are loaded for inference, without weight
norm (`without_weight_norm`). The first model is the reference (the teacher): every other
model also gets its code agreement with it, the mel distance of its codes decoded by the
reference's decoder (the drop-in check), and the codec targets checked against it. Writes
report.json and report.md under `out`, as the ASR evaluation does. EnCodec, DAC and Mimi.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

COLUMNS = (  # (metric, column title, format)
    ("bitrate", "bitrate (bps)", "{:.0f}"),
    ("mel_distance", "mel distance", "{:.3f}"),
    ("si_sdr", "SI-SDR (dB)", "{:.2f}"),
    ("stoi", "STOI", "{:.3f}"),
    ("code_agreement", "code agreement", "{:.3f}"),
    ("teacher_decoded_mel_distance", "mel dist. via teacher decoder", "{:.3f}"),
    ("rtf", "RTF", "{:.4f}"),
    ("parameters", "parameters", "{:,.0f}"),
)
# (name, comparison, threshold): the codec targets for a student against its teacher
TARGETS = (
    ("parameters / teacher's", "<=", 0.30),
    ("speed-up vs teacher (RTF ratio)", ">=", 3.0),
    ("mel distance / teacher's", "<=", 1.10),
)
CODEC_MODEL_TYPES = ("encodec", "dac", "mimi")


def is_codec(spec: str) -> bool:
    """Whether `spec` is a directory holding a transformers codec (teacher or student)."""
    config = Path(spec) / "config.json"
    if not config.is_file():
        return False
    return json.loads(config.read_text()).get("model_type") in CODEC_MODEL_TYPES


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| model | " + " | ".join(title for _, title, _ in COLUMNS) + " |"]
    lines.append("|" + " --- |" * (len(COLUMNS) + 1))
    for name, metrics in rows.items():
        cells = [fmt.format(metrics[key]) if key in metrics else "" for key, _, fmt in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(student: dict[str, float], teacher: dict[str, float]) -> list[dict]:
    """Each target with the measured value and whether it is met."""
    measured = {
        "parameters / teacher's": student["parameters"] / teacher["parameters"],
        "speed-up vs teacher (RTF ratio)": teacher["rtf"] / student["rtf"],
        "mel distance / teacher's": student["mel_distance"] / teacher["mel_distance"],
    }
    out = []
    for name, op, threshold in TARGETS:
        value = measured[name]
        met = value <= threshold if op == "<=" else value >= threshold
        out.append({"target": name, "op": op, "threshold": threshold, "value": value, "met": met})
    return out


def _target_lines(name: str, checks: Sequence[dict]) -> list[str]:
    return [
        f"- {name}: {c['target']} {c['value']:.3f} (target {c['op']} {c['threshold']}): "
        f"{'met' if c['met'] else 'NOT met'}"
        for c in checks
    ]


def run(options) -> dict:
    """Score `options.models` (EvalOptions) on `options.data`; write report.json and .md."""
    import os

    from audiodistill.codec.quality import ONEDNN_CACHE

    os.environ.setdefault(*ONEDNN_CACHE)  # before any convolution runs (see there)
    import torch

    from audiodistill.codec.quality import roundtrip_rtfs, score
    from audiodistill.config import save_config
    from audiodistill.data.audio import load_audio
    from audiodistill.data.manifest import read_manifest
    from audiodistill.evaluation.measurement import data_label
    from audiodistill.online.served_model import model_id
    from audiodistill.students.codec_student import CodecModel

    utterances = read_manifest(options.data, options.split)[: options.limit]
    if not utterances:
        raise ValueError(f"{options.data}: no utterances in split {options.split!r}")
    audios = [load_audio(u.source) for u in utterances]
    torch.set_num_threads(options.threads)
    models = [(model_id(spec), CodecModel.from_pretrained(spec)) for spec in options.models]
    reference = models[0][1]
    rows = {
        name: score(model, audios, reference if i else None)
        for i, (name, model) in enumerate(models)
    }
    rtfs = roundtrip_rtfs([model.roundtrip for _, model in models], audios)
    for (name, _), rtf in zip(models, rtfs, strict=True):
        rows[name]["rtf"] = rtf
    teacher_name = models[0][0]
    checks = {name: targets(rows[name], rows[teacher_name]) for name, _ in models[1:]}
    label = data_label(utterances, options.data_label)
    report = {
        "data": label,
        "manifest": options.data,
        "split": options.split,
        "utterances": len(utterances),
        "threads": options.threads,
        "reference": teacher_name,
        "models": [{"name": name, "spec": spec, **rows[name]}
                   for (name, _), spec in zip(models, options.models, strict=True)],
        "targets": checks,
    }  # fmt: skip
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(options, out / "config.yaml")
    (out / "report.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"Measured on: {label} ({len(utterances)} utterances; quality on {options.threads} "
        "thread(s), RTF on 1 thread after a warm-up pass, fastest of 3 passes taken in turns)"
    ]
    lines += ["", table(rows), ""]
    for name, model_checks in checks.items():
        lines += _target_lines(f"{name} vs {teacher_name}", model_checks)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return report
