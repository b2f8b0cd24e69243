"""Codec teacher vs codec student on one manifest: quality, agreement, speed, size.

    python benchmarks/codec_eval.py --teacher runs/codec_teacher/tiny-encodec \
        --student runs/distill/codec/model --data data/synth/manifest.jsonl --split test

Scores both models with audiodistill/codec_metrics.py against the original audio (bitrate,
log-mel distance, SI-SDR, STOI, encode+decode RTF on 1 thread, parameters), the student's
code agreement with the teacher and its codes decoded by the teacher's decoder, and prints a
table and the issue's targets beside what was measured. `audiodistill eval` does not score
codecs yet: this script is that step for now.
"""

from __future__ import annotations

import argparse
import json

from audiodistill.audio import load_audio
from audiodistill.codec_metrics import score
from audiodistill.manifest import read_manifest
from audiodistill.students.codec import CodecModel

COLUMNS = (
    ("bitrate", "bitrate (bps)", "{:.0f}"),
    ("mel_distance", "mel distance", "{:.3f}"),
    ("si_sdr", "SI-SDR (dB)", "{:.2f}"),
    ("stoi", "STOI", "{:.3f}"),
    ("code_agreement", "code agreement", "{:.3f}"),
    ("teacher_decoded_mel_distance", "mel dist. via teacher decoder", "{:.3f}"),
    ("rtf", "RTF (1 thread)", "{:.4f}"),
    ("parameters", "parameters", "{:,.0f}"),
)
# (name, comparison, threshold): issue 6's targets for the student against the teacher
TARGETS = (
    ("parameters / teacher's", "<=", 0.30),
    ("speed-up vs teacher (RTF ratio)", ">=", 3.0),
    ("mel distance / teacher's", "<=", 1.10),
)


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| model | " + " | ".join(title for _, title, _ in COLUMNS) + " |"]
    lines.append("|" + " --- |" * (len(COLUMNS) + 1))
    for name, metrics in rows.items():
        cells = [fmt.format(metrics[key]) if key in metrics else "" for key, _, fmt in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(student: dict[str, float], teacher: dict[str, float]) -> list[str]:
    measured = {
        "parameters / teacher's": student["parameters"] / teacher["parameters"],
        "speed-up vs teacher (RTF ratio)": teacher["rtf"] / student["rtf"],
        "mel distance / teacher's": student["mel_distance"] / teacher["mel_distance"],
    }
    out = []
    for name, op, threshold in TARGETS:
        value = measured[name]
        met = value <= threshold if op == "<=" else value >= threshold
        out.append(f"{name}: {value:.3f} (target {op} {threshold}) {'met' if met else 'NOT met'}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="codec teacher directory (EnCodec)")
    parser.add_argument("--student", required=True, help="exported codec student directory")
    parser.add_argument("--data", required=True, help="manifest of the clips to score")
    parser.add_argument("--split", default=None, help="only this split (e.g. test)")
    parser.add_argument("--limit", type=int, default=50, help="first N utterances")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    utterances = read_manifest(args.data, split=args.split)[: args.limit]
    audios = [
        load_audio(u.audio_bytes if u.audio_bytes is not None else u.audio) for u in utterances
    ]
    teacher = CodecModel.from_pretrained(args.teacher)
    student = CodecModel.from_pretrained(args.student)
    rows = {"teacher": score(teacher, audios), "student": score(student, audios, teacher)}
    print(f"{len(audios)} utterances of {args.data}" + (f" ({args.split})" if args.split else ""))
    print(table(rows))
    print("\n".join(targets(rows["student"], rows["teacher"])))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)


if __name__ == "__main__":
    main()
