"""Dev score against training steps for one or more distill runs, from their metrics.jsonl.

    python benchmarks/learning_curve.py runs/distill/streaming_long [more runs] \
        --out benchmarks/results/learning_curve_streaming.png

Prints a Markdown table (step, dev score of each run, wall minutes of the first) and writes
the curve as a PNG. A run's dev score is what its config scores dev rows against: WER
against transcripts, or agreement with the teacher where the dev rows are recordings without
any (configs/distill/streaming_long.yaml). Resumed runs log a step twice; the last counts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def dev_curve(run: Path) -> dict[int, tuple[float, float]]:
    """step -> (dev score, wall seconds of training up to it) from `run`/metrics.jsonl."""
    curve, wall, last_elapsed = {}, 0.0, 0.0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        elapsed = record.get("elapsed_s")
        if elapsed is not None:  # the meter restarts after each checkpoint
            wall += elapsed - last_elapsed if elapsed >= last_elapsed else elapsed
            last_elapsed = elapsed
        if "dev_score" in record:
            curve[int(record["step"])] = (float(record["dev_score"]), wall)
    return curve


def table(curves: dict[str, dict[int, tuple[float, float]]]) -> str:
    names = list(curves)
    steps = sorted({s for c in curves.values() for s in c})
    lines = [
        "| step | " + " | ".join(f"dev, {n}" for n in names) + f" | minutes ({names[0]}) |",
        "| ---: | " + " | ".join("---:" for _ in names) + " | ---: |",
    ]
    for step in steps:
        cells = [f"{c[step][0] * 100:.1f}%" if step in c else "" for c in curves.values()]
        first = curves[names[0]].get(step)
        minutes = f"{first[1] / 60:.0f}" if first else ""
        lines.append(f"| {step} | " + " | ".join(cells) + f" | {minutes} |")
    return "\n".join(lines)


def plot(curves: dict[str, dict[int, tuple[float, float]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        steps = sorted(curve)
        axis.plot(steps, [curve[s][0] * 100 for s in steps], marker="o", label=name)
    axis.set_xlabel("training step")
    axis.set_ylabel("dev score (%)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="distill run directories")
    parser.add_argument("--out", type=Path, help="PNG of the curves")
    args = parser.parse_args()
    curves = {run.name: dev_curve(run) for run in args.runs}
    print(table(curves))
    if args.out:
        plot(curves, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
