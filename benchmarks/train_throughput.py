"""Distillation training throughput with 1 vs 2 Ray Train workers, in one run.

    python benchmarks/train_throughput.py --labels runs/quickstart/pseudo_labels \
        --config configs/distill/streaming_conformer.yaml --steps 60

Runs the same distillation config for `--steps` steps with `train.workers` = 1 and then 2
(one CPU thread each, or one GPU each with --gpu), dev evaluation off, and reports training
samples per second summed over workers, averaged over the progress lines after the first
(the first holds start-up: data loading, model build, first-step allocation). Each worker
draws batches of the same padded seconds, so 2 workers process twice the samples per step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from audiodistill.config import load_config
from audiodistill.training.distill_options import DistillOptions


def throughput(
    options: DistillOptions, workers: int, steps: int, gpu: bool, eval_every: int = 0
) -> dict:
    """Train `steps` steps on `workers` workers; dev evaluation every `eval_every` steps (0:
    none; it is not counted in the throughput, whose clock restarts after it)."""
    from pipelines.distill import run

    with tempfile.TemporaryDirectory() as out:
        train = dataclasses.replace(
            options.train,
            workers=workers,
            use_gpu=gpu,
            max_steps=steps,
            eval_every=eval_every,
            checkpoint_every=steps,
            log_every=max(steps // 6, 1),
        )
        summary = run(dataclasses.replace(options, out=out, train=train))
        lines = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    steady = [x for x in lines if "samples_per_s" in x][1:]
    return {
        "workers": workers,
        "steps": summary["steps"],
        "samples_per_s": sum(x["samples_per_s"] for x in steady) / len(steady),
        "audio_seconds_per_s": sum(x["audio_seconds_per_s"] for x in steady) / len(steady),
        "dev_score": summary["best_dev_score"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/distill/streaming_conformer.yaml")
    parser.add_argument("--labels", default="runs/quickstart/pseudo_labels")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--gpu", action="store_true", help="one GPU per worker")
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    options = load_config(DistillOptions, args.config, [f"data.labels={args.labels}"])
    one = throughput(options, 1, args.steps, args.gpu)
    two = throughput(options, 2, args.steps, args.gpu)
    result = {
        "student": options.student,
        "config": args.config,
        "device": "gpu" if args.gpu else "cpu (1 thread per worker)",
        "runs": [one, two],
        "speedup_2_vs_1": two["samples_per_s"] / one["samples_per_s"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
