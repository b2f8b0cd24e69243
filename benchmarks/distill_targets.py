"""Teacher vs distilled students in one run, checked against the distillation issue's targets.

    python benchmarks/distill_targets.py --whisper-distil runs/quickstart/whisper_distil/model \
        --streaming runs/quickstart/streaming/model --data data/synth/manifest.jsonl

Scores the bundled teacher in both backends and the students with `audiodistill eval` (one
utterance at a time, 1 thread, the held-out split) and prints each target beside what was
measured. Speed ratios compare models measured in this one run, so a noisy shared machine
moves both sides together. whisper-distil is compared with the transformers teacher (the
same backend and greedy decoding); the streaming student with the teacher the issue names
(RTF and parameters against the transformers teacher, as the same weights in PyTorch).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from audiodistill.evaluation.measurement import EvalOptions, run

TARGETS = {
    "whisper-distil": [
        ("speed-up vs teacher (RTF ratio)", ">=", 1.8),
        ("WER - teacher WER (absolute, points)", "<=", 1.0),
    ],
    "streaming": [
        ("parameters / teacher's", "<=", 0.25),
        ("speed-up vs teacher (RTF ratio)", ">=", 5.0),
        ("WER / teacher WER", "<=", 1.5),
    ],
}


def measured(student: dict, teacher: dict) -> dict[str, float]:
    return {
        "speed-up vs teacher (RTF ratio)": teacher["rtf"] / student["rtf"],
        "WER - teacher WER (absolute, points)": (student["wer"] - teacher["wer"]) * 100,
        "parameters / teacher's": student["parameters"] / teacher["parameters"],
        "WER / teacher WER": student["wer"] / max(teacher["wer"], 1e-9),
    }


def check(reports: list[dict]) -> list[dict]:
    """One row per target: student, target, measured value, met or not."""
    teacher = next(r for r in reports if r["kind"] == "teacher" and "transformers" in r["name"])
    rows = []
    for student in (r for r in reports if r["kind"] in TARGETS):
        values = measured(student, teacher)
        for name, op, bound in TARGETS[student["kind"]]:
            value = values[name]
            met = value >= bound if op == ">=" else value <= bound
            rows.append({"student": student["kind"], "target": f"{name} {op} {bound}",
                         "measured": round(value, 3), "met": met})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--whisper-distil", help="exported whisper-distil directory")
    parser.add_argument("--streaming", help="exported streaming student directory")
    parser.add_argument("--data", default="data/synth/manifest.jsonl")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/results/distill_targets")
    args = parser.parse_args()
    students = [p for p in (args.whisper_distil, args.streaming) if p]
    options = EvalOptions(
        models=("teacher:hf", "teacher:ct2", *students),
        data=args.data,
        split=args.split,
        limit=args.limit,
        out=args.out,
    )
    reports = [asdict(r) for r in run(options)]
    rows = check(reports)
    (Path(args.out) / "targets.json").write_text(json.dumps(rows, indent=2))
    print((Path(args.out) / "report.md").read_text())
    print("| student | target | measured | met |\n| --- | --- | ---: | --- |")
    for r in rows:
        print(
            f"| {r['student']} | {r['target']} | {r['measured']} | {'yes' if r['met'] else 'NO'} |"
        )


if __name__ == "__main__":
    main()
