"""Compare student recipes quickly: the distill job's own step, in one process, dev-scored.

    python benchmarks/recipe.py --config configs/distill/streaming_long.yaml \
        train.max_steps=375 train.batch_seconds=60 streaming.encoder_lr=0.3 --eval-every 125

Takes the same options as `audiodistill distill` (a config and dotted overrides) and trains
the student they describe with the library's own pieces (load_training_rows, the task,
make_optimizer, train_step, evaluate: the same data, loss, schedule and dev score), but in
this process, without Ray Train, checkpoints or export: one worker whose batch is
`train.batch_seconds` (give it the job's workers x batch_seconds for the same batch). It
prints the dev score every `--eval-every` steps; where the dev rows are recordings without
transcripts (configs/distill/streaming_long.yaml) that is agreement with the teacher.
Recipes compared this way are ranked on the same footing; the chosen one then runs as a job.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from audiodistill.cli import overrides_from_args
from audiodistill.config import load_config
from audiodistill.students.registry import build_task
from audiodistill.training.distill_options import DistillOptions
from audiodistill.training.label_rows import load_training_rows, training_row, with_audio
from audiodistill.training.loop import bucket_batches, evaluate, make_optimizer, train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--eval-every", type=int, default=125)
    parser.add_argument("--threads", type=int, default=2)
    args, extra = parser.parse_known_args()
    options = load_config(DistillOptions, args.config, overrides_from_args(extra))
    torch.set_num_threads(args.threads)
    torch.manual_seed(options.train.seed)
    train, dev = load_training_rows(options.data)
    rows = with_audio([training_row(r) for r in train.to_dict(orient="records")])
    dev_rows = with_audio(
        [training_row(r) for r in dev.head(options.train.dev_limit).to_dict(orient="records")]
    )
    hours = sum(r["duration"] for r in rows) / 3600
    print(f"{len(rows)} training rows ({hours:.1f} h), {len(dev_rows)} dev rows", flush=True)
    task = build_task(options)
    model = task.build()
    optimizer, scheduler = make_optimizer(model, options.train, getattr(task, "lr_scale", None))
    rng = np.random.default_rng(options.train.seed)
    step, start = 0, time.perf_counter()
    print("| step | minutes | loss | dev score |\n| ---: | ---: | ---: | ---: |", flush=True)
    while step < options.train.max_steps:
        for batch in bucket_batches(rows, options.train.batch_seconds, rng):
            parts = train_step(
                model, task, task.collate(batch), optimizer, scheduler, options.train.grad_clip
            )
            step += 1
            if step % args.eval_every == 0 or step == options.train.max_steps:
                score = evaluate(model, task, dev_rows)["dev_score"]
                minutes = (time.perf_counter() - start) / 60
                print(f"| {step} | {minutes:.1f} | {parts['loss']:.1f} | {score:.1%} |", flush=True)
            if step >= options.train.max_steps:
                break


if __name__ == "__main__":
    main()
