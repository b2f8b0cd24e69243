"""Codec teacher vs codec student on one manifest: quality, agreement, speed, size.

    python benchmarks/codec_eval.py --teacher runs/codec_teacher/model \
        --student runs/distill/codec/model --data data/synth/manifest.jsonl --split test

The same as `audiodistill eval --model TEACHER --model STUDENT --data MANIFEST split=test
threads=1`, which it runs (audiodistill/codec/codec_report.py), printing the table and the
codec targets (student <= 30% of the teacher's parameters, >= 3x faster encode+decode on one
thread, mel distance within 10% of the teacher's) beside what was measured.
"""

from __future__ import annotations

import argparse

from audiodistill.codec.codec_report import run
from audiodistill.evaluation.measurement import EvalOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="codec teacher directory (EnCodec)")
    parser.add_argument("--student", required=True, help="exported codec student directory")
    parser.add_argument("--data", required=True, help="manifest of the clips to score")
    parser.add_argument("--split", default=None, help="only this split (e.g. test)")
    parser.add_argument("--limit", type=int, default=50, help="first N utterances")
    parser.add_argument("--out", default="runs/eval_codec", help="report.json and report.md")
    args = parser.parse_args()
    options = EvalOptions(
        models=(args.teacher, args.student),
        data=args.data,
        split=args.split,
        limit=args.limit,
        out=args.out,
    )
    run(options)
    with open(f"{args.out}/report.md") as report:
        print(report.read())


if __name__ == "__main__":
    main()
